"""The lean resolve path (``app/api/fast.py``) against the FastAPI route it short-cuts.

A plain anonymous ``GET /api/handles/{handle}`` is answered by an ASGI middleware before
FastAPI — from the cache on a hit, through the engine on a miss; everything else goes to the
route. These tests pin down that the lean path and the route give the very same answer, that
only plain anonymous requests take the short cut, that a write is seen at once, that a flood
of unknown identifiers costs one lookup each, and the HTTP caching headers.

Which path answered is observed two ways: the cache counters (``hits``, ``negative_hits``,
``loads``) and a counter in front of FastAPI's router, which only requests the lean path
passes on reach. To send one request down both paths, a second node on the same database
runs with ``lean_resolve=False`` (``IDNODE_LEAN_RESOLVE=false``): every resolve is routed.

The caches' clocks are frozen (``FakeClock``) so lifetimes are exact. The background task that
syncs a cache with other processes (``cache-invalidation``) is stopped: it clears or evicts
entries at moments of its own choosing, and the writes these tests make must invalidate the
cache of their own process without its help.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from app.cache_sync import PostgresListener
from app.main import create_app
from app.settings import Settings
from resolver.cache import ResolverCache
from tests.conftest import asgi_client, bearer, create_enterprise, url_value

API = "/api/handles/"
PUBLIC_URL = "https://trace.example.com/milk/1"
SECRET_URL = "https://internal.example.com/recipe/1"
NEW_URL = "https://trace.example.com/v2/milk-1"
EMAIL = "dairy@example.com"
RESTRICTED = "1100"  # admin read + write, no public read
MAX_TTL = 3600  # Settings.cache_max_ttl default: caps every lifetime
IGNORED_HEADERS = {"date", "server", "x-request-id"}  # per request, like date (see test_logs.py)
RequestHeaders = dict[str, str] | list[tuple[str, str]]


# --- observing the node ---


class FakeClock:
    """A monotonic clock that only moves when told to."""

    def __init__(self, start: float = 50_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Probe:
    """A node's cache, its frozen clock, and the resolves that reached its FastAPI router."""

    cache: ResolverCache
    clock: FakeClock
    routed: list[str] = field(default_factory=list)

    def counters(self) -> dict[str, int]:
        stats = self.cache.stats
        return {
            "hits": stats.hits,
            "misses": stats.misses,
            "negative_hits": stats.negative_hits,
            "loads": stats.loads,
            "routed": len(self.routed),
        }

    def delta(self, before: dict[str, int]) -> dict[str, int]:
        now = self.counters()
        return {name: now[name] - before[name] for name in now}


def cache_sync_task(app: Any) -> asyncio.Task[Any]:
    """The lifespan's ``cache-invalidation`` task of *this* app (not of another one)."""
    cache = app.state.node.resolver.cache
    for task in asyncio.all_tasks():
        if task.get_name() != "cache-invalidation" or task.done():
            continue
        # The supervisor runs it: its ``loop`` closes over the cache it keeps in sync.
        frame = getattr(task.get_coro(), "cr_frame", None)
        loop = frame.f_locals.get("loop") if frame is not None else None
        cells = getattr(loop, "__closure__", None) or ()
        if any(cell.cell_contents is cache for cell in cells):
            return task
    raise AssertionError("the app's cache-invalidation task is not running")


def postgres_listener(task: asyncio.Task[Any]) -> PostgresListener | None:
    """The listener a running ``cache-invalidation`` task is in, if it is a PostgreSQL one."""
    coro: Any = task.get_coro()
    while coro is not None:
        frame = getattr(coro, "cr_frame", None)
        if frame is not None and isinstance(frame.f_locals.get("self"), PostgresListener):
            return frame.f_locals["self"]  # type: ignore[no-any-return]
        coro = getattr(coro, "cr_await", None)
    return None


