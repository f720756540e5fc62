"""NB-IoT pushes (the real payloads in tests/fixtures/onenet and ctwing) over HTTP ingest."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from app.settings import Settings
from gateways.nbiot import onenet
from tests.app.test_metrics import grown, scrape
from tests.conftest import bearer, create_enterprise, create_provisioning_key
from tests.gateways.conftest import configure_nbiot, fixture_json

ONENET_IMEI = "861234056789012"
CTWING_IMEI = "861234056789020"


@pytest.fixture
async def plant(client: httpx.AsyncClient) -> dict[str, Any]:
    plant = await create_enterprise(client, "Cold Chain Co")
    key = await create_provisioning_key(client, plant, "nb-iot")
    return {**plant, "key": key["key"]}


async def values(client: httpx.AsyncClient, handle: str) -> dict[str, str]:
    answer = await client.get(f"/api/handles/{handle}")
    assert answer.status_code == 200, answer.text
    return {v["type"]: v["data"]["value"] for v in answer.json()["values"]}


async def onenet_post(client: httpx.AsyncClient, prefix: str, name: str) -> httpx.Response:
    push = fixture_json(f"onenet/{name}")
    return await client.post(
        f"/api/v1/ingest/onenet/{prefix}",
        content=push["raw_body"].encode(),
        headers={"Content-Type": "application/json"},
    )


async def test_onenet_url_verification(client: httpx.AsyncClient, plant: dict[str, Any]) -> None:
    check = fixture_json("onenet/url-verification.json")
    await configure_nbiot(client, plant, "onenet", check["token"])
    url = f"/api/v1/ingest/onenet/{plant['prefix']}"

    answer = await client.get(url, params=check["query"])
    assert answer.status_code == 200
    assert answer.text == check["expected_answer"]

    forged = await client.get(
        url, params={**check["query"], "signature": "AAAAAAAAAAAAAAAAAAAAAA=="}
    )
    assert forged.status_code == 403


async def test_onenet_pushes_register_and_update_liveness(
    client: httpx.AsyncClient, plant: dict[str, Any], app: Any
) -> None:
    await configure_nbiot(client, plant, "onenet", fixture_json("onenet/data-push.json")["token"])
    handle = f"{plant['prefix']}/DEV-imei-{ONENET_IMEI}"

    forged = await onenet_post(client, plant["prefix"], "data-push-bad-signature.json")
    assert forged.status_code == 403
    await app.state.nbiot.drained()
    assert (await client.get(f"/api/handles/{handle}")).status_code == 404

    for name in ("online-push.json", "data-push.json"):
        answer = await onenet_post(client, plant["prefix"], name)
        assert answer.status_code == 200, answer.text
    await app.state.nbiot.drained()
    shown = await values(client, handle)
    assert shown["network"] == "nbiot"
    assert shown["hardwareIdType"] == "imei"
    assert shown["online"] == "true"

    assert (await onenet_post(client, plant["prefix"], "offline-push.json")).status_code == 200
    await app.state.nbiot.drained()
    assert (await values(client, handle))["online"] == "false"

    assert (await onenet_post(client, plant["prefix"], "data-push.json")).status_code == 200
    await app.state.nbiot.drained()
    assert (await values(client, handle))["online"] == "true"


async def test_unconfigured_prefix_is_refused(
    client: httpx.AsyncClient, plant: dict[str, Any]
) -> None:
    answer = await onenet_post(client, plant["prefix"], "data-push.json")
    assert answer.status_code == 403
    assert "no onenet account" in answer.json()["detail"]


async def test_ctwing_pushes(client: httpx.AsyncClient, plant: dict[str, Any], app: Any) -> None:
    await configure_nbiot(client, plant, "ctwing", "ctw-secret-1")
    url = f"/api/v1/ingest/ctwing/{plant['prefix']}"
    for name in ("datareport-passthrough.json", "datareport-decoded.json"):
        answer = await client.post(
            url, params={"token": "ctw-secret-1"}, json=fixture_json(f"ctwing/{name}")
        )
        assert answer.status_code == 200, answer.text
    await app.state.nbiot.drained()
    shown = await values(client, f"{plant['prefix']}/DEV-imei-{CTWING_IMEI}")
    assert shown["online"] == "true"
    assert shown["network"] == "nbiot"

    wrong = await client.post(
        url, params={"token": "guess"}, json=fixture_json("ctwing/datareport-decoded.json")
    )
    assert wrong.status_code == 403
    garbage = await client.post(url, params={"token": "ctw-secret-1"}, content=b"{nope")
    assert garbage.status_code == 400


async def test_revoked_key_stops_platform_registrations(
    client: httpx.AsyncClient, plant: dict[str, Any]
) -> None:
    await configure_nbiot(client, plant, "ctwing", None)
    await client.delete(
        f"/api/v1/enterprises/{plant['prefix']}/provisioning-keys/{plant['key']}",
        headers=bearer(plant),
    )
    answer = await client.post(
        f"/api/v1/ingest/ctwing/{plant['prefix']}",
        json=fixture_json("ctwing/datareport-decoded.json"),
    )
    assert answer.status_code == 403


async def test_onenet_needs_a_token(client: httpx.AsyncClient, plant: dict[str, Any]) -> None:
    answer = await client.put(
        f"/api/v1/enterprises/{plant['prefix']}/nbiot/onenet",
        json={"provisionKey": plant["key"]},
        headers=bearer(plant),
    )
    assert answer.status_code == 400
    assert "token is required" in answer.json()["detail"]


async def test_nbiot_registrations_show_in_metrics(
    client: httpx.AsyncClient, plant: dict[str, Any], app: Any
) -> None:
    await configure_nbiot(client, plant, "onenet", fixture_json("onenet/data-push.json")["token"])
    before = await scrape(client)
    for name in ("online-push.json", "data-push.json"):  # the second finds it registered
        assert (await onenet_post(client, plant["prefix"], name)).status_code == 200
    await app.state.nbiot.drained()
    after = await scrape(client)

    assert grown(before, after, "idnode_registrations_total", channel="nbiot") == 1


async def test_ctwing_pushes_that_name_no_device_or_carry_control_characters_are_refused(
    client: httpx.AsyncClient, plant: dict[str, Any], app: Any
) -> None:
    await configure_nbiot(client, plant, "ctwing", "ctw-secret-1")
    url = f"/api/v1/ingest/ctwing/{plant['prefix']}"
    push = fixture_json("ctwing/datareport-decoded.json")
    del push["IMEI"]
    cases = [
        (push, "IMEI"),
        ({**push, "IMEI": 861234056789020}, "IMEI"),
        ({**push, "IMEI": ["861234056789020"]}, "IMEI"),
        ({**push, "IMEI": "86123405678\x00020"}, "push.IMEI: contains the control character"),
        ({**push, "IMEI": CTWING_IMEI, "deviceId": "a\x00"}, "push.deviceId: contains"),
        ({**push, "IMEI": CTWING_IMEI, "payload": {"x": "\x1b"}}, "push.payload.x: contains"),
    ]
    for body, named in cases:
        answer = await client.post(url, params={"token": "ctw-secret-1"}, json=body)
        assert answer.status_code == 400, (body, answer.text)
        assert named in answer.json()["detail"]
    await app.state.nbiot.drained()
    assert app.state.nbiot.failed == 0  # refused at the door, nothing queued


async def test_onenet_pushes_without_imei_or_with_control_characters_are_refused(
    client: httpx.AsyncClient, plant: dict[str, Any]
) -> None:
    push = fixture_json("onenet/data-push.json")
    await configure_nbiot(client, plant, "onenet", push["token"])
    msg = dict(push["body"]["msg"])
    del msg["imei"]
    cases = [(msg, "msg.imei"), ({**msg, "imei": ONENET_IMEI, "ds_id": "x\x00"}, "msg.ds_id")]
    for sent, named in cases:
        text = json.dumps(sent)
        nonce = "n0nce"
        body = {
            "msg": text,
            "nonce": nonce,
            "msg_signature": onenet.signature(push["token"], nonce, text),
        }
        answer = await client.post(f"/api/v1/ingest/onenet/{plant['prefix']}", json=body)
        assert answer.status_code == 400, answer.text
        assert named in answer.json()["detail"]


async def test_wrong_push_tokens_are_throttled(
    client: httpx.AsyncClient, plant: dict[str, Any], settings: Settings
) -> None:
    await configure_nbiot(client, plant, "ctwing", "ctw-secret-1")
    url = f"/api/v1/ingest/ctwing/{plant['prefix']}"
    push = fixture_json("ctwing/datareport-decoded.json")
    for n in range(settings.auth_failures_per_credential):
        wrong = await client.post(url, params={"token": f"guess-{n}"}, json=push)
        assert wrong.status_code == 403
    right = await client.post(url, params={"token": "ctw-secret-1"}, json=push)
    assert right.status_code == 429
    assert right.headers["Retry-After"] == "60"


async def test_a_onenet_device_push_without_imei_is_refused(
    client: httpx.AsyncClient, plant: dict[str, Any]
) -> None:
    """Devices register by IMEI: a data push without one used to answer 200 and do nothing."""
    token = "idnode-onenet-token-2026"
    await configure_nbiot(client, plant, "onenet", token)
    msg = '{"type":1,"dev_id":602114887,"ds_id":"3303_0_5700","at":1763604940500,"value":4.2}'
    nonce = "Lw2Qy8Rt"
    body = json.dumps(
        {
            "msg": json.loads(msg),
            "msg_signature": onenet.signature(token, nonce, msg),
            "nonce": nonce,
        },
        separators=(",", ":"),
    )
    answer = await client.post(
        f"/api/v1/ingest/onenet/{plant['prefix']}",
        content=body.encode(),
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 400, answer.text
    assert "imei" in answer.json()["detail"]
