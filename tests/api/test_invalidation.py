"""Two node processes on one database keep their caches in step with it.

PostgreSQL: a write through node A reaches node B's cache by LISTEN/NOTIFY within 100 ms;
when B's listener connection is killed, B reconnects and clears its cache (notices sent while
it was away are lost), and later invalidations work again. SQLite: B watches
``PRAGMA data_version`` and sees A's write within one second (typically 20-60 ms).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest

from tests.api.factories import part_of
from tests.conftest import (
    OPERATOR,
    PG_ADMIN_URL,
    LiveNode,
    fresh_pg_database,
)

pytestmark = pytest.mark.slow

LISTENER = "idnode-cache-listener"
LIMIT = 0.100  # seconds from A's answer to B answering the new value
# SQLite: B polls PRAGMA data_version every 50 ms; typically 20-60 ms, but on a loaded
# 2-core machine one poll can slip by a few hundred ms. The 100 ms p99 target is for
# PostgreSQL deployments (several nodes); SQLite serves one machine.
SQLITE_LIMIT = 1.0
ROUNDS = 20
POLL = 0.005


@dataclass
class Pair:
    a: LiveNode
    b: LiveNode
    database: str | None  # the PostgreSQL database name (None on SQLite)
    prefix: str
    token: dict[str, str]

    def handle_url(self, node: LiveNode, suffix: str) -> str:
        return f"{node.url}/api/handles/{self.prefix}/{suffix}"


def node_env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDNODE_")}
    env["IDNODE_DATABASE_URL"] = database_url
    env["IDNODE_ADMIN_TOKEN"] = OPERATOR["Authorization"].removeprefix("Bearer ")
    return env


def pg_dsn(database: str) -> str:
    return (
        PG_ADMIN_URL.replace("postgresql+asyncpg://", "postgresql://", 1).rsplit("/", 1)[0]
        + f"/{database}"
    )


def pg(database: str, query: str, *args: Any) -> list[Any]:
    """Run one statement as the PostgreSQL superuser on ``database``; its rows."""

    async def run() -> list[Any]:
        connection = await asyncpg.connect(pg_dsn(database))
        try:
            return list(await connection.fetch(query, *args))
        finally:
            await connection.close()

    return asyncio.run(run())


def listener_pids(database: str) -> list[int]:
    rows = pg(
        database,
        "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND datname = $2",
        LISTENER,
        database,
    )
    return [row["pid"] for row in rows]


def kill_listeners(database: str) -> None:
    """Terminate every node's cache-listener connection to ``database``."""
    terminated = pg(
        database,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = $1 AND datname = $2",
        LISTENER,
        database,
    )
    assert terminated
    assert all(row[0] for row in terminated)


def listeners_back(database: str, before: list[int]) -> None:
    """Wait until both nodes listen again, on connections other than ``before``."""
    deadline = time.monotonic() + 10
    while True:
        now = listener_pids(database)
        if len(now) == 2 and not set(now) & set(before):
            return
        assert time.monotonic() < deadline, f"listeners not back: before {before}, now {now}"
        time.sleep(0.05)


def start_pair(tmp_path: Path, database_url: str, database: str | None) -> Iterator[Pair]:
    a = LiveNode(node_env(database_url), _workdir(tmp_path, "a"))
    b = LiveNode(node_env(database_url), _workdir(tmp_path, "b"))
    try:
        a.start()  # migrates the database first
        b.start()
        created = httpx.post(
            f"{a.url}/api/v1/enterprises", json={"name": "Yili Dairy"}, headers=OPERATOR
        )
        assert created.status_code == 201, created.text
        enterprise = created.json()
        yield Pair(
            a, b, database, enterprise["prefix"], {"Authorization": f"Bearer {enterprise['token']}"}
        )
    finally:
        a.stop()
        b.stop()