async def stop_cache_sync(app: Any) -> None:
    task = cache_sync_task(app)
    if not app.state.node.database.is_sqlite:
        # Let the listener finish connecting (and clearing the cache, as it does on connect):
        # cancelled halfway through asyncpg's handshake it leaves a future nobody awaits.
        for _ in range(200):
            listener = postgres_listener(task)
            if listener is not None and listener.connected.is_set():
                break
            await asyncio.sleep(0.025)
        else:
            raise AssertionError("the PostgreSQL cache listener did not connect within 5 s")
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.done()


def install_probe(app: Any, monkeypatch: pytest.MonkeyPatch) -> Probe:
    """Freeze the cache's clock and count the resolves that reach FastAPI's router."""
    cache: ResolverCache = app.state.node.resolver.cache
    clock = FakeClock()
    cache.clock = clock
    probe = Probe(cache, clock)
    router = app.router
    inner = router.middleware_stack  # what Router.__call__ runs: the routes

    async def counting(scope: Any, receive: Any, send: Any) -> None:
        http_get = scope["type"] == "http" and scope["method"] == "GET"
        if http_get and scope["path"].startswith(API):
            probe.routed.append(scope["path"][len(API) :])
        await inner(scope, receive, send)

    monkeypatch.setattr(router, "middleware_stack", counting)
    return probe


@pytest.fixture
async def probe(app: Any, monkeypatch: pytest.MonkeyPatch) -> Probe:
    """The node under test (lean path on): frozen clock, route counter, no background sync."""
    await stop_cache_sync(app)
    return install_probe(app, monkeypatch)


@dataclass
class Routed:
    """A second node on the same database with the lean path off: everything is routed."""

    client: httpx.AsyncClient
    probe: Probe


@pytest.fixture
async def routed(
    app: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Routed]:
    other = create_app(settings.model_copy(update={"lean_resolve": False}))
    async with other.router.lifespan_context(other):
        await stop_cache_sync(other)
        async with asgi_client(other) as http:
            yield Routed(http, install_probe(other, monkeypatch))


@pytest.fixture
async def enterprise(client: httpx.AsyncClient, probe: Probe) -> dict[str, Any]:
    return await create_enterprise(client)


# --- requests and answers ---


def handle_url(handle: str) -> str:
    return API + handle


async def put(
    client: httpx.AsyncClient, owner: dict[str, Any], handle: str, values: list[dict[str, Any]]
) -> None:
    response = await client.put(handle_url(handle), json={"values": values}, headers=bearer(owner))
    assert response.status_code in (200, 201), response.text


def restricted_value(url: str, index: int = 2) -> dict[str, Any]:
    return {**url_value(url, index), "permissions": RESTRICTED}


def email_value(index: int = 3) -> dict[str, Any]:
    return {"index": index, "type": "EMAIL", "data": {"format": "string", "value": EMAIL}}


def with_ttl(value: dict[str, Any], ttl: int) -> dict[str, Any]:
    return {**value, "ttl": ttl}


def comparable_headers(response: httpx.Response) -> list[tuple[str, str]]:
    """Every header (duplicates kept), in a stable order, without date and server."""
    return sorted(
        (name.lower(), value)
        for name, value in response.headers.multi_items()
        if name.lower() not in IGNORED_HEADERS
    )


def data_values(response: httpx.Response) -> list[Any]:
    return [v["data"]["value"] for v in response.json()["values"]]


def assert_same_answer(expected: httpx.Response, *others: httpx.Response) -> None:
    for other in others:
        assert other.status_code == expected.status_code, (expected.status_code, other.text)
        assert comparable_headers(other) == comparable_headers(expected)
        assert other.content == expected.content


