"""The embedded broker: an in-process MQTT 3.1.1 broker (amqtt) for a node run on its own,
so the README's first command gives devices an endpoint. Production points
IDNODE_MQTT_URL at Mosquitto or EMQX instead (deploy/mosquitto/)."""

from __future__ import annotations

import errno
import logging
import socket
from typing import Any

from amqtt.broker import Broker  # type: ignore[import-untyped]
from amqtt.errors import BrokerError  # type: ignore[import-untyped]

HOST = "127.0.0.1"
log = logging.getLogger("gateways.mqtt.broker")


class PortTaken(Exception):
    """Something else (often a Mosquitto already running) listens on the broker's port."""

    def __init__(self, port: int) -> None:
        super().__init__(f"{HOST}:{port} is taken")
        self.port = port


def _config(port: int) -> dict[str, Any]:
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{HOST}:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }


def _check_free(port: int) -> None:
    with socket.socket() as probe:
        try:
            probe.bind((HOST, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortTaken(port) from exc
            raise


class EmbeddedBroker:
    """Started and stopped by the lifespan; loopback only, anonymous."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._broker: Broker | None = None

    async def start(self) -> None:
        """Listen on 127.0.0.1:port, or raise ``PortTaken``."""
        _check_free(self.port)
        broker = Broker(_config(self.port))
        try:
            await broker.start()
        except BrokerError as exc:  # lost a race for the port since the check
            raise PortTaken(self.port) from exc
        self._broker = broker

    async def stop(self) -> None:
        if self._broker is not None:
            await self._broker.shutdown()
            self._broker = None
