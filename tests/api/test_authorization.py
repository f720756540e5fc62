"""Who may do what: the authorization matrix of callers x operations, the admin identity,
and the operator API."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import OPERATOR, bearer, create_enterprise, url_value

ORIGINAL_URL = "https://trace.example.com/milk/1"
NEW_URL = "https://trace.example.com/milk/1-v2"
RESTRICTED_INDEX = 2
Headers = dict[str, str]


# --- helpers ---


def basic(user: str, secret: str) -> Headers:
    token = base64.b64encode(f"{user}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def handle_client_basic(prefix: str, secret: str) -> Headers:
    """As Handle clients send it: the user percent-encoded, ``300%3A<prefix>%2FADMIN``."""
    return basic(f"300%3A{prefix}%2FADMIN", secret)


def typed_basic(prefix: str, secret: str) -> Headers:
    """As a person types it (``curl -u 300:<prefix>/ADMIN:<secret>``): not encoded."""
    return basic(f"300:{prefix}/ADMIN", secret)


def expect(response: httpx.Response, status: int, code: int) -> dict[str, Any]:
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    body = response.json()
    assert body["responseCode"] == code, body
    if code != 1:
        assert body.get("message"), body
    if status == 401:
        assert response.headers.get("www-authenticate"), response.headers
    return dict(body)


def expect_node_error(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    """The operator API's error form: ``{"error": ClassName, "detail": ...}``."""
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    body = response.json()
    assert body.get("error") == error, body
    assert body.get("detail"), body
    if status == 401:
        assert response.headers.get("www-authenticate"), response.headers
    return dict(body)