async def ask_both_twice(
    client: httpx.AsyncClient,
    probe: Probe,
    routed: Routed,
    path: str,
    headers: RequestHeaders,
    *,
    cached: bool,
) -> list[httpx.Response]:
    """The request twice to the lean node (a miss, then a hit when ``cached``) and twice to
    the routed node; checks which path answered each, returns the four answers."""
    key = path[len(API) :]
    probe.cache.evict(key)
    routed.probe.cache.evict(key)
    answers = []

    before = probe.counters()
    answers.append(await client.get(path, headers=headers))
    moved = probe.delta(before)
    assert moved["routed"] == 0, "a plain anonymous resolve reached the route"
    if cached:
        assert moved["loads"] >= 1, moved
        assert moved["hits"] + moved["negative_hits"] == 0, moved

    before = probe.counters()
    answers.append(await client.get(path, headers=headers))
    moved = probe.delta(before)
    assert moved["routed"] == 0, "a plain anonymous resolve reached the route"
    if cached:
        assert moved["loads"] == 0, moved
        assert moved["misses"] == 0, moved
        assert moved["hits"] + moved["negative_hits"] == 1, moved

    for _ in range(2):
        before = routed.probe.counters()
        answers.append(await routed.client.get(path, headers=headers))
        assert routed.probe.delta(before)["routed"] == 1, "the routed node skipped its route"
    return answers


# --- 1. the lean path and the route answer identically ---


@dataclass(frozen=True)
class Case:
    """One row: a record to store, what to ask for, and what the answer must be."""

    values: tuple[dict[str, Any], ...] | None  # None: the handle does not exist
    status: int
    if_none_match: str | None = None  # "same": the answer's own ETag; else the header as is
    cache_control: str | None = None  # expected Cache-Control of the answer
    present: tuple[str, ...] = ()  # data values the body must hold
    absent: tuple[str, ...] = ()  # data values the body must not hold


CASES = {
    "public-record": Case(
        (url_value(PUBLIC_URL),), 200, cache_control=f"public, max-age={MAX_TTL}",
        present=(PUBLIC_URL,),
    ),
    "restricted-value-anonymous": Case(
        (url_value(PUBLIC_URL), restricted_value(SECRET_URL)), 200,
        cache_control=f"public, max-age={MAX_TTL}", present=(PUBLIC_URL,), absent=(SECRET_URL,),
    ),
    "ttl-60": Case(
        (with_ttl(url_value(PUBLIC_URL), 60), with_ttl(url_value(NEW_URL, 2), 60)), 200,
        cache_control="public, max-age=60", present=(PUBLIC_URL, NEW_URL),
    ),
    "unknown-handle": Case(None, 404),
    "if-none-match-same-etag": Case(
        (url_value(PUBLIC_URL),), 304, if_none_match="same",
        cache_control=f"public, max-age={MAX_TTL}",
    ),
    "if-none-match-other-etag": Case(
        (url_value(PUBLIC_URL),), 200, if_none_match='"not-the-etag"',
        cache_control=f"public, max-age={MAX_TTL}", present=(PUBLIC_URL,),
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(CASES))
async def test_lean_path_and_route_answer_identically(
    client: httpx.AsyncClient,
    enterprise: dict[str, Any],
    probe: Probe,
    routed: Routed,
    name: str,
) -> None:
    case = CASES[name]
    handle = f"{enterprise['prefix']}/LEAN-{name}"
    if case.values is not None:
        await put(client, enterprise, handle, list(case.values))
    headers: dict[str, str] = {}
    if case.if_none_match == "same":
        headers["If-None-Match"] = (await client.get(handle_url(handle))).headers["etag"]
    elif case.if_none_match is not None:
        headers["If-None-Match"] = case.if_none_match

    answers = await ask_both_twice(client, probe, routed, handle_url(handle), headers, cached=True)
    expected = answers[2]  # the route's answer on a miss
    assert_same_answer(expected, *answers)

    # And the answer itself is right.
    assert expected.status_code == case.status, expected.text
    if case.status == 404:
        body = expected.json()
        assert body["responseCode"] == 100, body
        assert body["handle"] == handle, body
        assert body["message"], body
        assert expected.headers["content-type"] == "application/json"
        return
    assert expected.headers["cache-control"] == case.cache_control
    etag = expected.headers["etag"]
    assert etag.startswith('"'), etag
    assert etag.endswith('"'), etag
    assert len(etag) > 2, etag
    if case.status == 304:
        assert expected.content == b""
        assert etag == headers["If-None-Match"]
        return
    assert expected.headers["content-type"] == "application/json"
    assert int(expected.headers["content-length"]) == len(expected.content)
    assert expected.json()["handle"] == handle
    assert expected.json()["responseCode"] == 1
    found = data_values(expected)
    for wanted in case.present:
        assert wanted in found, found
    for hidden in case.absent:
        assert hidden not in expected.text, expected.text


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("88.999.lean-nocase/ITEM", 200, 1),  # prefix in lower case: the same identifier
        ("0.NA/88.999.lean-nocase", 200, 1),  # the prefix's own record
        ("88.999.lean-nocase/MISSING", 404, 100),
        ("88.999.LEAN-NOCASE", 400, 102),  # no suffix
        ("11.222/FOREIGN", 400, 301),  # another node's prefix, and no upstream
    ],
    ids=[
        "lower-case-prefix",
        "prefix-record",
        "lower-case-unknown",
        "malformed",
        "not-responsible",
    ],
)
async def test_lean_path_and_route_agree_beyond_the_cache(
    client: httpx.AsyncClient,
    probe: Probe,
    routed: Routed,
    path: str,
    status: int,
    code: int,
) -> None:
    owner = await create_enterprise(client, prefix="LEAN-NOCASE")
    assert owner["prefix"] == "88.999.LEAN-NOCASE"
    await put(client, owner, "88.999.LEAN-NOCASE/ITEM", [url_value(PUBLIC_URL)])
    answers = await ask_both_twice(client, probe, routed, API + path, {}, cached=False)
    assert_same_answer(answers[2], *answers)
    assert answers[0].status_code == status, answers[0].text
    body = answers[0].json()
    assert body["responseCode"] == code, body
    if status == 200:
        assert body["handle"] == path.replace("lean-nocase", "LEAN-NOCASE"), body
    else:
        assert body["handle"] == path, body
        assert body["message"], body


