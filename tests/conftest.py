"""Test fixtures: the node on real SQLite and real PostgreSQL.

PostgreSQL runs on 127.0.0.1:5432 with trust auth (start it with
``pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start``). In CI
(``CI=true``) a missing server fails the run; elsewhere its tests are skipped with that hint.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.cli import migrate_database
from app.main import create_app
from app.settings import Settings
from app.storage.models import Base

PG_ADMIN_URL = os.environ.get(
    "IDNODE_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
PG_HINT = (
    "PostgreSQL is not reachable on 127.0.0.1:5432; start it with "
    "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`"
)
OPERATOR_TOKEN = "test-operator-token-" + secrets.token_hex(8)
# Every table the migrations make, children before parents (for DELETE on SQLite).
TABLES = tuple(table.name for table in reversed(Base.metadata.sorted_tables))
BACKENDS = ("sqlite", "postgresql")


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def require_postgres() -> None:
    if _port_open("127.0.0.1", 5432):
        return
    if os.environ.get("CI"):
        pytest.fail(PG_HINT + " (CI requires it)")
    pytest.skip(PG_HINT)


async def _create_pg_database(name: str) -> str:
    engine = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await engine.dispose()
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


async def _drop_pg_database(name: str) -> None:
    engine = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await engine.dispose()


@contextmanager
def fresh_pg_database(label: str) -> Iterator[tuple[str, str]]:
    """A PostgreSQL database of one test's own (skipped without PostgreSQL): (name, URL)."""
    require_postgres()
    name = f"idnode_{label}_{os.getpid()}_{secrets.token_hex(3)}"
    url = asyncio.run(_create_pg_database(name))
    try:
        yield name, url
    finally:
        asyncio.run(_drop_pg_database(name))


@contextmanager
def empty_database(backend: str, sqlite_file: Path, label: str) -> Iterator[str]:
    """The URL of a database with nothing in it yet, for one test: the SQLite file
    ``sqlite_file``, or on PostgreSQL a database of its own, dropped afterwards."""
    if backend == "postgresql":
        with fresh_pg_database(label) as (_, url):
            yield url
    else:
        yield f"sqlite+aiosqlite:///{sqlite_file}"


@pytest.fixture(scope="session", autouse=True)
def node_key_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Nodes started by tests (in-process or ``idnode serve``) keep their signing key in a
    temporary directory, not in the working tree."""
    path = tmp_path_factory.mktemp("node-key") / "idnode-node-key.pem"
    with _environment("IDNODE_NODE_KEY_FILE", str(path)):
        yield path


@pytest.fixture(scope="session", autouse=True)
def data_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Commands run without IDNODE_DATA_DIR (most subprocesses drop every IDNODE_* setting)
    keep their data under a temporary XDG_DATA_HOME, never in the user's own."""
    path = tmp_path_factory.mktemp("data-home")
    with _environment("XDG_DATA_HOME", str(path)):
        yield path


@contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    """``name`` set to ``value`` in this process's environment for the block, then as it was."""
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


class _Databases(dict[str, str]):
    """One migrated database per backend for the whole run, each made when a test first asks
    for it (a run of SQLite tests only never creates or migrates a PostgreSQL database)."""

    def __init__(self, sqlite_file: Path) -> None:
        super().__init__()
        self.sqlite_file = sqlite_file
        self.pg_name: str | None = None

    def __missing__(self, backend: str) -> str:
        if backend == "sqlite":
            url = f"sqlite+aiosqlite:///{self.sqlite_file}"
        elif backend == "postgresql" and _port_open("127.0.0.1", 5432):
            self.pg_name = f"idnode_test_{os.getpid()}"
            url = asyncio.run(_create_pg_database(self.pg_name))
        else:
            raise KeyError(backend)
        migrate_database(Settings(database_url=url))  # sync: Alembic runs its own loop
        self[backend] = url
        return url


@pytest.fixture(scope="session")
def database_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """One migrated database per backend for the whole run, made on first use."""
    urls = _Databases(tmp_path_factory.mktemp("sqlite") / "idnode.db")
    yield urls
    if urls.pg_name:
        asyncio.run(_drop_pg_database(urls.pg_name))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgresql":
        require_postgres()
    return str(request.param)


@pytest.fixture
def settings(backend: str, database_urls: dict[str, str]) -> Settings:
    return Settings(database_url=database_urls[backend], admin_token=OPERATOR_TOKEN)


async def _empty_tables(url: str) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        if url.startswith("postgresql"):
            await conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
        else:
            for table in TABLES:
                await conn.execute(text(f"DELETE FROM {table}"))
    await engine.dispose()


