"""``idnode`` from a shell: the console script in a subprocess, on a fresh SQLite file and a
fresh PostgreSQL database."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import re
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.main import create_app
from app.settings import Settings
from tests.conftest import (
    BACKENDS,
    LiveNode,
    _create_pg_database,
    _drop_pg_database,
    require_postgres,
)
from tests.gateways.conftest import require_mosquitto

# Every test runs the console script in a subprocess (seconds each: it imports the whole node).
pytestmark = pytest.mark.slow
IDNODE = Path(sys.executable).with_name("idnode")
TIMEOUT = 120
TOKEN_WORD = re.compile(r"[A-Za-z0-9_\-]{32,}")


def run_idnode(
    env: dict[str, str], workdir: Path, *args: str, timeout: float = TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """``idnode <args>`` in ``workdir`` with exactly ``env``; its output, whatever its status."""
    return subprocess.run(  # bounded: every call has a timeout
        [str(IDNODE), *args],
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class Cli:
    """Runs ``idnode`` against one database, with no IDNODE_* setting but the database URL."""

    def __init__(self, database_url: str, workdir: Path) -> None:
        self.database_url = database_url
        self.workdir = workdir
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("IDNODE_")}
        self.env["IDNODE_DATABASE_URL"] = database_url

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_idnode(self.env, self.workdir, *args)

    def ok(self, *args: str) -> str:
        done = self.run(*args)
        assert done.returncode == 0, f"idnode {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        assert "Traceback" not in done.stderr
        return done.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args))

    def node(self) -> LiveNode:
        return LiveNode(dict(self.env), self.workdir)


@pytest.fixture(params=BACKENDS)
def cli(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cli]:
    """``idnode`` on a database nothing has touched yet."""
    if request.param == "postgresql":
        require_postgres()
        name = f"idnode_cli_{os.getpid()}_{secrets.token_hex(3)}"
        url = asyncio.run(_create_pg_database(name))
        try:
            yield Cli(url, tmp_path)
        finally:
            asyncio.run(_drop_pg_database(name))
    else:
        yield Cli(f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}", tmp_path)


def query(database_url: str, sql: str) -> list[tuple[Any, ...]]:
    async def run() -> list[tuple[Any, ...]]:
        engine = create_async_engine(database_url)
        try:
            async with engine.connect() as conn:
                return [tuple(row) for row in await conn.execute(text(sql))]
        finally:
            await engine.dispose()

    return asyncio.run(run())


def api_credential_keys() -> set[str]:
    """The JSON keys POST /api/v1/enterprises answers with, from the API's own schema."""
    spec = create_app(Settings(database_url="sqlite+aiosqlite:///unused.db")).openapi()
    return set(spec["components"]["schemas"]["EnterpriseCredentials"]["properties"])


def printed_tokens(output: str) -> list[str]:
    """Token-like words on lines that talk about the operator token."""
    return [
        word
        for line in output.splitlines()
        if "operator token" in line.lower()
        for word in TOKEN_WORD.findall(line)
    ]


