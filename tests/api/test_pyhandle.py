"""The EUDAT pyhandle REST client, unchanged, against a real ``idnode serve`` process.

pyhandle is what Handle users already script with: it must register, read, change and delete
identifiers on this node exactly as on a Handle.Net server (docs/domain.md section 3). Every
step checks what the client returns and, where it matters, what a plain GET shows.
"""

from __future__ import annotations

import time
import uuid
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from pyhandle.client.resthandleclient import RESTHandleClient
from pyhandle.handleexceptions import (
    GenericHandleError,
    HandleAlreadyExistsException,
    HandleAuthenticationError,
    HandleNotFoundException,
)

from tests.conftest import OPERATOR, LiveNode

pytestmark = pytest.mark.slow

PYHANDLE_ADMIN_PERMISSIONS = "011111110011"  # what pyhandle writes into the HS_ADMIN it sends


def create_enterprise(node: LiveNode, name: str = "Yili Dairy") -> dict[str, Any]:
    response = httpx.post(f"{node.url}/api/v1/enterprises", json={"name": name}, headers=OPERATOR)
    assert response.status_code == 201, response.text
    issued = dict(response.json())
    assert {"prefix", "adminHandle", "secret", "token"} <= issued.keys()
    return issued


def login(node: LiveNode, enterprise: dict[str, Any], secret: str | None = None) -> Any:
    """A pyhandle write client, logged in the way Handle users do: ``300:<prefix>/ADMIN``."""
    return RESTHandleClient.instantiate_with_username_and_password(
        node.url,
        "300:" + enterprise["adminHandle"],
        enterprise["secret"] if secret is None else secret,
    )