async def test_if_none_match_lists_and_wildcard_on_both_paths(
    client: httpx.AsyncClient, enterprise: dict[str, Any], probe: Probe, routed: Routed
) -> None:
    handle = f"{enterprise['prefix']}/LEAN-INM"
    await put(client, enterprise, handle, [url_value(PUBLIC_URL)])
    etag = (await client.get(handle_url(handle))).headers["etag"]
    for header in (f'"other", {etag}', f"W/{etag}", "*"):
        answers = await ask_both_twice(
            client, probe, routed, handle_url(handle), {"If-None-Match": header}, cached=True
        )
        assert answers[2].status_code == 304, (header, answers[2].status_code)
        assert_same_answer(answers[2], *answers)


@pytest.mark.parametrize("order", ["match-last", "match-first"])
async def test_if_none_match_in_several_header_lines_is_one_list(
    client: httpx.AsyncClient,
    enterprise: dict[str, Any],
    probe: Probe,
    routed: Routed,
    order: str,
) -> None:
    """RFC 9110 section 5.3: field lines of one name form one comma-separated list, so a
    cache sending its tags on separate lines gets 304 when any of them matches."""
    handle = f"{enterprise['prefix']}/LEAN-INM-LINES"
    await put(client, enterprise, handle, [url_value(PUBLIC_URL)])
    etag = (await client.get(handle_url(handle))).headers["etag"]
    tags = ['"other"', etag] if order == "match-last" else [etag, '"other"']
    headers = [("If-None-Match", tag) for tag in tags]
    answers = await ask_both_twice(client, probe, routed, handle_url(handle), headers, cached=True)
    statuses = [a.status_code for a in answers]
    assert statuses == [304, 304, 304, 304], f"lean miss, lean hit, routed x2: {statuses}"
    assert_same_answer(answers[2], *answers)


# --- 2. requests the lean path must leave to the route ---