@asynccontextmanager
async def node_client(
    settings: Settings, *, emptied: bool = False, base_url: str = "http://idnode.test"
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a node started in-process with ``settings`` (its lifespan running), on an
    emptied database when ``emptied``."""
    async with (
        running_app(settings, emptied=emptied) as application,
        asgi_client(application, base_url) as http,
    ):
        yield http


@asynccontextmanager
async def asgi_client(
    application: Any, base_url: str = "http://idnode.test"
) -> AsyncIterator[httpx.AsyncClient]:
    """A client that calls ``application`` in-process."""
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url=base_url) as http:
        yield http


@asynccontextmanager
async def running_app(settings: Settings, *, emptied: bool = True) -> AsyncIterator[Any]:
    """A node made from ``settings``, its lifespan running (on an emptied database unless
    ``emptied`` is false)."""
    if emptied:
        await _empty_tables(settings.database_url)
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Any]:
    """A node on an emptied database, its lifespan running."""
    async with running_app(settings) as application:
        yield application


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(app) as http:
        yield http


OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


async def create_enterprise(
    client: httpx.AsyncClient, name: str = "Yili Dairy", prefix: str | None = None
) -> dict[str, Any]:
    """Factory: an enterprise through the operator API; returns its credentials."""
    body: dict[str, Any] = {"name": name}
    if prefix is not None:
        body["prefix"] = prefix
    response = await client.post("/api/v1/enterprises", json=body, headers=OPERATOR)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def create_provisioning_key(
    client: httpx.AsyncClient, enterprise: dict[str, Any], name: str = "adapters"
) -> dict[str, Any]:
    """Factory: a provisioning key of ``enterprise``; its ``key`` and ``secret`` (shown once)."""
    response = await client.post(
        f"/api/v1/enterprises/{enterprise['prefix']}/provisioning-keys",
        json={"name": name},
        headers=bearer(enterprise),
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def bearer(enterprise: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {enterprise['token']}"}


def url_value(url: str, index: int = 1) -> dict[str, Any]:
    return {"index": index, "type": "URL", "data": {"format": "string", "value": url}}


# --- a real node process, for clients that need a socket (pyhandle) and restarts ---


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveNode:
    """``idnode serve`` in a subprocess on loopback. The Handle protocol listener is off
    unless the test's environment turns it on: tests running side by side (and a node the
    developer runs) would otherwise contend for its one default port."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.env = {"IDNODE_HANDLE_PORT": "0", **env}
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[str] | None = None
        self.log = workdir / f"node-{self.port}.log"

    def start(self, *extra: str) -> None:
        idnode = Path(sys.executable).with_name("idnode")
        command = [str(idnode), "serve", "--port", str(self.port), *extra]
        with self.log.open("a") as log:
            self.process = subprocess.Popen(
                command,
                env=self.env,
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
            )
        # /healthz: a resolve could wait on an upstream the test made unreachable.
        wait_until_answers(f"{self.url}/healthz", self.process, self.log)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:  # never leave it behind, even when it hangs
                pid = self.process.pid
                for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
                    os.kill(int(child), signal.SIGKILL)  # granian's workers outlive it
                self.process.kill()
                self.process.wait(timeout=20)
                raise
            finally:
                self.process = None


@contextmanager
def running_node(
    workdir: Path, database_url: str, *options: str, **settings: str
) -> Iterator[LiveNode]:
    """``idnode serve <options>`` on ``database_url`` with the operator token and the
    ``IDNODE_<NAME>`` settings given, stopped when the block ends."""
    env = {
        **os.environ,
        "IDNODE_DATABASE_URL": database_url,
        "IDNODE_ADMIN_TOKEN": OPERATOR_TOKEN,
        **{f"IDNODE_{name.upper()}": value for name, value in settings.items()},
    }
    node = LiveNode(env, workdir)
    node.start(*options)
    try:
        yield node
    finally:
        node.stop()


def wait_until_answers(
    url: str, process: subprocess.Popen[Any], log: Path, timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"node exited with {process.returncode}:\n{log.read_text()}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise AssertionError(f"node did not answer within {timeout}s:\n{log.read_text()}")


@pytest.fixture
def live_node(backend: str, tmp_path: Path, database_urls: dict[str, str]) -> Iterator[LiveNode]:
    """A node process on its own fresh database (migrated by ``idnode serve`` itself)."""
    with (
        empty_database(backend, tmp_path / "live.db", "live") as url,
        running_node(tmp_path, url) as node,
    ):
        yield node