def http_get(node: LiveNode, handle: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{node.url}/api/handles/{handle}", params=params)


def values_by_type(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["type"]: v for v in body["values"]}


@pytest.fixture
def enterprise(live_node: LiveNode) -> dict[str, Any]:
    return create_enterprise(live_node)


@pytest.fixture
def writer(live_node: LiveNode, enterprise: dict[str, Any]) -> Any:
    return login(live_node, enterprise)


def new_handle(enterprise: dict[str, Any], stem: str = "MILK") -> str:
    return f"{enterprise['prefix']}/{stem}-{uuid.uuid4().hex[:8].upper()}"


def test_register_handle_and_read_it_back(
    live_node: LiveNode, enterprise: dict[str, Any], writer: Any
) -> None:
    handle = new_handle(enterprise)
    url = "https://trace.example.com/milk/000123"

    assert writer.register_handle(handle, url, checksum="md5:0cc175b9c0f1b6a8") == handle

    # What anyone resolving the identifier sees: pyhandle's URL at index 1, its CHECKSUM, and
    # the HS_ADMIN pyhandle sent (0.NA/<prefix>, index 200) at index 100.
    resolved = http_get(live_node, handle)
    assert resolved.status_code == 200
    body = resolved.json()
    assert body["responseCode"] == 1
    assert body["handle"] == handle
    by_type = values_by_type(body)
    assert by_type.keys() == {"URL", "CHECKSUM", "HS_ADMIN"}
    assert by_type["URL"]["index"] == 1
    assert by_type["URL"]["data"] == {"format": "string", "value": url}
    assert by_type["CHECKSUM"]["data"] == {"format": "string", "value": "md5:0cc175b9c0f1b6a8"}
    assert by_type["HS_ADMIN"]["index"] == 100
    assert by_type["HS_ADMIN"]["data"] == {
        "format": "admin",
        "value": {
            "handle": f"0.NA/{enterprise['prefix']}",
            "index": 200,  # pyhandle sends "200"; Handle answers a number
            "permissions": PYHANDLE_ADMIN_PERMISSIONS,
        },
    }
    for value in body["values"]:
        assert value["ttl"] == 86400
        assert value["timestamp"].endswith("Z")

    # The same through the client.
    assert writer.retrieve_handle_record_json(handle) == body
    record = writer.retrieve_handle_record(handle)
    assert record is not None
    assert record["URL"] == url
    assert record["CHECKSUM"] == "md5:0cc175b9c0f1b6a8"
    assert "0.NA/" + enterprise["prefix"] in record["HS_ADMIN"]
    assert writer.get_value_from_handle(handle, "URL") == url
    assert writer.get_value_from_handle(handle, "EMAIL") is None

    # pyhandle's index= and type= filters reach the node.
    only_url = writer.retrieve_handle_record_json(handle, indices=[1])
    assert [v["type"] for v in only_url["values"]] == ["URL"]
    only_checksum = writer.retrieve_handle_record_json(handle, type=["CHECKSUM"])
    assert [v["type"] for v in only_checksum["values"]] == ["CHECKSUM"]
    nothing = writer.retrieve_handle_record_json(handle, type=["EMAIL"])
    assert nothing["responseCode"] == 200  # Handle's "values not found", which pyhandle accepts
    assert nothing["values"] == []

    # A scanned code goes where pyhandle pointed it.
    scanned = httpx.get(f"{live_node.url}/{handle}")
    assert scanned.status_code == 302
    assert scanned.headers["location"] == url


def test_register_handle_with_extra_types_and_non_ascii_values(
    live_node: LiveNode, enterprise: dict[str, Any], writer: Any
) -> None:
    handle = new_handle(enterprise)
    name = "伊利纯牛奶 250ml"

    writer.register_handle(handle, "https://trace.example.com/p/1", PRODUCT_NAME=name)

    assert writer.get_value_from_handle(handle, "PRODUCT_NAME") == name
    resolved = http_get(live_node, handle)
    assert values_by_type(resolved.json())["PRODUCT_NAME"]["data"]["value"] == name


def test_register_handle_json_keeps_the_indexes_sent(
    live_node: LiveNode, enterprise: dict[str, Any], writer: Any
) -> None:
    handle = new_handle(enterprise)
    entries = [
        {"index": 1, "type": "URL", "data": "https://trace.example.com/milk/j"},
        {"index": 2001, "type": "PRODUCTION_DATE", "data": {"format": "string", "value": "2026"}},
    ]

    assert writer.register_handle_json(handle, entries) == handle

    body = http_get(live_node, handle).json()
    assert [(v["index"], v["type"]) for v in body["values"]] == [
        (1, "URL"),
        (100, "HS_ADMIN"),
        (2001, "PRODUCTION_DATE"),
    ]
    assert writer.get_value_from_handle(handle, "PRODUCTION_DATE") == "2026"


def test_suffixes_with_slashes_spaces_and_chinese(
    live_node: LiveNode, enterprise: dict[str, Any], writer: Any
) -> None:
    for suffix in ("批次/2026/001", "LOT 7", "lower.case-mixed_Case"):
        handle = f"{enterprise['prefix']}/{suffix}"
        url = f"https://trace.example.com/{uuid.uuid4().hex}"

        assert writer.register_handle(handle, url) == handle
        assert writer.get_value_from_handle(handle, "URL") == url
        resolved = httpx.get(f"{live_node.url}/api/handles/{quote(handle)}")
        assert resolved.json()["handle"] == handle
        assert writer.delete_handle(handle) == handle
        assert writer.retrieve_handle_record(handle) is None


def test_modify_handle_value_adds_and_changes_values(
    live_node: LiveNode, enterprise: dict[str, Any], writer: Any
) -> None:
    handle = new_handle(enterprise)
    writer.register_handle(handle, "https://trace.example.com/milk/1")
    before = values_by_type(http_get(live_node, handle).json())
    time.sleep(1.1)  # timestamps have one-second resolution

    # A new key is added under a fresh index; nothing else moves.
    assert writer.modify_handle_value(handle, EMAIL="qa@yili.example") == handle
    added = values_by_type(http_get(live_node, handle).json())
    assert added.keys() == {"URL", "EMAIL", "HS_ADMIN"}
    assert added["EMAIL"]["index"] == 2
    assert added["EMAIL"]["data"] == {"format": "string", "value": "qa@yili.example"}
    assert added["URL"] == before["URL"]
    assert added["HS_ADMIN"] == before["HS_ADMIN"]
    assert writer.get_value_from_handle(handle, "EMAIL") == "qa@yili.example"

    # An existing key is changed in place: same index, new data, new timestamp.
    new_url = "https://trace.example.com/milk/1?v=2"
    assert writer.modify_handle_value(handle, URL=new_url) == handle
    changed = values_by_type(http_get(live_node, handle).json())
    assert changed["URL"]["index"] == 1
    assert changed["URL"]["data"] == {"format": "string", "value": new_url}
    assert changed["URL"]["timestamp"] > before["URL"]["timestamp"]
    assert changed["EMAIL"] == added["EMAIL"]
    assert changed["HS_ADMIN"] == before["HS_ADMIN"]
    assert writer.retrieve_handle_record(handle)["URL"] == new_url

    # A ttl given to pyhandle is stored on the new value.
    writer.modify_handle_value(handle, ttl=3600, BATCH="2026-11-26-A")
    batch = values_by_type(http_get(live_node, handle).json())["BATCH"]
    assert batch["ttl"] == 3600
    assert batch["data"]["value"] == "2026-11-26-A"


def test_delete_handle_value_removes_only_that_value(
    live_node: LiveNode, enterprise: dict[str, Any], writer: Any
) -> None:
    handle = new_handle(enterprise)
    url = "https://trace.example.com/milk/2"
    writer.register_handle(handle, url, checksum="sha1:abc")
    writer.modify_handle_value(handle, EMAIL="qa@yili.example")

    assert writer.delete_handle_value(handle, "CHECKSUM") == handle

    after = http_get(live_node, handle).json()
    assert after["responseCode"] == 1
    assert set(values_by_type(after)) == {"URL", "EMAIL", "HS_ADMIN"}
    assert writer.get_value_from_handle(handle, "CHECKSUM") is None
    assert writer.get_value_from_handle(handle, "URL") == url

    # Several keys at once.
    assert writer.delete_handle_value(handle, ["EMAIL", "URL"]) == handle
    assert set(values_by_type(http_get(live_node, handle).json())) == {"HS_ADMIN"}

    # A key the record does not hold: pyhandle sends nothing and the record is untouched.
    assert writer.delete_handle_value(handle, "NOT_THERE") is None
    assert set(values_by_type(http_get(live_node, handle).json())) == {"HS_ADMIN"}


def test_delete_handle_then_it_is_gone(
    live_node: LiveNode, enterprise: dict[str, Any], writer: Any
) -> None:
    handle = new_handle(enterprise)
    writer.register_handle(handle, "https://trace.example.com/milk/3")

    assert writer.delete_handle(handle) == handle

    assert writer.retrieve_handle_record(handle) is None
    assert writer.retrieve_handle_record_json(handle) is None
    gone = http_get(live_node, handle)
    assert gone.status_code == 404
    assert gone.json()["responseCode"] == 100
    with pytest.raises(HandleNotFoundException):
        writer.get_value_from_handle(handle, "URL")
    with pytest.raises(HandleNotFoundException):
        writer.modify_handle_value(handle, URL="https://trace.example.com/milk/3b")
    with pytest.raises(HandleNotFoundException):
        writer.delete_handle(handle)

    # The name is free again.
    assert writer.register_handle(handle, "https://trace.example.com/milk/3c") == handle
    assert writer.get_value_from_handle(handle, "URL") == "https://trace.example.com/milk/3c"


def test_register_existing_handle_without_overwrite_is_refused(
    live_node: LiveNode, enterprise: dict[str, Any], writer: Any
) -> None:
    handle = new_handle(enterprise)
    writer.register_handle(handle, "https://trace.example.com/milk/4", checksum="sha1:first")
    original = http_get(live_node, handle).json()

    with pytest.raises(HandleAlreadyExistsException):
        writer.register_handle(handle, "https://attacker.example/")
    with pytest.raises(HandleAlreadyExistsException):
        writer.register_handle(handle, "https://attacker.example/", overwrite=False)
    assert http_get(live_node, handle).json() == original

    # The node itself refuses too (pyhandle checks with a GET first; other clients do not).
    refused = httpx.put(
        f"{live_node.url}/api/handles/{handle}",
        params={"overwrite": "false"},
        json={"values": [{"index": 1, "type": "URL", "data": "https://attacker.example/"}]},
        headers={"Authorization": f"Bearer {enterprise['token']}"},
    )
    assert refused.status_code == 409
    assert refused.json()["responseCode"] == 101
    assert http_get(live_node, handle).json() == original

    # overwrite=True replaces the whole record.
    replacement = "https://trace.example.com/milk/4?recalled=1"
    assert writer.register_handle(handle, replacement, overwrite=True) == handle
    replaced = values_by_type(http_get(live_node, handle).json())
    assert replaced.keys() == {"URL", "HS_ADMIN"}
    assert replaced["URL"]["data"]["value"] == replacement


def test_generate_and_register_handle(
    live_node: LiveNode, enterprise: dict[str, Any], writer: Any
) -> None:
    url = "https://trace.example.com/milk/generated"

    handle = writer.generate_and_register_handle(enterprise["prefix"], url, checksum="sha1:gen")

    prefix, _, suffix = handle.partition("/")
    assert prefix == enterprise["prefix"]
    assert str(uuid.UUID(suffix)) == suffix  # pyhandle's client-side UUID, kept as sent
    assert writer.get_value_from_handle(handle, "URL") == url
    resolved = http_get(live_node, handle).json()
    assert resolved["handle"] == handle
    assert values_by_type(resolved)["CHECKSUM"]["data"]["value"] == "sha1:gen"


def test_wrong_password_is_refused_on_write(
    live_node: LiveNode, enterprise: dict[str, Any], writer: Any
) -> None:
    existing = new_handle(enterprise)
    writer.register_handle(existing, "https://trace.example.com/milk/5")
    original = http_get(live_node, existing).json()

    # pyhandle only checks that the admin handle exists when logging in; the secret is
    # checked by the node on the first write.
    intruder = login(live_node, enterprise, secret="not-the-secret")

    fresh = new_handle(enterprise)
    with pytest.raises(HandleAuthenticationError) as raised:
        intruder.register_handle(fresh, "https://attacker.example/")
    assert raised.value.response.status_code == 401
    assert http_get(live_node, fresh).status_code == 404

    with pytest.raises(HandleAuthenticationError):
        intruder.modify_handle_value(existing, URL="https://attacker.example/")
    with pytest.raises(HandleAuthenticationError):
        intruder.delete_handle_value(existing, "URL")
    with pytest.raises(HandleAuthenticationError):
        intruder.delete_handle(existing)
    assert http_get(live_node, existing).json() == original


def test_login_needs_an_admin_handle_the_node_knows(live_node: LiveNode) -> None:
    with pytest.raises(HandleNotFoundException):
        RESTHandleClient.instantiate_with_username_and_password(
            live_node.url, "300:88.999.4242/ADMIN", "whatever"
        )


def test_another_enterprise_cannot_write_here(
    live_node: LiveNode, enterprise: dict[str, Any], writer: Any
) -> None:
    handle = new_handle(enterprise)
    writer.register_handle(handle, "https://trace.example.com/milk/6")
    original = http_get(live_node, handle).json()
    rival = create_enterprise(live_node, "Mengniu")

    # The rival's secret does not open this enterprise's admin identity ...
    borrowed = login(live_node, enterprise, secret=rival["secret"])
    with pytest.raises(HandleAuthenticationError):
        borrowed.modify_handle_value(handle, URL="https://rival.example/")

    # ... and the rival's own login may not write under this prefix.
    rival_client = login(live_node, rival)
    with pytest.raises(GenericHandleError) as raised:
        rival_client.modify_handle_value(handle, URL="https://rival.example/")
    assert raised.value.response.status_code == 403
    assert raised.value.response.json()["responseCode"] == 401
    with pytest.raises(GenericHandleError):
        rival_client.register_handle(new_handle(enterprise), "https://rival.example/")
    assert http_get(live_node, handle).json() == original

    # Nor may the enterprise itself remove the admin identity pyhandle logs in with.
    with pytest.raises(GenericHandleError) as raised:
        writer.delete_handle(enterprise["adminHandle"])
    assert raised.value.response.status_code == 403
    assert login(live_node, enterprise).get_value_from_handle(handle, "URL") is not None


def test_read_only_client_resolves(
    live_node: LiveNode, enterprise: dict[str, Any], writer: Any
) -> None:
    handle = new_handle(enterprise)
    url = "https://trace.example.com/milk/7"
    writer.register_handle(handle, url)

    reader = RESTHandleClient.instantiate_for_read_access(live_node.url)

    assert reader.retrieve_handle_record(handle)["URL"] == url
    assert reader.get_value_from_handle(handle, "URL") == url
    assert reader.retrieve_handle_record_json(handle) == http_get(live_node, handle).json()
    assert reader.retrieve_handle_record(new_handle(enterprise, "UNKNOWN")) is None
    with pytest.raises(HandleAuthenticationError):
        reader.register_handle(new_handle(enterprise), "https://anonymous.example/")
    with pytest.raises(HandleAuthenticationError):
        reader.delete_handle(handle)
    assert reader.get_value_from_handle(handle, "URL") == url
