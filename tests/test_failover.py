"""Failover: a private primary with a synchronous streaming replica, two nodes whose
IDNODE_DATABASE_URL lists both hosts (libpq's form, ``target_session_attrs=read-write``).
Under a steady load of writes through node A and resolutions through node B, the primary
crashes (``pg_ctl stop -m immediate``) and the replica is promoted. Every acknowledged write
is there afterwards, no answer is a 500, B keeps answering, and both nodes write and
invalidate through the new primary without a restart."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest
from pydantic import ValidationError

from app.commands.database import migrate_database
from app.errors import DatabaseUnusable
from app.settings import Settings
from app.storage.database import Database
from tests.conftest import OPERATOR, OPERATOR_TOKEN, LiveNode
from tests.servers import PrivateReplica, private_postgres, private_replica

WARM = 20  # identifiers B has cached before the primary stops
OUTAGE = 1.0  # seconds between the primary's crash and the promotion
RECOVERY_BOUND = 15.0  # seconds from the promotion to the first acknowledged write
SETTLE = 2.0  # seconds of load after the first acknowledged write on the new primary
DEADLINE = 90.0  # the whole load, whatever happens
LISTENER_PROBE = 2.0  # seconds between the cache listener's checks of its server


def _value(data: str) -> dict[str, Any]:
    return {"values": [{"index": 1, "type": "URL", "data": data}]}


def _data(response: httpx.Response) -> str:
    return str(response.json()["values"][0]["data"]["value"])


def _outcome(response: httpx.Response) -> str:
    """A status, or what was wrong with a 503: one without Retry-After or the message."""
    if response.status_code == 503:
        if "Retry-After" not in response.headers:
            return "503 without Retry-After"
        if "database is unavailable" not in response.text:
            return f"503 saying {response.text[:80]}"
    return str(response.status_code)


@dataclass
class Load:
    """The writer's and the reader's threads and what they saw."""

    a_url: str
    b_url: str
    prefix: str
    owner: dict[str, str]
    stop: threading.Event = field(default_factory=threading.Event)
    writes: Counter[str] = field(default_factory=Counter)
    reads: Counter[str] = field(default_factory=Counter)
    acknowledged: list[str] = field(default_factory=list)  # suffixes answered 2xx
    refused: list[str] = field(default_factory=list)  # suffixes answered otherwise
    acknowledged_at: list[float] = field(default_factory=list)
    wrong_reads: list[str] = field(default_factory=list)

    def write(self) -> None:
        """PUT distinct identifiers through A, one after another."""
        n = 0
        end = time.monotonic() + DEADLINE
        with httpx.Client(base_url=self.a_url, timeout=10) as a:
            while not self.stop.is_set() and time.monotonic() < end:
                suffix = f"F-{n}"
                try:
                    response = a.put(
                        f"/api/handles/{self.prefix}/{suffix}",
                        json=_value(f"https://f/{n}"),
                        headers=self.owner,
                    )
                    outcome = _outcome(response)
                except httpx.HTTPError as exc:
                    outcome = type(exc).__name__
                self.writes[outcome] += 1
                if outcome in ("200", "201"):
                    self.acknowledged.append(suffix)
                    self.acknowledged_at.append(time.monotonic())
                else:
                    self.refused.append(suffix)
                    time.sleep(0.05)  # as a client honouring Retry-After would, but briefer
                n += 1

    def read(self) -> None:
        """Resolve the warm identifiers through B, round and round."""
        n = 0
        end = time.monotonic() + DEADLINE
        with httpx.Client(base_url=self.b_url, timeout=10) as b:
            while not self.stop.is_set() and time.monotonic() < end:
                k = n % WARM
                try:
                    response = b.get(f"/api/handles/{self.prefix}/W-{k}")
                    outcome = _outcome(response)
                    if outcome == "200" and _data(response) != f"https://w/{k}":
                        self.wrong_reads.append(f"W-{k}: {_data(response)}")
                except httpx.HTTPError as exc:
                    outcome = type(exc).__name__
                self.reads[outcome] += 1
                n += 1
                time.sleep(0.005)


def _prepare(a_url: str, b_url: str) -> Load:
    """An enterprise, WARM identifiers written through A and resolved once through B."""
    with httpx.Client(base_url=a_url, timeout=30) as a, httpx.Client(base_url=b_url) as b:
        created = a.post("/api/v1/enterprises", json={"name": "Failover Dairy"}, headers=OPERATOR)
        assert created.status_code == 201, created.text
        body = created.json()
        prefix, owner = body["prefix"], {"Authorization": f"Bearer {body['token']}"}
        for k in range(WARM):
            put = a.put(
                f"/api/handles/{prefix}/W-{k}", json=_value(f"https://w/{k}"), headers=owner
            )
            assert put.status_code == 201, put.text
            assert b.get(f"/api/handles/{prefix}/W-{k}").status_code == 200
    return Load(a_url, b_url, prefix, owner)


def _until_invalidated(a_url: str, b_url: str, load: Load) -> float:
    """Update W-0 through A; seconds until B answers the new value (B's cache held the old
    one: its listener, now on the new primary, must evict it)."""
    with httpx.Client(base_url=a_url, timeout=10) as a, httpx.Client(base_url=b_url) as b:
        handle = f"/api/handles/{load.prefix}/W-0"
        assert b.get(handle).status_code == 200  # cached again, after the listener's clear
        put = a.put(handle, json=_value("https://w/0/v2"), headers=load.owner)
        assert put.status_code == 200, put.text
        started = time.monotonic()
        while _data(b.get(handle)) != "https://w/0/v2":
            assert time.monotonic() - started < 5, "B still answers W-0's old value after 5 s"
            time.sleep(0.01)
        return time.monotonic() - started


@pytest.mark.slow
def test_a_primary_crash_and_promotion_lose_no_acknowledged_write(tmp_path: Path) -> None:
    # Synchronous replication: a commit is acknowledged once the replica has it, so the
    # promoted replica holds every write a client was told succeeded.
    synchronous = "-c synchronous_standby_names=walreceiver"
    with private_postgres(synchronous) as primary, private_replica(primary) as replica:
        hosts = f"127.0.0.1:{primary.port},127.0.0.1:{replica.port}"
        env = {
            **os.environ,
            "IDNODE_DATABASE_URL": (
                f"postgresql://postgres@{hosts}/postgres?target_session_attrs=read-write"
            ),
            "IDNODE_ADMIN_TOKEN": OPERATOR_TOKEN,
            "IDNODE_DATABASE_POOL_SIZE": "4",
        }
        a, b = LiveNode(env, tmp_path), LiveNode(env, tmp_path)
        a.start("--no-broker")  # migrates through the multi-host URL
        try:
            b.start("--no-broker", "--no-migrate")
            try:
                load = _prepare(a.url, b.url)
                threads = [threading.Thread(target=load.write), threading.Thread(target=load.read)]
                for thread in threads:
                    thread.start()
                try:
                    time.sleep(2)
                    crashed = time.monotonic()
                    primary.stop("immediate")
                    time.sleep(OUTAGE)
                    replica.promote()
                    promoted = time.monotonic()
                    while not [t for t in load.acknowledged_at if t > promoted]:
                        assert time.monotonic() - promoted < RECOVERY_BOUND, (
                            f"no write acknowledged {RECOVERY_BOUND} s after the promotion: "
                            f"writes {dict(load.writes)}"
                        )
                        time.sleep(0.05)
                    recovered = min(t for t in load.acknowledged_at if t > promoted)
                    time.sleep(SETTLE)
                finally:
                    load.stop.set()
                    for thread in threads:
                        thread.join(timeout=30)
                invalidated = _until_invalidated(a.url, b.url, load)
                readback = _read_back(a.url, b.url, load)
                for node in (a, b):  # never restarted
                    assert node.process is not None
                    assert node.process.poll() is None
            finally:
                b.stop()
        finally:
            a.stop()
    answered = load.reads["200"] / max(1, sum(load.reads.values()))
    after_crash = [t for t in load.acknowledged_at if t > crashed]
    print(
        f"\nwrites through A by answer: {dict(load.writes)}"
        f"\nresolutions through B by answer: {dict(load.reads)} ({answered:.1%} answered)"
        f"\nrecovery: first write acknowledged {recovered - promoted:.2f} s after the promotion, "
        f"{recovered - crashed:.2f} s after the crash; {len(after_crash)} acknowledged since"
        f"\nB evicted an update made through A after {invalidated * 1000:.0f} ms"
        f"\nread back: {dict(readback)}"
    )
    figures = f"writes {dict(load.writes)}, reads {dict(load.reads)}, read back {dict(readback)}"
    # No answer but success or a well-formed 503; no client error either.
    assert set(load.writes) <= {"200", "201", "503"}, figures
    assert set(load.reads) <= {"200", "503"}, figures
    assert load.writes["503"] > 0, figures  # the switch was seen, not slept through
    # Every acknowledged write is there, whole, through either node; a refused one is
    # either absent or whole (never half-written).
    assert readback["acknowledged: present"] == len(load.acknowledged), figures
    assert set(readback) <= {"acknowledged: present", "refused: absent", "refused: present"}
    # B kept answering what it had cached: every resolution of a warm identifier.
    assert answered == 1.0, figures
    assert not load.wrong_reads, load.wrong_reads
    assert len(after_crash) > 10, figures


def _fence(port: int, read_only: bool) -> None:
    """Make the server on ``port`` refuse writes (or take them again), as a switch-over
    does with the old primary before the replica is promoted; wait until the replica has
    everything it wrote."""

    async def run() -> None:
        connection = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres")
        try:
            await connection.execute("SET default_transaction_read_only = off")
            await connection.execute(
                f"ALTER SYSTEM SET default_transaction_read_only = {'on' if read_only else 'off'}"
            )
            await connection.execute("SELECT pg_reload_conf()")
        finally:
            await connection.close()

    asyncio.run(run())


def _caught_up(primary_port: int, replica_port: int) -> None:
    async def position(port: int, query: str) -> int:
        connection = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres")
        try:
            return int(await connection.fetchval(f"SELECT {query} - '0/0'::pg_lsn"))
        finally:
            await connection.close()

    deadline = time.monotonic() + 10
    while asyncio.run(position(replica_port, "pg_last_wal_replay_lsn()")) < asyncio.run(
        position(primary_port, "pg_current_wal_lsn()")
    ):
        assert time.monotonic() < deadline, "the replica did not catch up within 10 s"
        time.sleep(0.05)


@pytest.mark.slow
def test_a_switch_over_with_the_old_primary_still_up_moves_every_connection(
    tmp_path: Path,
) -> None:
    with private_postgres() as primary, private_replica(primary) as replica:
        hosts = f"127.0.0.1:{primary.port},127.0.0.1:{replica.port}"
        env = {
            **os.environ,
            "IDNODE_DATABASE_URL": (
                f"postgresql://postgres@{hosts}/postgres?target_session_attrs=read-write"
            ),
            "IDNODE_ADMIN_TOKEN": OPERATOR_TOKEN,
            "IDNODE_DATABASE_POOL_SIZE": "4",
        }
        a, b = LiveNode(env, tmp_path), LiveNode(env, tmp_path)
        a.start("--no-broker")
        try:
            b.start("--no-broker", "--no-migrate")
            try:
                settings = Settings(database_url=env["IDNODE_DATABASE_URL"])
                seen = _switch_over(a.url, b.url, primary.port, replica, settings)
            finally:
                b.stop()
        finally:
            a.stop()
    print(f"\nanswers during the switch-over: {seen}")
    # While no host takes writes, a write is a 503; once the replica is promoted the node
    # writes there (the old primary still up, read-only), reads what it wrote from there,
    # and B's listener has moved there too.
    assert set(seen["fenced"]) == {"503"}, seen
    assert set(seen["promoted"]) <= {"503", "201"}, seen
    assert seen["promoted"]["201"] == 1, seen
    assert seen["B read NEW"]["200"] == 1, seen
    assert set(seen["B read NEW"]) <= {"404", "503", "200"}, seen
    assert seen["B found it after"] < LISTENER_PROBE + 1.5, seen
    assert seen["update through A, then through B"] == "new", seen


def _switch_over(
    a_url: str, b_url: str, primary_port: int, replica: PrivateReplica, settings: Settings
) -> Any:
    seen: dict[str, Any] = {"fenced": Counter(), "promoted": Counter()}
    with httpx.Client(base_url=a_url, timeout=10) as a, httpx.Client(base_url=b_url) as b:
        created = a.post("/api/v1/enterprises", json={"name": "Switched Dairy"}, headers=OPERATOR)
        assert created.status_code == 201, created.text
        prefix = created.json()["prefix"]
        owner = {"Authorization": f"Bearer {created.json()['token']}"}
        for n in range(3):  # a few of A's pooled connections on the old primary
            put = a.put(f"/api/handles/{prefix}/S-{n}", json=_value("v1"), headers=owner)
            assert put.status_code == 201, put.text
            assert b.get(f"/api/handles/{prefix}/S-{n}").status_code == 200

        _fence(primary_port, read_only=True)
        _caught_up(primary_port, replica.port)
        # A node starting now cannot migrate: it says so in one line.
        with pytest.raises(DatabaseUnusable, match=r"none of the PostgreSQL hosts .* takes writes"):
            migrate_database(settings)
        for _ in range(5):
            put = a.put(f"/api/handles/{prefix}/S-1", json=_value("v2"), headers=owner)
            seen["fenced"][_outcome(put)] += 1

        replica.promote()
        deadline = time.monotonic() + RECOVERY_BOUND
        while True:
            put = a.put(f"/api/handles/{prefix}/NEW", json=_value("new"), headers=owner)
            seen["promoted"][_outcome(put)] += 1
            if put.is_success or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        # A wrote it and resolves it at once. B, which wrote nothing, finds the new primary
        # when its listener does (it checks its server every 2 s); until then a miss may be
        # answered from the old primary, which does not have it.
        assert a.get(f"/api/handles/{prefix}/NEW").status_code == 200
        seen["B read NEW"] = Counter()
        started = time.monotonic()
        while (answer := b.get(f"/api/handles/{prefix}/NEW")).status_code != 200:
            seen["B read NEW"][_outcome(answer)] += 1
            if time.monotonic() - started > 10:
                break
            time.sleep(0.05)
        seen["B read NEW"][_outcome(answer)] += 1
        seen["B found it after"] = round(time.monotonic() - started, 2)

        put = a.put(f"/api/handles/{prefix}/S-0", json=_value("v2"), headers=owner)
        assert put.status_code == 200, put.text
        deadline = time.monotonic() + 5
        answer = "old"
        while answer == "old" and time.monotonic() < deadline:
            answer = "new" if _data(b.get(f"/api/handles/{prefix}/S-0")) == "v2" else "old"
            time.sleep(0.05)
        seen["update through A, then through B"] = answer
    return {k: dict(v) if isinstance(v, Counter) else v for k, v in seen.items()}


def _read_back(a_url: str, b_url: str, load: Load) -> Counter[str]:
    """Each identifier the writer tried, read through A and B: present (with its value) or
    absent, by what its PUT was answered."""
    seen: Counter[str] = Counter()
    with httpx.Client(base_url=a_url, timeout=10) as a, httpx.Client(base_url=b_url) as b:
        for kind, suffixes in (("acknowledged", load.acknowledged), ("refused", load.refused)):
            for suffix in suffixes:
                expected = f"https://f/{suffix.removeprefix('F-')}"
                responses = [node.get(f"/api/handles/{load.prefix}/{suffix}") for node in (a, b)]
                answers = {r.status_code for r in responses}
                answers_data = {_data(r) for r in responses if r.status_code == 200}
                if answers == {200} and answers_data == {expected}:
                    seen[f"{kind}: present"] += 1
                elif answers == {404}:
                    seen[f"{kind}: absent"] += 1
                else:
                    seen[f"{kind}: {sorted(answers)} {sorted(answers_data)}"] += 1
    return seen


def test_a_multi_host_url_is_read_in_either_form() -> None:
    libpq = Settings(
        database_url="postgresql://idnode:pw@db1:5432,db2:5433/idnode"
        "?target_session_attrs=read-write&sslmode=disable"
    )
    sqlalchemy = Settings(
        database_url="postgresql+asyncpg://idnode:pw@/idnode"
        "?host=db1:5432&host=db2:5433&target_session_attrs=read-write&sslmode=disable"
    )
    assert (
        libpq.database_url
        == sqlalchemy.database_url
        == (
            "postgresql+asyncpg://idnode:pw@/idnode"
            "?host=db1:5432&host=db2:5433&target_session_attrs=read-write&sslmode=disable"
        )
    )
    one = "postgresql+asyncpg://idnode@db1/idnode"
    assert Settings(database_url=one).database_url == one  # one host: untouched
    # asyncpg reads several hosts from the netloc (a repeated ?host= would count once).
    database = Database(libpq)
    assert (
        database.asyncpg_dsn
        == database.listen_dsn
        == (
            "postgresql://idnode:pw@db1:5432,db2:5433/idnode"
            "?target_session_attrs=read-write&sslmode=disable"
        )
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgres://u@db1,db2/idnode", "lists several hosts: add target_session_attrs"),
        ("postgres://u@/idnode?host=db1&host=db2&target_session_attrs=any", "read-write"),
        ("postgres://u:pw@db1:5432,db2:x/idnode?target_session_attrs=read-write", "'db2:x'"),
        ("postgres://u@db1,db2?target_session_attrs=read-write", "but no database"),
        ("postgres://u@db1,db2/i?host=db3&target_session_attrs=read-write", "both before"),
    ],
)
def test_a_malformed_multi_host_url_is_refused_in_words(url: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as refused:
        Settings(database_url=url)
    # What `idnode serve` prints (the message, not pydantic's echo of the input) never
    # repeats the password.
    assert ":pw@" not in refused.value.errors()[0]["msg"]
