"""The README on a fresh clone: its two commands, then "First steps" block by block, in order."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.deploy.manifests import idnode_variables

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def readme_commands() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
    return [block.strip() for block in blocks[:2]]


def test_the_settings_table_lists_every_setting() -> None:
    """Each IDNODE_* variable the node reads (Settings fields and the CLI's envvars) has a
    row in the README's settings table, and the table names no other."""
    table = set(re.findall(r"^\| `(IDNODE_[A-Z0-9_]+)` \|", README.read_text(), re.MULTILINE))
    assert table == idnode_variables()


def test_readme_starts_with_the_two_commands() -> None:
    first, second = readme_commands()
    assert "idnode serve" in first
    assert second == "make check"
    assert "make check" in (ROOT / ".ci" / "run").read_text()


@pytest.mark.slow
def test_first_command_and_first_steps_on_a_fresh_clone(tmp_path: Path) -> None:
    clone = tmp_path / "idnode"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IDNODE_", "VIRTUAL_ENV"))}
    env["IDNODE_PORT"] = str(port)
    env["XDG_DATA_HOME"] = str(tmp_path / "data-home")  # the user's own, on a fresh machine
    data_dir = tmp_path / "data-home" / "idnode"
    log = tmp_path / "readme.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            ["sh", "-c", readme_commands()[0]],
            cwd=clone,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        token = _wait_for_token(process, log, deadline=time.monotonic() + 400)
        base = f"http://127.0.0.1:{port}"
        _wait_for_http(base, process, log)
        _run_first_steps(base, token)
        assert f"serving http://127.0.0.1:{port}" in log.read_text()
        assert (data_dir / "idnode.db").exists()
        assert not (clone / "idnode.db").exists()
        assert f"storage SQLite {data_dir / 'idnode.db'}" in log.read_text()  # absolute paths
        assert f"node key {data_dir / 'idnode-node-key.pem'}" in log.read_text()
        if _port_taken_before_start(1883, log):
            # Machines running Mosquitto: the embedded broker says so once, HTTP serves on.
            assert log.read_text().count("device gateway off") == 1
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def first_steps() -> list[tuple[str, str]]:
    """The code blocks of "First steps", in order: (language, code)."""
    section = README.read_text().split("\n## First steps\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```(sh|python)\n(.*?)```", section, re.DOTALL)


def _run_first_steps(base: str, operator_token: str) -> None:
    """Each block as a newcomer would paste it, against the node on ``base``: the
    enterprise the first creates gives the $TOKEN and SECRET the later ones use."""
    env = {**os.environ, "OPERATOR_TOKEN": operator_token}
    steps = first_steps()
    assert [kind for kind, _ in steps] == ["sh", "python", "sh"]
    for kind, code in steps:
        code = code.replace("http://127.0.0.1:8000", base)
        if kind == "python":
            code = f"SECRET = {env['SECRET']!r}\n{code}"
        command = ["sh", "-c", code] if kind == "sh" else [sys.executable, "-c", code]
        done = subprocess.run(  # bounded by the timeout
            command, env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, f"{code}\n{done.stdout}\n{done.stderr}"
        if '"secret"' in done.stdout:
            issued = json.loads(done.stdout)
            assert (issued["prefix"], issued["adminHandle"]) == ("88.999.1", "88.999.1/ADMIN")
            env.update(TOKEN=issued["token"], SECRET=issued["secret"])
    # 3. Anyone resolves them.
    handle = "88.999.1/MILK-2026-000123"
    resolved = httpx.get(f"{base}/api/handles/{handle}")
    assert resolved.status_code == 200, resolved.text
    urls = [v["data"]["value"] for v in resolved.json()["values"] if v["type"] == "URL"]
    assert urls == ["https://trace.example.com/milk/000123"]
    scanned = httpx.get(f"{base}/{handle}")
    assert scanned.is_redirect
    assert scanned.headers["location"] == "https://trace.example.com/milk/000123"
    page = httpx.get(f"{base}/{handle}?noredirect")
    assert page.status_code == 200
    assert "trace.example.com/milk/000123" in page.text


def _port_taken_before_start(port: int, log: Path) -> bool:
    return "embedded MQTT broker on" not in log.read_text() and _port_open(port)


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _wait_for_token(process: subprocess.Popen[bytes], log: Path, deadline: float) -> str:
    while time.monotonic() < deadline:
        match = re.search(r"operator token \(shown once[^)]*\): (\S+)", log.read_text())
        if match:
            return match.group(1)
        if process.poll() is not None:
            raise AssertionError(f"README command exited {process.returncode}:\n{log.read_text()}")
        time.sleep(0.5)
    raise AssertionError(f"no operator token printed in time:\n{log.read_text()}")


def _wait_for_http(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{base}/", timeout=1)
            return
        except httpx.HTTPError:
            if process.poll() is not None:
                raise AssertionError(f"node exited:\n{log.read_text()}") from None
            time.sleep(0.3)
    raise AssertionError(f"node did not answer:\n{log.read_text()}")
