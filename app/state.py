"""What the lifespan hands every request: :class:`NodeState`, the typed lifespan state.

``app.main``'s lifespan yields one ``NodeState``; the server copies it into each request's
``scope["state"]`` (the ASGI lifespan-state extension), and :func:`state_of` reads it back
with its types, so no handler reaches for an untyped ``app.state`` attribute.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any, TypedDict

if TYPE_CHECKING:
    from app.dashboard import Dashboard
    from app.monitoring import MetricsPump
    from app.node import Node
    from app.reporting.runner import Reporting
    from app.supervisor import Supervisor
    from gateways.mqtt import MqttGateway
    from gateways.nbiot import IngestQueue


class NodeState(TypedDict):
    """The running node's parts, as the lifespan built them."""

    node: Node
    dashboard: Dashboard
    supervisor: Supervisor
    gateway: MqttGateway | None  # None without a broker
    nbiot: IngestQueue
    reporting: Reporting
    metrics_pump: MetricsPump | None  # None with IDNODE_METRICS=false


def state_of(scope: MutableMapping[str, Any]) -> NodeState:
    """The lifespan's state in a request's scope (``request.scope`` or the raw ASGI scope)."""
    state: NodeState = scope["state"]
    return state