def _workdir(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.mkdir()
    return path


@pytest.fixture
def pg_pair(tmp_path: Path) -> Iterator[Pair]:
    with fresh_pg_database("inval") as (name, url):
        yield from start_pair(tmp_path, url, name)


@pytest.fixture
def sqlite_pair(tmp_path: Path) -> Iterator[Pair]:
    yield from start_pair(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}", None)


# --- helpers ---


def url_values(url: str) -> dict[str, Any]:
    return {"values": [{"index": 1, "type": "URL", "data": {"format": "string", "value": url}}]}


def put(pair: Pair, suffix: str, url: str) -> None:
    response = httpx.put(pair.handle_url(pair.a, suffix), json=url_values(url), headers=pair.token)
    assert response.status_code in (200, 201), response.text


def url_of(response: httpx.Response) -> str | None:
    if response.status_code != 200:
        return None
    values = {v["index"]: v for v in response.json()["values"]}
    return str(values[1]["data"]["value"])


def cached_on_b(pair: Pair, http: httpx.Client, suffix: str, url: str) -> None:
    """B answers ``url`` for the identifier, twice (the second time from its cache)."""
    first = http.get(pair.handle_url(pair.b, suffix))
    assert url_of(first) == url, first.text
    second = http.get(pair.handle_url(pair.b, suffix))
    assert url_of(second) == url, second.text
    assert second.headers["etag"] == first.headers["etag"]


def wait_on_b(
    pair: Pair, http: httpx.Client, suffix: str, done: Any, timeout: float
) -> tuple[float, httpx.Response]:
    """Poll B every ~5 ms until ``done(response)``; seconds taken and the last answer."""
    started = time.monotonic()
    deadline = started + timeout
    while True:
        response = http.get(pair.handle_url(pair.b, suffix))
        if done(response):
            return time.monotonic() - started, response
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"B did not get there within {timeout}s; last answer "
                f"{response.status_code} {response.text}"
            )
        time.sleep(POLL)


def until_b_shows(pair: Pair, http: httpx.Client, suffix: str, url: str, timeout: float) -> float:
    """Seconds until B answers ``url`` as the URL value of ``suffix``."""
    elapsed, _ = wait_on_b(pair, http, suffix, lambda r: url_of(r) == url, timeout=timeout)
    return elapsed


def measure_propagation(pair: Pair, http: httpx.Client, suffix: str) -> list[float]:
    """ROUNDS changes through A; for each, how long until B answers the new value."""
    current = f"https://trace.example.com/{suffix}/start"
    put(pair, suffix, current)
    latencies = []
    for round_ in range(ROUNDS):
        cached_on_b(pair, http, suffix, current)
        current = f"https://trace.example.com/{suffix}/{round_}"
        put(pair, suffix, current)
        latencies.append(until_b_shows(pair, http, suffix, current, timeout=5))
    return latencies


def report(label: str, latencies: list[float]) -> str:
    ms = sorted(x * 1000 for x in latencies)
    p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
    return (
        f"{label}: n={len(ms)} min={ms[0]:.1f}ms median={statistics.median(ms):.1f}ms "
        f"p99={p99:.1f}ms max={ms[-1]:.1f}ms"
    )


# --- PostgreSQL ---


def test_postgres_write_on_a_reaches_b_within_100ms(
    pg_pair: Pair, capsys: pytest.CaptureFixture[str]
) -> None:
    pair = pg_pair
    assert pair.database is not None
    with httpx.Client(timeout=5) as http:
        # B really answers from its cache: a change made behind the nodes' backs (SQL, no
        # NOTIFY) is not seen by B, so what follows measures invalidation, not cache misses.
        put(pair, "MILK-1", "https://trace.example.com/milk/1")
        cached_on_b(pair, http, "MILK-1", "https://trace.example.com/milk/1")
        pg(
            pair.database,
            """UPDATE handles SET values = jsonb_set(values, '{0,data,value}', to_jsonb($1::text))
               WHERE handle = $2""",
            "https://behind.example.com/",
            f"{pair.prefix}/MILK-1",
        )
        time.sleep(0.2)
        assert url_of(http.get(pair.handle_url(pair.b, "MILK-1"))) == (
            "https://trace.example.com/milk/1"
        )

        latencies = measure_propagation(pair, http, "MILK-1")
        with capsys.disabled():
            print("\n" + report("postgresql A->B", latencies))
        assert max(latencies) < LIMIT, report("postgresql A->B", latencies)

        # A deletion through A: B answers 404 / 100 quickly.
        deleted = httpx.delete(pair.handle_url(pair.a, "MILK-1"), headers=pair.token)
        assert deleted.status_code == 200, deleted.text
        elapsed, gone = wait_on_b(pair, http, "MILK-1", lambda r: r.status_code == 404, timeout=5)
        assert gone.json()["responseCode"] == 100
        assert elapsed < LIMIT, f"B still answered the deleted identifier after {elapsed:.3f}s"

        # B cached "not found"; creating the identifier through A evicts that too.
        assert http.get(pair.handle_url(pair.b, "MILK-1")).status_code == 404
        put(pair, "MILK-1", "https://trace.example.com/milk/again")
        elapsed = until_b_shows(
            pair, http, "MILK-1", "https://trace.example.com/milk/again", timeout=5
        )
        assert elapsed < LIMIT, f"B kept its negative answer for {elapsed:.3f}s"