async def disable(client: httpx.AsyncClient, prefix: str) -> None:
    answer = await client.patch(
        f"/api/v1/enterprises/{prefix}", json={"status": "disabled"}, headers=OPERATOR
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "disabled"


async def rotate(client: httpx.AsyncClient, prefix: str) -> dict[str, Any]:
    answer = await client.post(f"/api/v1/enterprises/{prefix}/credentials", headers=OPERATOR)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


async def record(client: httpx.AsyncClient, handle: str) -> httpx.Response:
    """The record as the operator sees it (to check what a refused request left behind)."""
    return await client.get(f"/api/handles/{handle}", headers=OPERATOR)


def url_of(body: dict[str, Any]) -> str:
    return str(next(v["data"]["value"] for v in body["values"] if v["type"] == "URL"))


@dataclass
class World:
    """The owning enterprise with one identifier, and a rival enterprise."""

    owner: dict[str, Any]
    rival: dict[str, Any]
    handle: str

    @property
    def prefix(self) -> str:
        return str(self.owner["prefix"])


@pytest.fixture
async def world(client: httpx.AsyncClient) -> World:
    owner = await create_enterprise(client, name="Yili Dairy")
    rival = await create_enterprise(client, name="Rival Dairy")
    handle = f"{owner['prefix']}/MILK-1"
    restricted = {
        "index": RESTRICTED_INDEX,
        "type": "EMAIL",
        "data": "quality@yili.example",
        "permissions": "1100",
    }
    answer = await client.put(
        f"/api/handles/{handle}",
        json={"values": [url_value(ORIGINAL_URL), restricted]},
        headers=bearer(owner),
    )
    assert answer.status_code == 201, answer.text
    return World(owner, rival, handle)


# --- callers: each builds its Authorization header (changing the world where needed) ---

Caller = Callable[[httpx.AsyncClient, World], Awaitable[Headers]]


async def anonymous(client: httpx.AsyncClient, world: World) -> Headers:
    return {}


async def operator(client: httpx.AsyncClient, world: World) -> Headers:
    return dict(OPERATOR)


async def owner_bearer(client: httpx.AsyncClient, world: World) -> Headers:
    return bearer(world.owner)


async def owner_basic_encoded(client: httpx.AsyncClient, world: World) -> Headers:
    return handle_client_basic(world.prefix, world.owner["secret"])


async def owner_basic_typed(client: httpx.AsyncClient, world: World) -> Headers:
    return typed_basic(world.prefix, world.owner["secret"])


async def other_enterprise(client: httpx.AsyncClient, world: World) -> Headers:
    return bearer(world.rival)


async def other_enterprise_basic(client: httpx.AsyncClient, world: World) -> Headers:
    return handle_client_basic(world.rival["prefix"], world.rival["secret"])


async def disabled_owner(client: httpx.AsyncClient, world: World) -> Headers:
    await disable(client, world.prefix)
    return bearer(world.owner)


async def disabled_owner_basic(client: httpx.AsyncClient, world: World) -> Headers:
    await disable(client, world.prefix)
    return handle_client_basic(world.prefix, world.owner["secret"])


async def wrong_secret(client: httpx.AsyncClient, world: World) -> Headers:
    return handle_client_basic(world.prefix, world.owner["secret"] + "x")


async def rival_secret_for_owner_prefix(client: httpx.AsyncClient, world: World) -> Headers:
    """A real secret, but of another enterprise than the one the user names."""
    return handle_client_basic(world.prefix, world.rival["secret"])


async def token_as_basic_secret(client: httpx.AsyncClient, world: World) -> Headers:
    return handle_client_basic(world.prefix, world.owner["token"])


async def secret_as_bearer(client: httpx.AsyncClient, world: World) -> Headers:
    return {"Authorization": f"Bearer {world.owner['secret']}"}


async def unknown_token(client: httpx.AsyncClient, world: World) -> Headers:
    return {"Authorization": "Bearer idn_this-token-was-never-issued"}


async def revoked_token(client: httpx.AsyncClient, world: World) -> Headers:
    await rotate(client, world.prefix)
    return bearer(world.owner)


async def revoked_secret(client: httpx.AsyncClient, world: World) -> Headers:
    await rotate(client, world.prefix)
    return handle_client_basic(world.prefix, world.owner["secret"])


# --- the matrix ---

OK = (200, 1)
AUTH_NEEDED = (401, 402)
DENIED = (403, 401)


@dataclass(frozen=True)
class Expected:
    read: tuple[int, int]
    write: tuple[int, int]
    delete: tuple[int, int]
    sees_restricted: bool | None = None  # None: not asserted


MATRIX: dict[str, tuple[Caller, Expected]] = {
    "anonymous": (anonymous, Expected(OK, AUTH_NEEDED, AUTH_NEEDED, sees_restricted=False)),
    "operator": (operator, Expected(OK, OK, OK, sees_restricted=True)),
    "owner-bearer": (owner_bearer, Expected(OK, OK, OK, sees_restricted=True)),
    "owner-basic-encoded": (owner_basic_encoded, Expected(OK, OK, OK, sees_restricted=True)),
    "owner-basic-typed": (owner_basic_typed, Expected(OK, OK, OK, sees_restricted=True)),
    "other-enterprise": (other_enterprise, Expected(OK, DENIED, DENIED, sees_restricted=False)),
    "other-enterprise-basic": (
        other_enterprise_basic,
        Expected(OK, DENIED, DENIED, sees_restricted=False),
    ),
    "disabled-owner": (disabled_owner, Expected(OK, DENIED, DENIED)),
    "disabled-owner-basic": (disabled_owner_basic, Expected(OK, DENIED, DENIED)),
    "wrong-secret": (wrong_secret, Expected(AUTH_NEEDED, AUTH_NEEDED, AUTH_NEEDED)),
    "rival-secret-for-owner-prefix": (
        rival_secret_for_owner_prefix,
        Expected(AUTH_NEEDED, AUTH_NEEDED, AUTH_NEEDED),
    ),
    "token-as-basic-secret": (
        token_as_basic_secret,
        Expected(AUTH_NEEDED, AUTH_NEEDED, AUTH_NEEDED),
    ),
    "secret-as-bearer": (secret_as_bearer, Expected(AUTH_NEEDED, AUTH_NEEDED, AUTH_NEEDED)),
    "unknown-token": (unknown_token, Expected(AUTH_NEEDED, AUTH_NEEDED, AUTH_NEEDED)),
    "revoked-token": (revoked_token, Expected(AUTH_NEEDED, AUTH_NEEDED, AUTH_NEEDED)),
    "revoked-secret": (revoked_secret, Expected(AUTH_NEEDED, AUTH_NEEDED, AUTH_NEEDED)),
}
CALLERS = pytest.mark.parametrize("caller", MATRIX.keys())


async def setup_caller(client: httpx.AsyncClient, world: World, caller: str) -> Headers:
    make, _ = MATRIX[caller]
    return await make(client, world)


@CALLERS
async def test_read(client: httpx.AsyncClient, world: World, caller: str) -> None:
    headers = await setup_caller(client, world, caller)
    expected = MATRIX[caller][1]
    answer = await client.get(f"/api/handles/{world.handle}", headers=headers)
    body = expect(answer, *expected.read)
    if expected.read == OK:
        assert url_of(body) == ORIGINAL_URL
    if expected.sees_restricted is not None:
        shown = RESTRICTED_INDEX in [v["index"] for v in body["values"]]
        assert shown is expected.sees_restricted, body


@CALLERS
async def test_write(client: httpx.AsyncClient, world: World, caller: str) -> None:
    headers = await setup_caller(client, world, caller)
    expected = MATRIX[caller][1]
    answer = await client.put(
        f"/api/handles/{world.handle}", json={"values": [url_value(NEW_URL)]}, headers=headers
    )
    expect(answer, *expected.write)
    after = expect(await record(client, world.handle), 200, 1)
    assert url_of(after) == (NEW_URL if expected.write == OK else ORIGINAL_URL)


@CALLERS
async def test_create(client: httpx.AsyncClient, world: World, caller: str) -> None:
    headers = await setup_caller(client, world, caller)
    expected = MATRIX[caller][1]
    handle = f"{world.prefix}/MILK-NEW"
    answer = await client.put(
        f"/api/handles/{handle}", json={"values": [url_value(NEW_URL)]}, headers=headers
    )
    if expected.write == OK:
        expect(answer, 201, 1)
        expect(await record(client, handle), 200, 1)
    else:
        expect(answer, *expected.write)
        expect(await record(client, handle), 404, 100)


@CALLERS
async def test_delete(client: httpx.AsyncClient, world: World, caller: str) -> None:
    headers = await setup_caller(client, world, caller)
    expected = MATRIX[caller][1]
    answer = await client.delete(f"/api/handles/{world.handle}", headers=headers)
    expect(answer, *expected.delete)
    expect(await record(client, world.handle), *((404, 100) if expected.delete == OK else OK))


# --- a disabled enterprise: writes refused, identifiers still resolve, re-enabling restores ---


async def test_disabled_enterprise_identifiers_still_resolve(
    client: httpx.AsyncClient, world: World
) -> None:
    await disable(client, world.prefix)
    body = expect(await client.get(f"/api/handles/{world.handle}"), 200, 1)
    assert url_of(body) == ORIGINAL_URL
    scanned = await client.get(f"/{world.handle}")
    assert scanned.status_code == 302
    assert scanned.headers["location"] == ORIGINAL_URL


async def test_reenabled_enterprise_writes_again(client: httpx.AsyncClient, world: World) -> None:
    await disable(client, world.prefix)
    enabled = await client.patch(
        f"/api/v1/enterprises/{world.prefix}", json={"status": "active"}, headers=OPERATOR
    )
    assert enabled.status_code == 200, enabled.text
    answer = await client.put(
        f"/api/handles/{world.handle}",
        json={"values": [url_value(NEW_URL)]},
        headers=bearer(world.owner),
    )
    assert url_of(expect(answer, 200, 1)) == NEW_URL


# --- <prefix>/ADMIN is the node's: nobody writes it ---

ADMIN_WRITERS = {
    "owner-bearer": owner_bearer,
    "owner-basic": owner_basic_encoded,
    "operator": operator,
    "other-enterprise": other_enterprise,
}


@pytest.mark.parametrize("who", ADMIN_WRITERS.keys())
@pytest.mark.parametrize("method", ["PUT", "DELETE"])
async def test_nobody_writes_the_admin_identity(
    client: httpx.AsyncClient, world: World, who: str, method: str
) -> None:
    headers = await ADMIN_WRITERS[who](client, world)
    admin = f"{world.prefix}/ADMIN"
    before = expect(await record(client, admin), 200, 1)
    answer = await client.request(
        method,
        f"/api/handles/{admin}",
        json={"values": [url_value("https://evil.example")]} if method == "PUT" else None,
        headers=headers,
    )
    expect(answer, *DENIED)
    assert expect(await record(client, admin), 200, 1) == before


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
async def test_anonymous_cannot_write_the_admin_identity(
    client: httpx.AsyncClient, world: World, method: str
) -> None:
    admin = f"{world.prefix}/ADMIN"
    answer = await client.request(
        method,
        f"/api/handles/{admin}",
        json={"values": [url_value("https://evil.example")]} if method == "PUT" else None,
    )
    expect(answer, *AUTH_NEEDED)
    expect(await record(client, admin), 200, 1)


async def test_owner_cannot_add_a_value_to_the_admin_identity(
    client: httpx.AsyncClient, world: World
) -> None:
    admin = f"{world.prefix}/ADMIN"
    answer = await client.put(
        f"/api/handles/{admin}",
        params={"index": 1},
        json={"values": [url_value("https://evil.example")]},
        headers=bearer(world.owner),
    )
    expect(answer, *DENIED)


async def test_enterprise_cannot_write_prefix_records(
    client: httpx.AsyncClient, world: World
) -> None:
    answer = await client.put(
        f"/api/handles/0.NA/{world.prefix}",
        json={"values": [url_value("https://evil.example")]},
        headers=bearer(world.owner),
    )
    expect(answer, *DENIED)


# --- the operator API ---

OPERATOR_ONLY = [
    ("POST", "/api/v1/enterprises", {"name": "Sneaky Dairy"}),
    ("GET", "/api/v1/enterprises", None),
    ("PATCH", "/api/v1/enterprises/{own}", {"status": "active"}),
    ("PATCH", "/api/v1/enterprises/{rival}", {"status": "disabled"}),
]
OPERATOR_ONLY_IDS = ["create", "list", "patch-own", "patch-other"]


def fill(path: str, world: World) -> str:
    return path.format(own=world.prefix, rival=world.rival["prefix"])


@pytest.mark.parametrize("auth", ["bearer", "basic"])
@pytest.mark.parametrize(("method", "path", "body"), OPERATOR_ONLY, ids=OPERATOR_ONLY_IDS)
async def test_operator_api_refuses_enterprises(
    client: httpx.AsyncClient,
    world: World,
    auth: str,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    headers = (
        bearer(world.owner)
        if auth == "bearer"
        else handle_client_basic(world.prefix, world.owner["secret"])
    )
    answer = await client.request(method, fill(path, world), json=body, headers=headers)
    expect_node_error(answer, 403, "PermissionDenied")
    await assert_operator_api_untouched(client, world)


@pytest.mark.parametrize(("method", "path", "body"), OPERATOR_ONLY, ids=OPERATOR_ONLY_IDS)
async def test_operator_api_asks_anonymous_callers_to_authenticate(
    client: httpx.AsyncClient, world: World, method: str, path: str, body: dict[str, Any] | None
) -> None:
    answer = await client.request(method, fill(path, world), json=body)
    expect_node_error(answer, 401, "AuthenticationRequired")
    await assert_operator_api_untouched(client, world)


@pytest.mark.parametrize(("method", "path", "body"), OPERATOR_ONLY, ids=OPERATOR_ONLY_IDS)
async def test_operator_api_refuses_wrong_credentials(
    client: httpx.AsyncClient, world: World, method: str, path: str, body: dict[str, Any] | None
) -> None:
    headers = {"Authorization": "Bearer not-the-operator-token"}
    answer = await client.request(method, fill(path, world), json=body, headers=headers)
    expect_node_error(answer, 401, "AuthenticationFailed")
    await assert_operator_api_untouched(client, world)


async def assert_operator_api_untouched(client: httpx.AsyncClient, world: World) -> None:
    """No enterprise was added (88.999.3 would be next) and none changed status."""
    for prefix in (world.prefix, world.rival["prefix"]):
        shown = await client.get(f"/api/v1/enterprises/{prefix}", headers=OPERATOR)
        assert shown.status_code == 200, shown.text
        assert shown.json()["status"] == "active"
    added = await client.get("/api/v1/enterprises/88.999.3", headers=OPERATOR)
    expect_node_error(added, 404, "EnterpriseNotFound")


@pytest.mark.parametrize("auth", ["bearer", "basic"])
async def test_enterprise_sees_its_own_enterprise(
    client: httpx.AsyncClient, world: World, auth: str
) -> None:
    headers = (
        bearer(world.owner)
        if auth == "bearer"
        else handle_client_basic(world.prefix, world.owner["secret"])
    )
    answer = await client.get(f"/api/v1/enterprises/{world.prefix}", headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["prefix"] == world.prefix
    assert "secret" not in answer.json()


async def test_enterprise_cannot_see_another_enterprise(
    client: httpx.AsyncClient, world: World
) -> None:
    answer = await client.get(
        f"/api/v1/enterprises/{world.rival['prefix']}", headers=bearer(world.owner)
    )
    expect_node_error(answer, 403, "PermissionDenied")


async def test_anonymous_cannot_see_an_enterprise(client: httpx.AsyncClient, world: World) -> None:
    answer = await client.get(f"/api/v1/enterprises/{world.prefix}")
    expect_node_error(answer, 401, "AuthenticationRequired")


async def test_operator_sees_any_enterprise(client: httpx.AsyncClient, world: World) -> None:
    for prefix in (world.prefix, world.rival["prefix"]):
        answer = await client.get(f"/api/v1/enterprises/{prefix}", headers=OPERATOR)
        assert answer.status_code == 200, answer.text
        assert answer.json()["prefix"] == prefix


async def test_enterprise_rotates_its_own_credentials(
    client: httpx.AsyncClient, world: World
) -> None:
    answer = await client.post(
        f"/api/v1/enterprises/{world.prefix}/credentials", headers=bearer(world.owner)
    )
    assert answer.status_code == 200, answer.text
    fresh = answer.json()
    assert fresh["token"] != world.owner["token"]
    expect(await client.get(f"/api/handles/{world.handle}", headers=bearer(world.owner)), 401, 402)
    expect(await client.get(f"/api/handles/{world.handle}", headers=bearer(fresh)), 200, 1)


async def test_enterprise_cannot_rotate_another_enterprise(
    client: httpx.AsyncClient, world: World
) -> None:
    answer = await client.post(
        f"/api/v1/enterprises/{world.rival['prefix']}/credentials", headers=bearer(world.owner)
    )
    expect_node_error(answer, 403, "PermissionDenied")
    still = await client.get(f"/api/handles/{world.handle}", headers=bearer(world.rival))
    expect(still, 200, 1)


async def test_anonymous_cannot_rotate_credentials(client: httpx.AsyncClient, world: World) -> None:
    answer = await client.post(f"/api/v1/enterprises/{world.prefix}/credentials")
    expect_node_error(answer, 401, "AuthenticationRequired")
    expect(await client.get(f"/api/handles/{world.handle}", headers=bearer(world.owner)), 200, 1)
