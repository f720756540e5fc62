"""A bounded soak: does the node hold steady under hours of ordinary traffic? Not a benchmark.

    .venv/bin/python loadtests/soak.py                 # 3 minutes, SQLite
    .venv/bin/python loadtests/soak.py --seconds 600 --backend postgresql

Starts on loopback a Mosquitto of its own (free port) and ``idnode serve`` (its gateway on
that broker; SQLite in a temporary directory, or a fresh PostgreSQL database ``idnode_soak``
on 127.0.0.1:5432, dropped afterwards), then for ``--seconds`` sends every second a mix of
resolves (known and unknown identifiers, lean and routed path), writes (new identifiers and
changes) and MQTT device registrations and heartbeats. Every ``--every`` seconds it prints the node's resident memory
and open file descriptors (the server process and its workers together) next to what was
done and any answer that was not the expected one. Figures: loadtests/README.md.

Every bound is capped, so a typo cannot flood a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiomqtt
import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loadtests.node import ADMIN_DSN, free_port, fresh_database

BIN = Path(sys.executable).parent
TOPIC_ROOT = "idnode/v1"
DATABASE = "idnode_soak"  # on PostgreSQL; dropped afterwards
OPERATOR = "soak-operator-" + secrets.token_hex(8)
MAX_SECONDS, MAX_READS, MAX_WRITES, MAX_DEVICES = 4 * 3600, 2000, 200, 200


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=180, help="how long (default 180)")
    parser.add_argument("--every", type=int, default=15, help="seconds between samples")
    parser.add_argument("--reads", type=int, default=100, help="resolves per second")
    parser.add_argument("--writes", type=int, default=10, help="writes per second")
    parser.add_argument("--devices", type=int, default=5, help="MQTT registrations per second")
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    args.seconds = min(max(args.seconds, 10), MAX_SECONDS)
    args.every = min(max(args.every, 1), args.seconds)
    args.reads = min(max(args.reads, 0), MAX_READS)
    args.writes = min(max(args.writes, 1), MAX_WRITES)
    args.devices = min(max(args.devices, 0), MAX_DEVICES)
    return args


def wait_for_port(port: int, process: subprocess.Popen[bytes], what: str, http: bool) -> None:
    """Until ``port`` takes connections (and, for ``http``, ``/healthz`` answers: granian
    listens before its workers are up)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"soak: {what} exited with {process.returncode}")
        try:
            if http and httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).is_success:
                return
        except httpx.HTTPError:
            pass
        with socket.socket() as sock:
            if not http and sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"soak: {what} did not start within 60 s")


async def drop_database(name: str) -> None:
    conn = await asyncpg.connect(ADMIN_DSN)
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()


def processes(pid: int) -> list[int]:
    """``pid`` and its descendants (granian runs the app in worker processes)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        todo.extend(int(child) for child in children)
    return found


def footprint(pid: int) -> tuple[float, int]:
    """Resident memory (MiB) and open file descriptors of the node's processes."""
    rss_kib = fds = 0
    for each in processes(pid):
        try:
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss_kib += int(line.split()[1])
            fds += len(os.listdir(f"/proc/{each}/fd"))
        except OSError:
            continue  # a worker that just went away
    return rss_kib / 1024, fds


class Traffic:
    """One second's worth of each kind of request, counted by outcome."""

    def __init__(self, http: httpx.AsyncClient, mqtt: aiomqtt.Client, plant: dict[str, Any]):
        self.http = http
        self.mqtt = mqtt
        self.plant = plant
        self.auth = {"Authorization": f"Bearer {plant['token']}"}
        self.handles: list[str] = []
        self.devices = 0
        self.created = 0
        self.done: Counter[str] = Counter()
        self.unexpected: Counter[str] = Counter()

    def _count(self, kind: str, status: int, expected: set[int]) -> None:
        self.done[kind] += 1
        if status not in expected:
            self.unexpected[f"{kind} {status}"] += 1

    async def write(self, n: int) -> None:
        if self.handles and n % 3 == 0:  # a change to an existing identifier
            handle, status = random.choice(self.handles), 200
        else:
            self.created += 1
            handle, status = f"{self.plant['prefix']}/SOAK-{self.created:07d}", 201
        value = {
            "index": 1,
            "type": "URL",
            "data": {"format": "string", "value": f"https://example.com/{handle}/{n}"},
        }
        answer = await self.http.put(
            f"/api/handles/{handle}", json={"values": [value]}, headers=self.auth
        )
        if answer.status_code == 201:
            self.handles.append(handle)
        self._count("write", answer.status_code, {status})

    async def read(self, n: int) -> None:
        if not self.handles or n % 20 == 0:
            handle, expected = f"{self.plant['prefix']}/MISSING-{n % 50}", {404}
        else:
            handle, expected = random.choice(self.handles), {200}
        query = "?type=URL" if n % 10 == 0 else ""  # the routed path too, not only the lean one
        answer = await self.http.get(f"/api/handles/{handle}{query}")
        self._count("read", answer.status_code, expected)

    async def register(self) -> None:
        self.devices += 1
        body = {
            "provisionKey": self.plant["key"],
            "provisionSecret": self.plant["secret"],
            "hardwareIdType": "serial",
        }
        topic = f"{TOPIC_ROOT}/{self.plant['prefix']}/devices/SOAK-{self.devices:07d}"
        await self.mqtt.publish(f"{topic}/register", json.dumps(body).encode(), qos=1)
        await self.mqtt.publish(f"{topic}/heartbeat", b'{"status":{"batteryLevel":80}}', qos=1)
        self.done["registration sent"] += 1

    async def replies(self) -> None:
        async for message in self.mqtt.messages:
            outcome = message.topic.value.rsplit("/", 1)[1]
            self._count("registration", 200 if outcome == "accepted" else 500, {200})

    async def second(self, args: argparse.Namespace, tick: int) -> None:
        work = [self.write(tick * args.writes + i) for i in range(args.writes)]
        work += [self.read(tick * args.reads + i) for i in range(args.reads)]
        work += [self.register() for _ in range(args.devices)]
        results = await asyncio.gather(*work, return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):
                self.unexpected[type(result).__name__] += 1


