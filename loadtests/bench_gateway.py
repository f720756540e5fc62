"""Device gateway benchmark: one `idnode gateway` process against Mosquitto and PostgreSQL.

    .venv/bin/python loadtests/bench_gateway.py            # 3 runs, 10,000 devices

Each run, on a fresh PostgreSQL database and a Mosquitto of its own (free port, the queue
limits of deploy/mosquitto), with simulated devices on several client connections:

  ceiling        the rate one aiomqtt client receives QoS 1 messages from the same broker,
                 published by the same simulator (what no gateway can beat)
  registrations  every device registers once (QoS 1, a window of requests in flight per
                 connection); a registration counts when its accepted reply is received;
                 p50/p99 reply latency
  heartbeats     every device sends 3 heartbeats (QoS 1, as fast as the broker takes them);
                 done when every device row shows its last heartbeat

Count checks: every request got an accepted reply, the devices table holds exactly one row
per device, the gateway received every heartbeat and every row shows the last one. Prints
medians of the runs with ratios to the ceiling; writes loadtests/results/gateway-<time>.json.
Needs mosquitto and PostgreSQL on 127.0.0.1:5432.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiomqtt
import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from loadtests.machine import check_quiet, generator_core, pinned, snapshot  # noqa: E402
from loadtests.node import free_port, fresh_database  # noqa: E402

BIN = Path(sys.executable).parent
RESULTS = ROOT / "loadtests" / "results"
ROOT_TOPIC = "idnode/v1"
PUBLISH_WINDOW = 100  # QoS 1 publishes in flight per simulator connection


def start_mosquitto(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    config = workdir / "mosquitto.conf"
    config.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\nuser {getpass.getuser()}\n"
        "max_queued_messages 100000\nmessage_size_limit 65536\n"
    )
    process = subprocess.Popen(["mosquitto", "-c", str(config)], stderr=subprocess.DEVNULL)
    for _ in range(100):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return process, port
        time.sleep(0.05)
    raise SystemExit("mosquitto did not start")


async def provision(url: str) -> tuple[str, str, str]:
    """An enterprise and a provisioning key, through the node's own services."""
    from app.registry.access import enterprises
    from app.registry.devices import provisioning
    from app.settings import Settings
    from app.storage.database import Database

    settings = Settings(database_url=url, admin_token="bench")
    database = Database(settings)
    async with database.write_session() as session:
        issued = await enterprises.create_enterprise(
            session, name="Bench Plant", segment=None, node_prefix=settings.node_prefix
        )
        key = await provisioning.create_key(
            session, issued.enterprise.prefix, name="bench", template="device"
        )
        await session.commit()
    await database.dispose()
    return issued.enterprise.prefix, key.view.key, key.secret


