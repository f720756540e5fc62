"""What a gateway process has done, for logs, tests and benchmarks."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class Counters:
    registered: int = 0  # new devices (over MQTT and ChirpStack)
    lorawan_registered: int = 0  # of those, the ones ChirpStack events registered
    replayed: int = 0  # registrations of devices already known
    rejected: int = 0  # rejected replies sent (bad key, bad hardware id, ...)
    malformed: int = 0  # not JSON, wrong shape or too large
    heartbeats_received: int = 0  # heartbeat messages taken into a batch
    heartbeats: int = 0  # device rows updated by heartbeat batches
    heartbeats_unknown: int = 0  # heartbeats from devices never registered
    heartbeat_writes: int = 0  # transactions that applied heartbeats
    went_offline: int = 0
    lorawan_events: int = 0  # ChirpStack joins, uplinks and status applied
    lorawan_duplicates: int = 0  # events with a deduplicationId seen before
    lorawan_unmapped: int = 0  # events of applications no enterprise mapped
    reply_failures: int = 0  # replies lost because the connection dropped
    handler_failures: int = 0  # messages a handler failed on (answered InternalError, dropped)

    def as_json(self) -> dict[str, int]:
        return asdict(self)