def operator_get(node: LiveNode, token: str) -> httpx.Response:
    return httpx.get(
        f"{node.url}/api/v1/enterprises",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


# --- help ---


@pytest.mark.parametrize(
    ("command", "explains"),
    [
        ((), ["serve", "migrate", "enterprise", "operator-token", "import", "IDNODE_DATABASE_URL"]),
        (("import",), ["FILE", "--template", "--prefix", "rejected.csv", "line number"]),
        (("serve",), ["Serve the node", "--host", "--port", "--workers", "--no-migrate"]),
        (("migrate",), ["schema"]),
        (("enterprise",), ["create", "list", "disable", "enable"]),
        (("enterprise", "create"), ["NAME", "--prefix", "token"]),
        (("enterprise", "list"), ["prefixes", "status"]),
        (("enterprise", "disable"), ["PREFIX", "writes"]),
        (("enterprise", "enable"), ["PREFIX", "writes"]),
        (("operator-token",), ["--rotate", "operator"]),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, tuple) else None,
)
def test_help_explains_every_command(
    tmp_path: Path, command: tuple[str, ...], explains: list[str]
) -> None:
    cli = Cli(f"sqlite+aiosqlite:///{tmp_path / 'help.db'}", tmp_path)
    out = cli.ok(*command, "--help")
    assert out.startswith(f"Usage: idnode {' '.join(command)}".replace("  ", " ").rstrip())
    description = out.split("\n\n", 2)[1].strip()
    assert len(description) > 10, out  # a sentence, not just the usage line
    for word in explains:
        assert word in out, f"{word!r} missing from `idnode {' '.join(command)} --help`"
    assert not (tmp_path / "help.db").exists()  # help touches no database


def test_unknown_command_fails_cleanly(tmp_path: Path) -> None:
    cli = Cli(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", tmp_path)
    done = cli.run("frobnicate")
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert "frobnicate" in done.stderr


# --- migrate ---


def test_migrate_creates_the_schema_and_is_repeatable(cli: Cli) -> None:
    first = cli.ok("migrate")
    assert "up to date" in first
    assert cli.ok("migrate") == first
    assert len(query(cli.database_url, "SELECT version_num FROM alembic_version")) == 1
    for table in ("enterprises", "prefixes", "credentials", "handles", "idempotency_keys"):
        assert query(cli.database_url, f"SELECT COUNT(*) FROM {table}") == [(0,)]


# --- enterprises ---


def test_enterprise_create_list_disable_enable(cli: Cli) -> None:
    yili = cli.json("enterprise", "create", "Yili Dairy")
    assert set(yili) == api_credential_keys()
    assert {"prefix", "adminHandle", "secret", "token"} <= set(yili)
    assert yili["name"] == "Yili Dairy"
    assert yili["prefix"] == "88.999.1"
    assert yili["adminHandle"] == "88.999.1/ADMIN"
    assert yili["status"] == "active"
    assert yili["secret"]
    assert yili["token"]
    assert yili["createdAt"].endswith("Z"), yili  # written as the API writes it

    mengniu = cli.json("enterprise", "create", "Mengniu Dairy", "--prefix", "0042")
    assert set(mengniu) == api_credential_keys()
    assert mengniu["prefix"] == "88.999.0042"
    assert mengniu["adminHandle"] == "88.999.0042/ADMIN"
    assert mengniu["token"] != yili["token"]

    taken = cli.run("enterprise", "create", "Copycat Dairy", "--prefix", "0042")
    assert taken.returncode != 0
    assert "Traceback" not in taken.stdout + taken.stderr
    assert taken.stdout == ""  # no half-printed credentials
    error = taken.stderr.strip()
    assert len(error.splitlines()) == 1, taken.stderr
    assert "88.999.0042" in error
    assert "already" in error.lower()

    listed = cli.json("enterprise", "list")
    assert sorted((e["name"], e["prefix"], e["status"]) for e in listed) == [
        ("Mengniu Dairy", "88.999.0042", "active"),
        ("Yili Dairy", "88.999.1", "active"),
    ]  # the refused copycat left nothing behind
    for entry in listed:
        assert "secret" not in entry
        assert "token" not in entry

    disabled = cli.json("enterprise", "disable", "88.999.0042")
    assert disabled["prefix"] == "88.999.0042"
    assert disabled["status"] == "disabled"
    statuses = {e["prefix"]: e["status"] for e in cli.json("enterprise", "list")}
    assert statuses == {"88.999.1": "active", "88.999.0042": "disabled"}

    enabled = cli.json("enterprise", "enable", "88.999.0042")
    assert enabled["status"] == "active"
    statuses = {e["prefix"]: e["status"] for e in cli.json("enterprise", "list")}
    assert statuses == {"88.999.1": "active", "88.999.0042": "active"}


@pytest.mark.parametrize(
    "args",
    [
        ("enterprise", "disable", "88.999.77"),
        ("enterprise", "enable", "88.999.77"),
        ("enterprise", "create", "Bad Prefix", "--prefix", "no/slashes"),
        ("enterprise", "create", "   "),
    ],
    ids=["disable-unknown", "enable-unknown", "bad-prefix", "blank-name"],
)
def test_enterprise_errors_are_one_clean_line(cli: Cli, args: tuple[str, ...]) -> None:
    done = cli.run(*args)
    assert done.returncode != 0
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.strip()


# --- the operator token ---


def test_operator_token_needs_rotate(cli: Cli) -> None:
    done = cli.run("operator-token")
    assert done.returncode != 0
    assert "--rotate" in done.stderr
    assert "Traceback" not in done.stderr


def test_rotated_operator_token_works_on_a_node(cli: Cli) -> None:
    yili = cli.json("enterprise", "create", "Yili Dairy")
    token = cli.ok("operator-token", "--rotate").strip()
    assert TOKEN_WORD.fullmatch(token), token

    node = cli.node()
    assert "IDNODE_ADMIN_TOKEN" not in node.env
    node.start()
    try:
        listed = operator_get(node, token)
        assert listed.status_code == 200, listed.text
        assert [e["name"] for e in listed.json()] == ["Yili Dairy"]
        assert operator_get(node, token + "x").status_code == 401

        # The enterprise credentials printed by the CLI work too.
        written = httpx.put(
            f"{node.url}/api/handles/{yili['prefix']}/CLI-1",
            json={"values": [{"index": 1, "type": "URL", "data": "https://x.example/1"}]},
            headers={"Authorization": f"Bearer {yili['token']}"},
            timeout=10,
        )
        assert written.status_code == 201, written.text

        # Rotating again revokes the first token, on the running node too.
        newer = cli.ok("operator-token", "--rotate").strip()
        assert newer != token
        assert operator_get(node, token).status_code == 401
        assert operator_get(node, newer).status_code == 200
    finally:
        node.stop()
    log = node.log.read_text()
    assert token not in log
    assert newer not in log


def test_serve_prints_the_operator_token_on_first_start_only(cli: Cli) -> None:
    first = cli.node()
    first.start()
    try:
        first_log = first.log.read_text()
        tokens = printed_tokens(first_log)
        assert len(tokens) == 1, first_log
        token = tokens[0]
        assert first_log.count(token) == 1, first_log
        assert operator_get(first, token).status_code == 200
    finally:
        first.stop()

    second = cli.node()
    second.start()
    try:
        second_log = second.log.read_text()
        assert token not in second_log
        assert printed_tokens(second_log) == [], second_log
        assert "operator token" in second_log.lower()  # it says where the token went
        listed = operator_get(second, token)
        assert listed.status_code == 200, listed.text
        assert listed.json() == []
    finally:
        second.stop()


# --- import ---

IMPORT_HEADER = "suffix,product,batchNumber,productionDate,expiryDate,quantity,packagingLevel"


def test_import_registers_rows_and_writes_the_rejected_ones(cli: Cli) -> None:
    cli.ok("enterprise", "create", "Yili Dairy")
    source = cli.workdir / "batches.csv"
    source.write_text(
        "\n".join(
            [
                IMPORT_HEADER,
                "B-1,88.999.1/P-1,B1,2026-03-01,2026-08-28,100,pallet",
                "B-2,88.999.1/P-1,B2,2026-02-30,2026-08-28,lots,pallet",
                ",88.999.1/P-1,B3,2026-03-01,2026-08-28,,",
                "",
                "B-1,88.999.1/P-1,B4,2026-03-01,2026-08-28,1,case",
                "B-5,88.999.1/P-1,B5,2026-03-01",
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    done = cli.run("import", str(source), "--template", "food.batch", "--prefix", "88.999.1")
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "2 of 5 rows registered under 88.999.1" in done.stdout
    assert "3 rejected" in done.stdout
    rejected = cli.workdir / "batches.rejected.csv"
    assert str(rejected.name) in done.stdout
    with rejected.open(encoding="utf-8", newline="") as file:
        rows = list(csv.reader(file))
    assert rows[0] == ["line", "error", "reason", *IMPORT_HEADER.split(",")]
    by_line = {row[0]: row for row in rows[1:]}
    assert set(by_line) == {"3", "6", "7"}
    assert by_line["3"][1] == "TemplateViolation"
    assert "productionDate must be a real date" in by_line["3"][2]
    assert "quantity must be a number" in by_line["3"][2]
    assert by_line["3"][3:] == [
        "B-2",
        "88.999.1/P-1",
        "B2",
        "2026-02-30",
        "2026-08-28",
        "lots",
        "pallet",
    ]
    assert by_line["6"][1] == "HandleAlreadyExists"
    assert "line 2" in by_line["6"][2]
    assert by_line["7"][1] == "InvalidRequest"
    assert "4 cells" in by_line["7"][2]

    stored = query(cli.database_url, "SELECT handle FROM handles WHERE handle LIKE '88.999.1/%'")
    handles = sorted(h for (h,) in stored if h != "88.999.1/ADMIN")
    assert len(handles) == 2
    assert "88.999.1/B-1" in handles
    batch = query(
        cli.database_url,
        "SELECT value FROM attribute_values WHERE handle = '88.999.1/B-1' AND name = 'quantity'",
    )
    assert batch == [("100",)]

    # Fixed and imported again: every row is in, and the stale rejected file is gone.
    source.write_text(IMPORT_HEADER + "\nB-2,88.999.1/P-1,B2,2026-03-02,2026-08-28,5,case\n")
    again = cli.ok("import", str(source), "--template", "food.batch", "--prefix", "88.999.1")
    assert "1 of 1 rows registered" in again
    assert not rejected.exists()


def test_import_refuses_an_unknown_template_or_prefix_before_any_row(cli: Cli) -> None:
    cli.ok("enterprise", "create", "Yili Dairy")
    source = cli.workdir / "b.csv"
    source.write_text(IMPORT_HEADER + "\nB-1,88.999.1/P-1,B1,2026-03-01,2026-08-28,1,case\n")
    for args, named in (
        (("--template", "no.such", "--prefix", "88.999.1"), "no.such"),
        (("--template", "food.batch", "--prefix", "88.999.77"), "88.999.77"),
    ):
        done = cli.run("import", str(source), *args)
        assert done.returncode == 1
        assert "Traceback" not in done.stderr
        assert named in done.stderr
    assert query(cli.database_url, "SELECT COUNT(*) FROM attribute_values") == [(0,)]


def test_gateway_refuses_a_metrics_port_it_cannot_listen_on(tmp_path: Path) -> None:
    require_mosquitto()
    cli = Cli(f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}", tmp_path)
    cli.ok("migrate")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cli.env.update(
            IDNODE_MQTT_URL="mqtt://127.0.0.1:1883",
            IDNODE_MQTT_TOPIC_ROOT=f"idnode-cli-{secrets.token_hex(4)}/v1",
            IDNODE_GATEWAY_METRICS_PORT=str(port),
        )
        done = cli.run("gateway")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert f"cannot serve metrics on 127.0.0.1:{port}" in done.stderr


ORIGIN_HEADER = "suffix,product,batchNumber,productionDate,expiryDate,origin"
ORIGIN_ROW = "B-1,88.999.1/P-1,B1,2026-03-01,2026-08-28,内蒙古呼和浩特"


@pytest.mark.parametrize(
    ("encoding", "option"),
    [
        ("gbk", ()),  # what Excel writes for Chinese text
        ("gb18030", ()),
        ("utf-8", ()),
        ("utf-8-sig", ()),
        ("gbk", ("--encoding", "gbk")),
    ],
    ids=["gbk", "gb18030", "utf-8", "utf-8-bom", "gbk-declared"],
)
def test_import_reads_chinese_text_in_the_encodings_spreadsheets_write(
    tmp_path: Path, encoding: str, option: tuple[str, ...]
) -> None:
    cli = Cli(f"sqlite+aiosqlite:///{tmp_path / 'enc.db'}", tmp_path)
    cli.ok("enterprise", "create", "Yili Dairy")
    source = tmp_path / "batches.csv"
    source.write_bytes(f"{ORIGIN_HEADER}\r\n{ORIGIN_ROW}\r\n".encode(encoding))
    out = cli.ok("import", str(source), "--template", "food.batch", "--prefix", "88.999.1", *option)
    assert "1 of 1 rows registered" in out
    stored = query(cli.database_url, "SELECT value FROM attribute_values WHERE name = 'origin'")
    assert stored == [("内蒙古呼和浩特",)]


@pytest.mark.parametrize(
    ("content", "option", "named"),
    [
        (f"{ORIGIN_HEADER}\n{ORIGIN_ROW}\n".encode("gbk"), ("--encoding", "utf-8"), "utf-8"),
        (b"suffix,origin\nB-1,\x81\x30\xff\xff\n", (), "GB18030"),
        (b"suffix\nB-1\n", ("--encoding", "klingon"), "klingon"),
    ],
    ids=["gbk-declared-utf8", "unreadable", "unknown-encoding"],
)
def test_import_refuses_what_it_cannot_read_in_one_line(
    tmp_path: Path, content: bytes, option: tuple[str, ...], named: str
) -> None:
    cli = Cli(f"sqlite+aiosqlite:///{tmp_path / 'enc.db'}", tmp_path)
    cli.ok("enterprise", "create", "Yili Dairy")
    source = tmp_path / "batches.csv"
    source.write_bytes(content)
    done = cli.run(
        "import", str(source), "--template", "food.batch", "--prefix", "88.999.1", *option
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    error = done.stderr.strip()
    assert len(error.splitlines()) == 1, done.stderr
    assert named in error
    assert "--encoding" in error