async def ceiling(port: int, total: int, connections: int) -> float:
    """Messages/s one aiomqtt client receives at QoS 1, from the same simulator."""
    topic = f"bench/ceiling/{secrets.token_hex(3)}"
    got = 0
    done = asyncio.Event()
    async with aiomqtt.Client("127.0.0.1", port) as receiver:
        await receiver.subscribe(f"{topic}/+", qos=1)

        async def receive() -> None:
            nonlocal got
            async for _ in receiver.messages:
                got += 1
                if got == total:
                    done.set()
                    return

        reader = asyncio.create_task(receive())
        start = time.perf_counter()
        per_connection = [[f"{topic}/{c}"] * (total // connections) for c in range(connections)]
        await asyncio.gather(*(_publish_many(port, topics, b"{}") for topics in per_connection))
        await asyncio.wait_for(done.wait(), 300)
        elapsed = time.perf_counter() - start
        reader.cancel()
    return total / elapsed


async def _publish_many(port: int, topics: list[str], payload: bytes) -> None:
    async with aiomqtt.Client("127.0.0.1", port) as client:
        await publish_all(client, [(t, payload) for t in topics])


async def publish_all(client: aiomqtt.Client, messages: list[tuple[str, Any]]) -> None:
    """QoS 1 as fast as the broker acknowledges, a bounded number in flight."""
    slots = asyncio.Semaphore(PUBLISH_WINDOW)

    async def one(topic: str, payload: Any) -> None:
        async with slots:
            await client.publish(topic, payload, qos=1, timeout=120)

    await asyncio.gather(*(one(t, p) for t, p in messages))


async def registrations(
    port: int,
    prefix: str,
    key: str,
    secret: str,
    devices: list[str],
    connections: int,
    window: int,
) -> dict[str, Any]:
    """Every device registers; closed loop with ``window`` requests in flight per connection."""
    shards = [devices[i::connections] for i in range(connections)]
    latencies: list[float] = []
    replies: list[dict[str, Any]] = []

    ready = asyncio.Barrier(connections + 1)

    async def connection(names: list[str]) -> None:
        async with aiomqtt.Client("127.0.0.1", port) as client:
            # Each device listens for its own replies (subscribed before the clock starts).
            for i in range(0, len(names), 100):
                replies_of = [
                    (f"{ROOT_TOPIC}/{prefix}/devices/{n}/register/+", 1) for n in names[i : i + 100]
                ]
                await client.subscribe(replies_of)
            await ready.wait()
            sent: dict[str, float] = {}
            pending = iter(names)
            slots = asyncio.Semaphore(window)

            async def send() -> None:
                for name in pending:
                    await slots.acquire()
                    body = {
                        "requestId": name,
                        "provisionKey": key,
                        "provisionSecret": secret,
                        "hardwareIdType": "serial",
                        "attributes": {"model": "SIM-1"},
                    }
                    sent[name] = time.perf_counter()
                    topic = f"{ROOT_TOPIC}/{prefix}/devices/{name}/register"
                    await client.publish(topic, json.dumps(body), qos=1, timeout=120)

            sender = asyncio.create_task(send())
            received = 0
            async for message in client.messages:
                reply = json.loads(bytes(message.payload))  # type: ignore[arg-type]
                latencies.append(time.perf_counter() - sent[reply["requestId"]])
                reply["outcome"] = message.topic.value.rsplit("/", 1)[1]
                replies.append(reply)
                slots.release()
                received += 1
                if received == len(names):
                    break
            await sender

    running = asyncio.gather(*(connection(s) for s in shards))
    await asyncio.wait_for(ready.wait(), 120)
    start = time.perf_counter()
    await asyncio.wait_for(running, 600)
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "rate": len(devices) / elapsed,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
        "accepted": sum(r["outcome"] == "accepted" for r in replies),
        "created": sum(bool(r.get("created")) for r in replies),
        "distinct_handles": len({r.get("handle") for r in replies}),
    }


async def heartbeats(
    port: int, prefix: str, devices: list[str], rounds: int, connections: int, dsn: str
) -> dict[str, Any]:
    """Every device sends ``rounds`` heartbeats; done when every row shows the last one."""
    shards = [devices[i::connections] for i in range(connections)]

    async def connection(names: list[str]) -> None:
        async with aiomqtt.Client("127.0.0.1", port) as client:
            for seq in range(1, rounds + 1):
                body = json.dumps({"status": {"seq": seq}})
                topic = f"{ROOT_TOPIC}/{prefix}/devices/{{}}/heartbeat"
                await publish_all(client, [(topic.format(n), body) for n in names])

    db = await asyncpg.connect(dsn)
    start = time.perf_counter()
    await asyncio.gather(*(connection(s) for s in shards))
    published = time.perf_counter() - start
    query = "SELECT count(*) FROM devices WHERE (status->>'seq')::int = $1"
    while (done := await db.fetchval(query, rounds)) < len(devices):
        if time.perf_counter() - start > 600:
            break
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - start
    await db.close()
    return {
        "rate": len(devices) * rounds / elapsed,
        "publish_rate": len(devices) * rounds / published,
        "rows_with_last": done,
    }


def start_gateway(url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDNODE_")}
    env.update(
        IDNODE_DATABASE_URL=url,
        IDNODE_MQTT_URL=f"mqtt://127.0.0.1:{port}",
        IDNODE_MQTT_CLIENT_ID=f"bench-gw-{secrets.token_hex(3)}",
    )
    with log.open("w") as out:
        process = subprocess.Popen(
            pinned([str(BIN / "idnode"), "gateway"], "server"),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while "gateways.mqtt.connected" not in log.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"gateway did not connect:\n{log.read_text()}")
        time.sleep(0.1)
    return process


def stop_gateway(process: subprocess.Popen[bytes], log: Path) -> dict[str, int]:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    found = re.search(r"gateway stopped (\{.*\})", log.read_text())
    if found is None:
        raise SystemExit(f"no counters from the gateway:\n{log.read_text()}")
    return dict(json.loads(found.group(1)))


async def one_run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    before = check_quiet("gateway run")
    url = await fresh_database("idnode_bench_gateway")
    subprocess.run(
        [str(BIN / "idnode"), "migrate"],
        env={**os.environ, "IDNODE_DATABASE_URL": url},
        check=True,
        capture_output=True,
    )
    prefix, key, secret = await provision(url)
    broker, port = start_mosquitto(workdir)
    try:
        ceiling_rate = await ceiling(port, args.ceiling_messages, args.connections)
        devices = [f"SIM-{n:06d}" for n in range(args.devices)]
        log = workdir / "gateway.log"
        gateway = start_gateway(url, port, log)
        try:
            registered = await registrations(
                port, prefix, key, secret, devices, args.connections, args.window
            )
            beats = await heartbeats(
                port,
                prefix,
                devices,
                args.rounds,
                args.connections,
                url.replace("postgresql+asyncpg", "postgresql"),
            )
        finally:
            counters = stop_gateway(gateway, log)
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
        rows = await conn.fetchval("SELECT count(*) FROM devices")
        await conn.close()
    finally:
        broker.terminate()
        broker.wait(timeout=10)
    checks = {
        "accepted_all": registered["accepted"] == args.devices,
        "created_once": registered["created"] == args.devices == rows,
        "one_handle_each": registered["distinct_handles"] == args.devices,
        "heartbeats_received": counters["heartbeats_received"] == args.devices * args.rounds,
        "rows_show_last_heartbeat": beats["rows_with_last"] == args.devices,
    }
    return {
        "before": before,
        "after": snapshot(),
        "ceiling": ceiling_rate,
        "registrations": registered,
        "heartbeats": beats,
        "gateway": counters,
        "device_rows": rows,
        "checks": checks,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3, help="heartbeats per device")
    parser.add_argument("--connections", type=int, default=8, help="simulator connections")
    parser.add_argument("--window", type=int, default=64, help="registrations in flight each")
    parser.add_argument("--ceiling-messages", type=int, default=30_000)
    args = parser.parse_args()
    generator_core(os.getpid())  # the simulator; the gateway runs on the other core
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(args.runs):
            result = asyncio.run(one_run(args, Path(tmp)))
            runs.append(result)
            print(
                f"run {n + 1}: ceiling {result['ceiling']:.0f}/s, "
                f"registrations {result['registrations']['rate']:.0f}/s "
                f"(p99 {result['registrations']['p99_ms']:.0f} ms), "
                f"heartbeats {result['heartbeats']['rate']:.0f}/s, checks {result['checks']}, "
                f"load {result['before']['load']} -> {result['after']['load']}",
                flush=True,
            )
    median = {
        "ceiling": statistics.median(r["ceiling"] for r in runs),
        "registrations": statistics.median(r["registrations"]["rate"] for r in runs),
        "registration_p99_ms": statistics.median(r["registrations"]["p99_ms"] for r in runs),
        "heartbeats": statistics.median(r["heartbeats"]["rate"] for r in runs),
    }
    print(f"\nmedian of {args.runs} runs, {args.devices} devices, {args.connections} connections")
    print(f"  ceiling (one aiomqtt client receiving QoS 1)  {median['ceiling']:8.0f} msg/s")
    print(
        f"  registrations (reply received)             {median['registrations']:8.0f} /s"
        f"  {median['registrations'] / median['ceiling']:.2f}x ceiling,"
        f" p99 {median['registration_p99_ms']:.0f} ms"
    )
    print(
        f"  heartbeats (row updated)                   {median['heartbeats']:8.0f} /s"
        f"  {median['heartbeats'] / median['ceiling']:.2f}x ceiling"
    )
    print(f"  all checks passed: {all(all(r['checks'].values()) for r in runs)}")
    busy = sum(r["before"]["busy"] for r in runs)
    print(f"  runs begun on a busy machine: {busy} (quote none of them)")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"gateway-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.write_text(json.dumps({"args": vars(args), "runs": runs, "median": median}, indent=2))
    print(f"  {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