def sample(pid: int, elapsed: float, traffic: Traffic) -> tuple[float, float, int]:
    """Print and return (elapsed, RSS MiB, fds)."""
    rss, fds = footprint(pid)
    done, unexpected = traffic.done, dict(traffic.unexpected) or "-"
    print(f"{elapsed:>6.0f} {rss:>8.1f} {fds:>5} {done['read']:>8} {done['write']:>7} "
          f"{done['registration']:>8}  {unexpected}", flush=True)  # fmt: skip
    return elapsed, rss, fds


async def provision(http: httpx.AsyncClient) -> dict[str, Any]:
    operator = {"Authorization": f"Bearer {OPERATOR}"}
    plant = (await http.post("/api/v1/enterprises", json={"name": "Soak"}, headers=operator)).json()
    key = await http.post(
        f"/api/v1/enterprises/{plant['prefix']}/provisioning-keys",
        json={"name": "soak"},
        headers={"Authorization": f"Bearer {plant['token']}"},
    )
    return {**plant, "key": key.json()["key"], "secret": key.json()["secret"]}


async def soak(args: argparse.Namespace, node: subprocess.Popen[bytes], port: int, mq: int) -> int:
    async with (
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http,
        aiomqtt.Client("127.0.0.1", mq, protocol=aiomqtt.ProtocolVersion.V5) as mqtt,
    ):
        plant = await provision(http)
        await mqtt.subscribe(f"{TOPIC_ROOT}/{plant['prefix']}/devices/+/register/+", qos=1)
        traffic = Traffic(http, mqtt, plant)
        listener = asyncio.create_task(traffic.replies())
        started = time.monotonic()
        print(f"soak: {args.seconds} s of {args.reads} reads, {args.writes} writes, "
              f"{args.devices} registrations per second ({args.backend})")  # fmt: skip
        print(f"{'t (s)':>6} {'RSS MiB':>8} {'fds':>5} {'reads':>8} {'writes':>7} "
              f"{'devices':>8}  unexpected")  # fmt: skip
        samples = [sample(node.pid, 0.0, traffic)]
        tick = 0
        # One second's mix per tick; on a loaded machine a tick takes longer (fewer are
        # sent), but the bound is the time.
        while (elapsed := time.monotonic() - started) < args.seconds:
            if elapsed >= samples[-1][0] + args.every:
                samples.append(sample(node.pid, elapsed, traffic))
            await traffic.second(args, tick)
            tick += 1
            await asyncio.sleep(max(0.0, started + tick - time.monotonic()))
        await asyncio.sleep(2)  # the last replies
        listener.cancel()
        samples.append(sample(node.pid, time.monotonic() - started, traffic))
        _, first_rss, first_fds = samples[1] if len(samples) > 2 else samples[0]
        _, rss, fds = samples[-1]
        print(f"soak: after the first sample RSS {first_rss:.1f} -> {rss:.1f} MiB, fds "
              f"{first_fds} -> {fds}; {tick} ticks in {args.seconds} s; {traffic.devices} "
              f"registrations sent, {traffic.done['registration']} answered; unexpected "
              f"answers: {sum(traffic.unexpected.values())}")  # fmt: skip
        return 1 if traffic.unexpected else 0


def main() -> None:
    args = _arguments()
    if shutil.which("mosquitto") is None:
        raise SystemExit("soak: mosquitto is not installed")
    workdir = Path(tempfile.mkdtemp(prefix="idnode-soak-"))
    mq = free_port()
    (workdir / "mosquitto.conf").write_text(
        f"listener {mq} 127.0.0.1\nallow_anonymous true\npersistence false\n"
    )
    broker = subprocess.Popen(
        ["mosquitto", "-c", str(workdir / "mosquitto.conf")], stderr=subprocess.DEVNULL
    )
    node: subprocess.Popen[bytes] | None = None
    try:
        wait_for_port(mq, broker, "mosquitto", http=False)
        if args.backend == "postgresql":
            url = asyncio.run(fresh_database(DATABASE))
        else:
            url = f"sqlite+aiosqlite:///{workdir / 'soak.db'}"
        port = free_port()
        env = {
            **os.environ,
            "IDNODE_DATABASE_URL": url,
            "IDNODE_ADMIN_TOKEN": OPERATOR,
            "IDNODE_MQTT_URL": f"mqtt://127.0.0.1:{mq}",
            "IDNODE_NODE_KEY_FILE": str(workdir / "node-key.pem"),
        }
        with (workdir / "node.log").open("ab") as log:
            node = subprocess.Popen(
                [str(BIN / "idnode"), "serve", "--port", str(port), "--no-broker"],
                env=env,
                cwd=workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for_port(port, node, "the node", http=True)
        code = asyncio.run(soak(args, node, port, mq))
    finally:
        for process in (node, broker):
            if process is not None:
                process.terminate()
                process.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)
        if args.backend == "postgresql":
            asyncio.run(drop_database(DATABASE))
    sys.exit(code)


if __name__ == "__main__":
    main()
