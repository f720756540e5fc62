"""What stops ``idnode`` before it starts: a taken port, a database it cannot use. Each ends
in one line that says what is wrong and what to do, and a non-zero exit, never a traceback."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import (
    OPERATOR_TOKEN,
    free_port,
    fresh_pg_database,
    require_postgres,
    running_node,
)
from tests.test_cli import run_idnode

# Every test runs the console script in a subprocess (seconds each: it imports the whole node).
pytestmark = pytest.mark.slow
TIMEOUT = 60


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode != 0, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    error = done.stderr.strip()
    assert len(error.splitlines()) == 1, done.stderr
    return error


def idnode(tmp_path: Path, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDNODE_")}
    env.update({f"IDNODE_{k.upper()}": v for k, v in settings.items()})
    return run_idnode(env, tmp_path, *args, timeout=TIMEOUT)


@pytest.mark.parametrize("server", ["granian", "uvicorn"])
def test_a_second_node_on_a_taken_port_stops_at_once(tmp_path: Path, server: str) -> None:
    database = f"sqlite+aiosqlite:///{tmp_path / 'first.db'}"
    with running_node(tmp_path, database, "--no-broker") as first:
        second = idnode(
            tmp_path,
            "serve",
            "--no-broker",
            "--server",
            server,
            "--port",
            str(first.port),
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'second.db'}",
            admin_token=OPERATOR_TOKEN,
        )
        error = one_line_error(second)
        assert f"127.0.0.1:{first.port}" in error
        assert "serving" not in second.stdout
        assert not (tmp_path / "second.db").exists()  # stopped before touching anything


@pytest.fixture
def missing_pg_database() -> str:
    require_postgres()
    return f"idnode_missing_{os.getpid()}_{secrets.token_hex(3)}"


COMMANDS = [
    ("migrate",),
    ("serve", "--no-broker"),
    ("enterprise", "list"),
    ("operator-token", "--rotate"),
    ("report", "monthly", "--month", "2026-11"),
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c))
def test_a_postgresql_database_that_does_not_exist_says_createdb(
    tmp_path: Path, missing_pg_database: str, command: tuple[str, ...]
) -> None:
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{missing_pg_database}"
    error = one_line_error(idnode(tmp_path, *command, database_url=url))
    assert f"createdb -h 127.0.0.1 -p 5432 -U postgres {missing_pg_database}" in error


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c))
def test_a_sqlite_file_in_a_missing_folder_is_named(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    folder = tmp_path / "no" / "such"
    url = f"sqlite+aiosqlite:///{folder / 'idnode.db'}"
    error = one_line_error(idnode(tmp_path, *command, database_url=url))
    assert str(folder / "idnode.db") in error
    assert f"mkdir -p {folder}" in error


def test_a_gateway_on_a_sqlite_file_in_a_missing_folder_is_refused(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'gone' / 'idnode.db'}"
    done = idnode(tmp_path, "gateway", database_url=url, mqtt_url="mqtt://127.0.0.1:1")
    assert str(tmp_path / "gone") in one_line_error(done)


def test_an_import_into_a_missing_folder_is_refused(tmp_path: Path) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text("suffix,batchNumber\nB-1,B-1\n")
    url = f"sqlite+aiosqlite:///{tmp_path / 'gone' / 'idnode.db'}"
    args = ("import", str(rows), "--template", "food.batch", "--prefix", "88.999.1")
    error = one_line_error(idnode(tmp_path, *args, database_url=url))
    assert str(tmp_path / "gone") in error


def test_a_postgresql_server_that_is_not_there_is_named(tmp_path: Path) -> None:
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/idnode"
    error = one_line_error(idnode(tmp_path, "migrate", database_url=url))
    assert "cannot reach PostgreSQL at 127.0.0.1:" in error


@pytest.mark.parametrize("scheme", ["postgres", "postgresql"])
def test_plain_postgresql_urls_mean_asyncpg(tmp_path: Path, scheme: str) -> None:
    with fresh_pg_database("scheme") as (name, _url):
        done = idnode(tmp_path, "migrate", database_url=f"{scheme}://postgres@127.0.0.1/{name}")
        assert done.returncode == 0, done.stderr
        assert "up to date" in done.stdout


def test_an_unknown_database_scheme_is_one_line(tmp_path: Path) -> None:
    error = one_line_error(idnode(tmp_path, "migrate", database_url="mysql://u@host/db"))
    assert "IDNODE_DATABASE_URL" in error
    assert "postgresql+asyncpg://" in error


def test_every_command_finds_the_node_whatever_folder_it_runs_in(tmp_path: Path) -> None:
    """No IDNODE_DATABASE_URL or IDNODE_NODE_KEY_FILE: the database and the key live in the
    data directory, not in the folder each command happens to run in."""
    home, first, second = tmp_path / "xdg", tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()

    def run(folder: Path, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("IDNODE_")}
        env.update({f"IDNODE_{k.upper()}": v for k, v in settings.items()})
        env["XDG_DATA_HOME"] = str(home)
        return run_idnode(env, folder, *args, timeout=TIMEOUT)

    created = run(first, "enterprise", "create", "Yili Dairy")
    assert created.returncode == 0, created.stderr
    listed = run(second, "enterprise", "list")
    assert listed.returncode == 0, listed.stderr
    assert "Yili Dairy" in listed.stdout
    keys = {run(folder, "node-key", "show").stdout.splitlines()[0] for folder in (first, second)}
    assert len(keys) == 1
    assert str(home / "idnode" / "idnode-node-key.pem") in keys.pop()
    assert sorted(p.name for p in (home / "idnode").iterdir() if p.suffix in {".db", ".pem"}) == [
        "idnode-node-key.pem",
        "idnode.db",
    ]
    assert list(first.iterdir()) == list(second.iterdir()) == []

    chosen = tmp_path / "chosen"
    migrated = run(first, "migrate", data_dir=str(chosen))
    assert migrated.returncode == 0, migrated.stderr
    assert str(chosen / "idnode.db") in migrated.stdout
    assert (chosen / "idnode.db").exists()


@pytest.fixture(params=["immutable file", "read-only mount"])
def read_only_sqlite(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """A SQLite database no one may write, root included (the tests run as root in CI): a
    file marked immutable (chattr +i), or a folder bind-mounted read-only."""
    folder = tmp_path / "data"
    folder.mkdir()
    file = folder / "idnode.db"
    with contextlib.closing(sqlite3.connect(file)) as db:
        db.execute("CREATE TABLE kept (x)")
        db.commit()
    if request.param == "immutable file":
        undo = ["chattr", "-i", str(file)]
        made = _run("chattr", "+i", str(file))
    else:
        undo = ["umount", str(folder)]
        made = _run("mount", "--bind", "-o", "ro", str(folder), str(folder))
    if made.returncode != 0:
        pytest.skip(f"cannot make a {request.param} here: {made.stderr.strip()}")
    try:
        yield file
    finally:
        _run(*undo)


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    if shutil.which(command[0]) is None:
        return subprocess.CompletedProcess(command, 127, "", f"{command[0]} is not installed")
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, check=False)


@pytest.mark.parametrize("command", [("serve", "--no-broker"), ("migrate",)], ids=" ".join)
def test_a_read_only_sqlite_file_is_refused_even_for_root(
    tmp_path: Path, read_only_sqlite: Path, command: tuple[str, ...]
) -> None:
    """Permission checks pass for root whatever the mode; SQLite still cannot write an
    immutable file or a read-only mount. The node must not start serving and then log
    "attempt to write a readonly database" on every write."""
    url = f"sqlite+aiosqlite:///{read_only_sqlite}"
    port = ("--port", str(free_port())) if command[0] == "serve" else ()
    error = one_line_error(idnode(tmp_path, *command, *port, database_url=url))
    assert str(read_only_sqlite) in error
    if os.statvfs(read_only_sqlite).f_flag & os.ST_RDONLY:
        assert "read-only file system" in error
    else:
        assert f"chattr -i {read_only_sqlite}" in error