@pytest.mark.parametrize(
    ("params", "headers", "expected"),
    [
        ({"type": "URL"}, {}, [PUBLIC_URL]),
        ({"index": "1"}, {}, [PUBLIC_URL]),
        ({"type": "EMAIL"}, {}, [EMAIL]),
        ({"pretty": "true"}, {}, [PUBLIC_URL, EMAIL]),
        ({"publicOnly": "false"}, {}, [PUBLIC_URL, EMAIL]),
        ({}, {"X-Idnode-Via": "upstream-node-1"}, [PUBLIC_URL, EMAIL]),
        ({}, {"X-Idnode-Hops": "1"}, [PUBLIC_URL, EMAIL]),
    ],
    ids=["type", "index", "type-email", "pretty", "public-only-false", "via", "hops"],
)
async def test_requests_the_lean_path_leaves_to_the_route(
    client: httpx.AsyncClient,
    enterprise: dict[str, Any],
    probe: Probe,
    params: dict[str, str],
    headers: dict[str, str],
    expected: list[str],
) -> None:
    handle = f"{enterprise['prefix']}/LEAN-SLOW"
    values = [url_value(PUBLIC_URL), email_value(), restricted_value(SECRET_URL)]
    await put(client, enterprise, handle, values)
    plain = await client.get(handle_url(handle))
    assert plain.status_code == 200
    assert (await client.get(handle_url(handle))).content == plain.content  # now cached

    for _ in range(2):  # a cached entry must not tempt the lean path either time
        before = probe.counters()
        response = await client.get(handle_url(handle), params=params, headers=headers)
        moved = probe.delta(before)
        assert moved["routed"] == 1, "answered by the lean path, which must not take it"
        assert moved["loads"] == 0, moved  # but from the cache
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["responseCode"] == 1
        assert body["handle"] == handle
        found = [v for v in data_values(response) if v in (PUBLIC_URL, EMAIL)]
        assert found == expected, data_values(response)
        assert SECRET_URL not in response.text
        assert response.headers["cache-control"] == f"public, max-age={MAX_TTL}"
        assert response.headers["etag"]
        if params.get("pretty") == "true":
            assert b"\n" in response.content
            assert response.json() == plain.json()
        if not params:
            assert_same_answer(plain, response)


@pytest.mark.parametrize("first", ["owner", "anonymous"])
async def test_owner_sees_restricted_values_anonymous_never_whoever_asks_first(
    client: httpx.AsyncClient, enterprise: dict[str, Any], probe: Probe, first: str
) -> None:
    handle = f"{enterprise['prefix']}/LEAN-AUTH-{first}"
    await put(client, enterprise, handle, [url_value(PUBLIC_URL), restricted_value(SECRET_URL)])
    owner = bearer(enterprise)

    async def as_owner() -> httpx.Response:
        before = probe.counters()
        response = await client.get(handle_url(handle), headers=owner)
        assert probe.delta(before)["routed"] == 1, "a request with credentials took the lean path"
        assert response.status_code == 200, response.text
        assert sorted(data_values(response)[:2]) == sorted([PUBLIC_URL, SECRET_URL])
        assert response.headers["cache-control"] == "private, no-cache"
        return response

    async def as_anonymous() -> httpx.Response:
        before = probe.counters()
        response = await client.get(handle_url(handle))
        assert probe.delta(before)["routed"] == 0
        assert response.status_code == 200, response.text
        assert PUBLIC_URL in data_values(response)
        assert SECRET_URL not in response.text
        assert response.headers["cache-control"].startswith("public")
        return response

    order = [as_owner, as_anonymous] if first == "owner" else [as_anonymous, as_owner]
    before = probe.counters()
    for ask in order * 3:  # the first ask fills the cache, the others are hits
        await ask()
    moved = probe.delta(before)
    assert moved["loads"] == 1, moved
    assert moved["hits"] == 5, moved

    # The owner's answer is not the public one, even when the owner has the public ETag.
    public_etag = (await as_anonymous()).headers["etag"]
    response = await client.get(handle_url(handle), headers={**owner, "If-None-Match": public_etag})
    assert response.status_code == 200, response.status_code
    assert SECRET_URL in response.text
    assert response.headers["etag"] != public_etag


