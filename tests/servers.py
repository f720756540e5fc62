"""Private servers a test may stop and start: a PostgreSQL cluster and a Mosquitto broker of
its own, on free loopback ports (never the shared ones on 5432 and 1883)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import _port_open, free_port

POSTGRES_BINARIES = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(reason + " (CI requires it)")
    pytest.skip(reason)


class PrivatePostgres:
    """A PostgreSQL cluster in a temporary directory, trust auth, user ``postgres``.

    PostgreSQL refuses to run as root, so under root the server runs as the ``postgres``
    user, in a directory it owns (not under pytest's tmp_path, which only root may enter).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.data = directory / "data"
        self.port = free_port()
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"
        self._bin = POSTGRES_BINARIES[-1].parent
        self.options = ""  # more server settings (-c name=value ...)

    def _run(self, *command: str) -> None:
        as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run(
            [*as_user, *command], check=True, capture_output=True, text=True, timeout=120
        )

    def create(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
        self._run(
            str(self._bin / "initdb"),
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 "
            f"-c fsync=off -c max_connections=60 {self.options}"
        )
        log = str(self.directory / "server.log")
        pg_ctl = str(self._bin / "pg_ctl")
        self._run(pg_ctl, "-D", str(self.data), "-o", options, "-l", log, "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self._bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    @property
    def running(self) -> bool:
        return _port_open("127.0.0.1", self.port)


class PrivateReplica(PrivatePostgres):
    """A streaming replica of a private cluster (``pg_basebackup -R``), applying what it
    receives ``apply_delay`` late (``recovery_min_apply_delay``) to act as a lagging one.
    initdb's trust pg_hba already lets local and loopback replication connections in, and
    PostgreSQL's defaults (wal_level=replica, max_wal_senders=10) let them stream."""

    def __init__(self, directory: Path, primary: PrivatePostgres, apply_delay: str) -> None:
        super().__init__(directory)
        self.primary = primary
        self.options = f"-c recovery_min_apply_delay={apply_delay} -c hot_standby=on"

    def create(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
        self._run(
            str(self._bin / "pg_basebackup"),
            "-R",
            "-D",
            str(self.data),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.primary.port),
            "-U",
            "postgres",
            "-X",
            "stream",
            "--no-sync",
        )

    def promote(self) -> None:
        """Make the replica a primary (``pg_ctl promote``), waiting until it takes writes."""
        self._run(str(self._bin / "pg_ctl"), "-D", str(self.data), "-w", "-t", "60", "promote")


@contextmanager
def _started(server: PrivatePostgres) -> Iterator[PrivatePostgres]:
    try:
        server.create()
        server.start()
        yield server
    finally:
        if (server.data / "postmaster.pid").exists():
            server.stop("immediate")
        shutil.rmtree(server.directory, ignore_errors=True)


@contextmanager
def private_postgres(options: str = "") -> Iterator[PrivatePostgres]:
    """A started private cluster (with more server ``options``, ``-c name=value ...``),
    stopped and deleted afterwards whatever happened."""
    if not POSTGRES_BINARIES:
        _skip_or_fail("PostgreSQL's server binaries are not in /usr/lib/postgresql/*/bin")
    server = PrivatePostgres(Path(tempfile.mkdtemp(prefix="idnode-pg-")))
    server.options = options
    with _started(server):
        yield server


@contextmanager
def private_replica(primary: PrivatePostgres, apply_delay: str = "0") -> Iterator[PrivateReplica]:
    """A started streaming replica of ``primary``, stopped and deleted afterwards."""
    directory = Path(tempfile.mkdtemp(prefix="idnode-pg-replica-"))
    with _started(PrivateReplica(directory, primary, apply_delay)) as server:
        assert isinstance(server, PrivateReplica)
        yield server


class PrivateMosquitto:
    """A Mosquitto broker on a free loopback port (anonymous, no persistence)."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self._config = directory / "mosquitto.conf"
        self._config.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        )
        self._log = directory / "mosquitto.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self._log.open("ab") as log:
            self.process = subprocess.Popen(
                ["mosquitto", "-c", str(self._config)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 20
        while not _port_open("127.0.0.1", self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"mosquitto did not start:\n{self._log.read_text()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=20)
            self.process = None


@contextmanager
def private_mosquitto(directory: Path) -> Iterator[PrivateMosquitto]:
    """A started private broker, stopped afterwards whatever happened."""
    if shutil.which("mosquitto") is None:
        _skip_or_fail("mosquitto is not installed")
    broker = PrivateMosquitto(directory)
    try:
        broker.start()
        yield broker
    finally:
        if broker.process is not None:
            broker.process.kill()
            broker.process.wait(timeout=20)


class PrivatePgBouncer:
    """PgBouncer in transaction pooling mode on a free loopback port, in front of the shared
    PostgreSQL (127.0.0.1:5432), with ``server_connections`` server connections per database:
    few, so that the client connections of a node take turns on them, as they do in front of
    a busy database. Like PostgreSQL, PgBouncer will not run as root: it runs as ``postgres``.
    """

    def __init__(self, directory: Path, server_connections: int = 2) -> None:
        self.port = free_port()
        self.directory = directory
        (directory / "users.txt").write_text('"postgres" ""\n')
        (directory / "pgbouncer.ini").write_text(
            "[databases]\n* = host=127.0.0.1 port=5432\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\n"
            f"unix_socket_dir = {directory}\n"
            f"auth_type = trust\nauth_file = {directory / 'users.txt'}\n"
            "pool_mode = transaction\n"
            f"default_pool_size = {server_connections}\nreserve_pool_size = 0\n"
            "max_client_conn = 500\nignore_startup_parameters = extra_float_digits\n"
            f"logfile = {directory / 'pgbouncer.log'}\n"
        )
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.process = subprocess.Popen(
            [*as_user, "pgbouncer", str(self.directory / "pgbouncer.ini")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while not _port_open("127.0.0.1", self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = self.directory / "pgbouncer.log"
                raise AssertionError(
                    f"pgbouncer did not start:\n{log.read_text() if log.exists() else ''}"
                )
            time.sleep(0.05)


@contextmanager
def private_pgbouncer(server_connections: int = 2) -> Iterator[PrivatePgBouncer]:
    """A started PgBouncer (transaction mode), stopped and deleted afterwards."""
    if shutil.which("pgbouncer") is None:
        _skip_or_fail("pgbouncer is not installed (apt-get install pgbouncer)")
    directory = Path(tempfile.mkdtemp(prefix="idnode-pgbouncer-"))
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    bouncer = PrivatePgBouncer(directory, server_connections)
    try:
        bouncer.start()
        yield bouncer
    finally:
        if bouncer.process is not None:
            bouncer.process.terminate()
            try:
                bouncer.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                bouncer.process.kill()
        shutil.rmtree(directory, ignore_errors=True)
