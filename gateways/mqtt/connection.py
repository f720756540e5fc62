"""From IDNODE_MQTT_URL (or the embedded broker) to an aiomqtt client."""

from __future__ import annotations

import os
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from app.errors import InvalidRequest
from app.settings import Settings

SCHEMES = {"mqtt": (1883, False), "mqtts": (8883, True)}


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False
    # amqtt, the embedded broker, speaks MQTT 3.1.1 only; brokers named by URL get MQTT 5
    # (response topics, session expiry).
    mqtt5: bool = True

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        parts = urlsplit(url)
        if parts.scheme not in SCHEMES or not parts.hostname:
            raise InvalidRequest(f"IDNODE_MQTT_URL {url!r} must be mqtt://host[:port] or mqtts://")
        default_port, tls = SCHEMES[parts.scheme]
        return cls(
            host=parts.hostname,
            port=parts.port or default_port,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls=tls,
        )

    def __str__(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


def client_for(address: BrokerAddress, settings: Settings) -> aiomqtt.Client:
    """A reusable client with a persistent session: after a reconnect (a broker restart
    included, when the broker persists sessions) it gets the QoS 1 messages sent meanwhile.

    Its incoming queue is unbounded on purpose: paho acknowledges QoS 1 messages on
    receipt, so a bounded queue would drop messages the broker counts as delivered."""
    identifier = settings.mqtt_client_id or f"idnode-gw-{socket.gethostname()}-{os.getpid()}"
    common = {
        "username": address.username,
        "password": address.password,
        "identifier": identifier,
        "tls_context": ssl.create_default_context() if address.tls else None,
    }
    if address.mqtt5:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = settings.mqtt_session_expiry
        client = aiomqtt.Client(
            address.host,
            address.port,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=False,
            properties=properties,
            **common,  # type: ignore[arg-type]
        )
    else:
        client = aiomqtt.Client(
            address.host,
            address.port,
            protocol=aiomqtt.ProtocolVersion.V311,
            clean_session=False,
            **common,  # type: ignore[arg-type]
        )
    # aiomqtt logs a warning for every publish while more than 10 wait for their PUBACK; the
    # gateway answers whole batches at once, so under load that was a log line per reply
    # (5% of its CPU). Warn only when far more wait than the batches in flight explain.
    in_flight = settings.mqtt_concurrency * settings.mqtt_registration_batch
    client.pending_calls_threshold = 10 * in_flight
    return client