def test_postgres_listener_reconnects_and_clears_the_cache(
    pg_pair: Pair, capsys: pytest.CaptureFixture[str]
) -> None:
    pair = pg_pair
    database = pair.database
    assert database is not None
    with httpx.Client(timeout=5) as http:
        put(pair, "MILK-2", "https://trace.example.com/milk/before")
        cached_on_b(pair, http, "MILK-2", "https://trace.example.com/milk/before")
        before = listener_pids(database)
        assert len(before) == 2, f"expected A's and B's listeners, found {before}"

        # Kill the listener connections (A's and B's: both are named alike) and change the
        # identifier at once: B may miss the NOTIFY, and must clear its cache on reconnecting.
        kill_listeners(database)
        put(pair, "MILK-2", "https://trace.example.com/milk/after")
        missed = until_b_shows(
            pair, http, "MILK-2", "https://trace.example.com/milk/after", timeout=10
        )

        # Both listeners are back, on new connections.
        listeners_back(database, before)

        # A change no NOTIFY announces (made in SQL) is only seen by B once its cache is
        # cleared: kill the listener again and B must pick it up after reconnecting.
        put(pair, "MILK-3", "https://trace.example.com/milk3/before")
        cached_on_b(pair, http, "MILK-3", "https://trace.example.com/milk3/before")
        pg(
            database,
            """UPDATE handles SET values = jsonb_set(values, '{0,data,value}', to_jsonb($1::text))
               WHERE handle = $2""",
            "https://trace.example.com/milk3/behind",
            f"{pair.prefix}/MILK-3",
        )
        time.sleep(0.2)
        assert url_of(http.get(pair.handle_url(pair.b, "MILK-3"))) == (
            "https://trace.example.com/milk3/before"
        ), "B does not cache (or learned of a change no one announced)"
        before = listener_pids(database)
        kill_listeners(database)
        cleared = until_b_shows(
            pair, http, "MILK-3", "https://trace.example.com/milk3/behind", timeout=10
        )
        listeners_back(database, before)

        # Later invalidations work again after the reconnect.
        latencies = measure_propagation(pair, http, "MILK-2")
        with capsys.disabled():
            print(
                f"\npostgresql reconnect: change seen after {missed * 1000:.1f}ms, "
                f"unannounced change seen after {cleared * 1000:.1f}ms; "
                + report("then A->B", latencies)
            )
        assert max(latencies) < LIMIT, report("postgresql after reconnect", latencies)


# --- SQLite ---


def behind_the_nodes_backs(path: Path, handle: str, url: str) -> None:
    """Change the identifier's URL in SQL: a commit that logs no record change, as a
    statistics sample's does not."""
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(
            'UPDATE handles SET "values" = json_set("values", \'$[0].data.value\', ?) '
            "WHERE handle = ?",
            (url, handle),
        )