# --- 3. writes are seen at once ---


async def resolve_twice(client: httpx.AsyncClient, probe: Probe, handle: str) -> httpx.Response:
    """Resolve ``handle`` twice by the lean path (the second a cache hit); they must agree."""
    before = probe.counters()
    first = await client.get(handle_url(handle))
    between = probe.counters()
    second = await client.get(handle_url(handle))
    moved = probe.delta(between)
    assert probe.delta(before)["routed"] == 0
    assert moved["loads"] == 0, moved
    assert moved["hits"] + moved["negative_hits"] == 1, moved
    assert_same_answer(first, second)
    return second


async def test_put_and_delete_are_seen_at_once(
    client: httpx.AsyncClient, enterprise: dict[str, Any], probe: Probe
) -> None:
    handle = f"{enterprise['prefix']}/LEAN-WRITE"
    await put(client, enterprise, handle, [url_value(PUBLIC_URL)])
    old = await resolve_twice(client, probe, handle)
    assert data_values(old)[0] == PUBLIC_URL
    assert handle in probe.cache

    await put(client, enterprise, handle, [url_value(NEW_URL)])
    new = await client.get(handle_url(handle))
    assert new.status_code == 200
    assert data_values(new)[0] == NEW_URL
    assert PUBLIC_URL not in new.text
    assert new.headers["etag"] != old.headers["etag"]
    assert data_values(await resolve_twice(client, probe, handle))[0] == NEW_URL
    # A client holding the old ETag gets the new answer, not 304.
    stale_tag = {"If-None-Match": old.headers["etag"]}
    assert (await client.get(handle_url(handle), headers=stale_tag)).status_code == 200

    # Restricting the value hides it from anonymous callers at once.
    await put(client, enterprise, handle, [restricted_value(NEW_URL, 1)])
    hidden = await resolve_twice(client, probe, handle)
    assert NEW_URL not in hidden.text

    deleted = await client.delete(handle_url(handle), headers=bearer(enterprise))
    assert deleted.status_code == 200, deleted.text
    gone = await client.get(handle_url(handle))
    assert gone.status_code == 404, gone.text
    assert gone.json()["responseCode"] == 100
    assert (await resolve_twice(client, probe, handle)).status_code == 404


@pytest.mark.parametrize("cache_sync", ["stopped", "running"])
async def test_negatively_cached_handle_resolves_right_after_creation(
    client: httpx.AsyncClient,
    app: Any,
    monkeypatch: pytest.MonkeyPatch,
    cache_sync: str,
) -> None:
    """Once a bug on PostgreSQL: the cached 404 outlived the creation of the handle.

    With the sync task stopped the writing request alone must evict; with it running (as in
    production) the answer must be the same.
    """
    if cache_sync == "stopped":
        await stop_cache_sync(app)
    else:
        assert not cache_sync_task(app).done()
    probe = install_probe(app, monkeypatch)
    enterprise = await create_enterprise(client)
    handle = f"{enterprise['prefix']}/LEAN-LATER"

    missing = await client.get(handle_url(handle))
    assert missing.status_code == 404, missing.text
    before = probe.counters()
    assert (await client.get(handle_url(handle))).status_code == 404
    if cache_sync == "stopped":
        assert probe.delta(before)["negative_hits"] == 1  # the 404 is cached

    created = await client.put(
        handle_url(handle), json={"values": [url_value(PUBLIC_URL)]}, headers=bearer(enterprise)
    )
    assert created.status_code == 201, created.text
    found = await client.get(handle_url(handle))
    assert found.status_code == 200, f"still {found.status_code} after creation: {found.text}"
    assert data_values(found)[0] == PUBLIC_URL
    again = await client.get(handle_url(handle))
    assert again.status_code == 200, again.text
    assert again.content == found.content


