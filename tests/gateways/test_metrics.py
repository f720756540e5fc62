"""The gateway's work as ``GET /metrics`` shows it: registrations by channel, MQTT messages."""

from __future__ import annotations

from typing import Any

import httpx

from tests.app.test_metrics import grown, scrape
from tests.gateways.conftest import Device, register_body


async def test_mqtt_registrations_and_messages_are_counted(
    device: Device, enterprise: dict[str, Any], http: httpx.AsyncClient
) -> None:
    before = await scrape(http)
    topic = device.topic("SN-METRICS-1")
    assert (await device.request(topic, register_body(enterprise)))[0] == "accepted"
    assert (await device.request(topic, register_body(enterprise)))[0] == "accepted"  # replay
    assert (await device.request(device.topic("SN-2"), b"not json"))[0] == "rejected"
    after = await scrape(http)

    assert grown(before, after, "idnode_registrations_total", channel="mqtt") == 1
    assert grown(before, after, "idnode_registrations_total", channel="lorawan") == 0
    messages = {
        (kind, result): grown(before, after, "idnode_mqtt_messages_total", kind=kind, result=result)
        for kind, result in [
            ("registration", "created"),
            ("registration", "replayed"),
            ("message", "malformed"),
            ("message", "rejected"),
        ]
    }
    assert messages == {
        ("registration", "created"): 1,
        ("registration", "replayed"): 1,
        ("message", "malformed"): 1,
        ("message", "rejected"): 0,
    }