def test_sqlite_write_on_a_reaches_b_within_100ms(
    sqlite_pair: Pair, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pair = sqlite_pair
    with httpx.Client(timeout=5) as http:
        # B evicts what the writes changed, not its whole cache: MILK-0 stays cached through
        # a commit that changed no logged record and through every write to MILK-1 below.
        put(pair, "MILK-0", "https://trace.example.com/milk/0")
        time.sleep(0.3)  # B has read the log past the creation (which evicts MILK-0)
        cached_on_b(pair, http, "MILK-0", "https://trace.example.com/milk/0")
        behind_the_nodes_backs(
            tmp_path / "shared.db", f"{pair.prefix}/MILK-0", "https://behind.example.com/"
        )
        time.sleep(0.3)  # six of B's looks at the file
        assert url_of(http.get(pair.handle_url(pair.b, "MILK-0"))) == (
            "https://trace.example.com/milk/0"
        ), "B does not cache, or cleared its cache on a commit that changed no record"

        latencies = measure_propagation(pair, http, "MILK-1")
        assert url_of(http.get(pair.handle_url(pair.b, "MILK-0"))) == (
            "https://trace.example.com/milk/0"
        ), "a write to MILK-1 cleared B's cached MILK-0"
        with capsys.disabled():
            print("\n" + report("sqlite A->B", latencies))
        assert max(latencies) < SQLITE_LIMIT, report("sqlite A->B", latencies)

        deleted = httpx.delete(pair.handle_url(pair.a, "MILK-1"), headers=pair.token)
        assert deleted.status_code == 200, deleted.text
        elapsed, gone = wait_on_b(pair, http, "MILK-1", lambda r: r.status_code == 404, timeout=5)
        assert gone.json()["responseCode"] == 100
        assert elapsed < SQLITE_LIMIT, (
            f"B still answered the deleted identifier after {elapsed:.3f}s"
        )


def test_postgres_nodes_carry_on_when_every_connection_is_dropped(pg_pair: Pair) -> None:
    """What a database restart does to the nodes: every connection of theirs is cut at once.

    Resolves (cache misses, served by the store pool), writes (the SQLAlchemy pool) and
    invalidation (the listener) all work again without an error answer to any client.
    """
    pair = pg_pair
    database = pair.database
    assert database is not None
    with httpx.Client(timeout=5) as http:
        put(pair, "MILK-4", "https://trace.example.com/milk4/before")
        cached_on_b(pair, http, "MILK-4", "https://trace.example.com/milk4/before")
        put(pair, "MILK-5", "https://trace.example.com/milk5")
        before = listener_pids(database)
        cut = pg(
            database,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        )
        assert len(cut) >= 4, f"expected the nodes' pools and listeners, cut {len(cut)}"

        # Right away: not cached anywhere yet, both nodes must read it from the store.
        for node in (pair.a, pair.b):
            answer = http.get(pair.handle_url(node, "MILK-5"))
            assert url_of(answer) == "https://trace.example.com/milk5", answer.text
        put(pair, "MILK-5", "https://trace.example.com/milk5/changed")
        listeners_back(database, before)
        put(pair, "MILK-4", "https://trace.example.com/milk4/after")
        elapsed = until_b_shows(
            pair, http, "MILK-4", "https://trace.example.com/milk4/after", timeout=5
        )
        assert elapsed < LIMIT, f"B saw the change after {elapsed * 1000:.0f} ms"


def test_postgres_recall_through_a_reaches_units_b_has_cached(
    pg_pair: Pair, capsys: pytest.CaptureFixture[str]
) -> None:
    """A recall rewrites no unit, yet B's cached answer for a unit below the recalled batch
    carries the warning within the invalidation bound (B forgets every cached answer)."""
    pair = pg_pair
    batch = f"{pair.prefix}/BATCH-1"
    with httpx.Client(timeout=5) as http:
        put(pair, "BATCH-1", "https://trace.example.com/batch")
        unit = {"values": [url_values("https://trace.example.com/u")["values"][0], part_of(batch)]}
        created = httpx.put(pair.handle_url(pair.a, "UNIT-1"), json=unit, headers=pair.token)
        assert created.status_code == 201, created.text
        cached_on_b(pair, http, "UNIT-1", "https://trace.example.com/u")

        recalled = httpx.post(
            f"{pair.a.url}/api/v1/identifiers/{batch}/recall",
            json={"reason": "Listeria"},
            headers=pair.token,
        )
        assert recalled.status_code == 200, recalled.text
        elapsed, answer = wait_on_b(
            pair,
            http,
            "UNIT-1",
            lambda r: any(v["type"] == "RECALL" for v in r.json().get("values", [])),
            timeout=5,
        )
        with capsys.disabled():
            print(f"\npostgresql recall A->B (unit below the batch): {elapsed * 1000:.1f}ms")
        assert elapsed < LIMIT, f"B answered the unit without the recall for {elapsed:.3f}s"
        (warning,) = [v for v in answer.json()["values"] if v["type"] == "RECALL"]
        assert warning["references"] == [{"handle": batch, "index": 1010}]