# --- 4. a flood of unknown identifiers ---


async def test_not_found_flood_costs_one_lookup_per_handle(
    client: httpx.AsyncClient, enterprise: dict[str, Any], probe: Probe
) -> None:
    prefix = enterprise["prefix"]
    handles = [f"{prefix}/NO-SUCH-{n:03d}" for n in range(200)]
    probe.cache.evict(f"0.NA/{prefix}")  # looked up (once) to see whether the prefix is delegated

    start = probe.counters()
    for round_number in range(3):
        before = probe.counters()
        for handle in handles:
            response = await client.get(handle_url(handle))
            assert response.status_code == 404, (handle, response.status_code)
            body = response.json()
            assert body == {**body, "responseCode": 100, "handle": handle}, body
        moved = probe.delta(before)
        assert moved["routed"] == 0, moved  # all answered by the lean path
        if round_number == 0:
            assert moved["loads"] == 200 + 1, moved  # each handle once, and 0.NA/<prefix>
            assert moved["negative_hits"] == 0, moved
        else:
            assert moved["loads"] == 0, moved
            assert moved["misses"] == 0, moved
            assert moved["negative_hits"] == 200, moved
    assert probe.delta(start)["loads"] == 201


# --- 5. HTTP caching headers ---


async def test_max_age_is_the_remaining_lifetime(
    client: httpx.AsyncClient, enterprise: dict[str, Any], probe: Probe
) -> None:
    handle = f"{enterprise['prefix']}/LEAN-AGE"
    await put(client, enterprise, handle, [with_ttl(url_value(PUBLIC_URL), 600)])

    first = await client.get(handle_url(handle))  # a miss: loads the entry
    assert first.headers["cache-control"] == "public, max-age=600"
    etag = first.headers["etag"]
    assert etag
    for elapsed, left in ((10, 590), (10, 580), (575, 5)):
        probe.clock.advance(elapsed)
        before = probe.counters()
        lean = await client.get(handle_url(handle))
        assert probe.delta(before) == {**probe.delta(before), "routed": 0, "hits": 1, "loads": 0}
        assert lean.headers["cache-control"] == f"public, max-age={left}"
        assert lean.headers["etag"] == etag
        filtered = await client.get(handle_url(handle), params={"type": "URL"})  # routed
        assert filtered.headers["cache-control"] == f"public, max-age={left}"
        not_modified = await client.get(handle_url(handle), headers={"If-None-Match": etag})
        assert not_modified.status_code == 304
        assert not_modified.headers["cache-control"] == f"public, max-age={left}"

    probe.clock.advance(5)  # the lifetime is over: loaded again, with a whole lifetime
    before = probe.counters()
    reloaded = await client.get(handle_url(handle))
    assert probe.delta(before)["loads"] == 1
    assert reloaded.headers["cache-control"] == "public, max-age=600"
    assert reloaded.headers["etag"] == etag


async def test_owner_answer_is_private(
    client: httpx.AsyncClient, enterprise: dict[str, Any], probe: Probe
) -> None:
    handle = f"{enterprise['prefix']}/LEAN-PRIVATE"
    await put(client, enterprise, handle, [url_value(PUBLIC_URL), restricted_value(SECRET_URL)])
    for expected in ({"loads": 1, "hits": 0}, {"loads": 0, "hits": 1}):  # a miss, then a hit
        before = probe.counters()
        owner = await client.get(handle_url(handle), headers=bearer(enterprise))
        assert probe.delta(before) == {**probe.delta(before), **expected, "routed": 1}
        assert owner.status_code == 200
        assert owner.headers["cache-control"] == "private, no-cache"
        assert owner.headers["etag"]
        assert SECRET_URL in owner.text
    public = await client.get(handle_url(handle))
    assert public.headers["cache-control"] == f"public, max-age={MAX_TTL}"
    assert public.headers["etag"] != owner.headers["etag"]
