"""IDNODE_MQTT_URL: host, port, credentials and TLS."""

from __future__ import annotations

import pytest

from app.errors import InvalidRequest
from gateways.mqtt import BrokerAddress


def test_plain_and_tls_urls() -> None:
    plain = BrokerAddress.parse("mqtt://broker.local")
    assert (plain.host, plain.port, plain.tls, plain.username) == (
        "broker.local",
        1883,
        False,
        None,
    )
    tls = BrokerAddress.parse("mqtts://idnode-gateway:p%40ss@emqx.example.com:8884")
    assert (tls.host, tls.port, tls.tls) == ("emqx.example.com", 8884, True)
    assert (tls.username, tls.password) == ("idnode-gateway", "p@ss")
    assert str(tls) == "mqtts://emqx.example.com:8884"  # no password in logs


@pytest.mark.parametrize("url", ["http://broker:1883", "mqtt://", "broker:1883"])
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidRequest, match="IDNODE_MQTT_URL"):
        BrokerAddress.parse(url)
