"""Handle protocol benchmark: native resolution against a raw responder, and against HTTP.

    .venv/bin/python loadtests/bench_handle.py                 # 3 rounds of 5 s per measurement
    .venv/bin/python loadtests/bench_handle.py --rounds 1      # a quick look

Starts ``idnode serve`` (one worker, granian, SQLite in a temporary directory) with one
identifier, and a raw asyncio responder (uvloop, as granian's workers use) that answers every
TCP message and UDP datagram with the node's own answer bytes for the same request. One load
generator (this file, ``--generate``, a separate process on uvloop) then measures in turns,
``--rounds`` times each:

  tcp       anonymous resolution of the cached identifier, many requests per connection
            (one at a time per connection, as the CAICT SDK sends them)    node vs responder
  udp       the same request, one datagram each                            node vs responder
  http      GET /api/handles/<same identifier> on keep-alive connections (the HTTP hot path,
            raw HTTP/1.1 written by the same generator)
  half      p99 latency over TCP at half the node's TCP rate (fixed rate, latency counted
            from each request's scheduled time), from the node and from the responder at the
            same rate (what the generator and the machine add to any server's latency)

The node and the responder run on core 0, the generator on core 1 (``taskset``), so the
generator never takes the server's core; each round records the load average before and after
and is marked busy (with a warning) when it began above 1.

Prints medians with ratios and writes loadtests/results/handle-<time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from loadtests.machine import check_quiet, cpu_seconds, pinned, snapshot  # noqa: E402
from loadtests.node import free_port, wait  # noqa: E402
from resolver.handle_protocol.bodies import Query  # noqa: E402
from resolver.handle_protocol.message import (  # noqa: E402
    ENVELOPE_SIZE,
    OC_RESOLUTION,
    Envelope,
    Message,
)

BIN = Path(sys.executable).parent
RESULTS = ROOT / "loadtests" / "results"
ADMIN = "bench-operator-token"
REQUEST_ID = 4242


def main() -> None:
    args = _arguments()
    if args.generate:
        _run_loop(_generate(args))
        return
    if args.respond:
        _run_loop(_respond(args))
        return
    _bench(args)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--concurrency", type=int, default=32, help="connections (UDP sockets)")
    # internal: the generator and the responder run as their own processes
    parser.add_argument("--generate", choices=["tcp", "udp", "http"])
    parser.add_argument("--respond", action="store_true")
    parser.add_argument("--port", type=int)
    parser.add_argument("--payload", help="hex: the request (generator) or answer (responder)")
    parser.add_argument("--rate", type=float, default=0.0, help="fixed request rate (0: flat out)")
    return parser.parse_args()


def _run_loop(coro: Any) -> None:
    try:
        import uvloop

        uvloop.run(coro)
    except ImportError:
        asyncio.run(coro)


# --- the orchestration ---


def _bench(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="idnode-bench-handle-"))
    http_port, handle_port, ceiling_port = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "IDNODE_DATABASE_URL": f"sqlite+aiosqlite:///{work / 'bench.db'}",
        "IDNODE_ADMIN_TOKEN": ADMIN,
        "IDNODE_NODE_KEY_FILE": str(work / "node-key.pem"),
        "IDNODE_LOG_LEVEL": "warning",
    }
    command = [str(BIN / "idnode"), "serve", "--no-broker", "--port", str(http_port),
               "--handle-port", str(handle_port)]  # fmt: skip
    processes: list[subprocess.Popen[bytes]] = []
    try:
        node_log = (work / "node.log").open("w")
        processes.append(
            subprocess.Popen(pinned(command, "server"), env=env, stdout=node_log, stderr=node_log)
        )
        base = f"http://127.0.0.1:{http_port}"
        wait(base, processes[0])
        time.sleep(1.0)  # the Handle listener starts in the lifespan, right after
        hot = _register(base)
        request = _request(hot)
        answer = asyncio.run(_one_answer(handle_port, request))
        responder = ["--port", str(ceiling_port), "--payload", answer.hex()]
        processes.append(
            subprocess.Popen(pinned([sys.executable, __file__, "--respond", *responder], "server"))
        )
        time.sleep(1.5)
        servers = {"node": processes[0].pid, "ceiling": processes[1].pid}
        results = _measure(args, servers, handle_port, ceiling_port, http_port, request, hot)
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=20)
    summary = _summarise(results)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"handle-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps({"args": vars(args), "runs": results, "summary": summary}, indent=2))
    print(f"\nresults: {out}")


def _register(base: str) -> str:
    operator = {"Authorization": f"Bearer {ADMIN}"}
    made = httpx.post(f"{base}/api/v1/enterprises", json={"name": "Bench"}, headers=operator)
    made.raise_for_status()
    hot = f"{made.json()['prefix']}/HOT-1"
    values = [{"index": 1, "type": "URL", "data": "https://trace.example.com/b/1"}]
    httpx.put(f"{base}/api/handles/{hot}", json=values, headers=operator).raise_for_status()
    return hot


def _request(hot: str) -> bytes:
    message = Message(OC_RESOLUTION, Query(hot).pack(), expiration=int(time.time()) + 86400)
    packed = message.pack()
    return Envelope(0, REQUEST_ID, len(packed)).pack() + packed


async def _one_answer(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    async with asyncio.timeout(10):
        head = await reader.readexactly(ENVELOPE_SIZE)
        body = await reader.readexactly(int.from_bytes(head[16:20], "big"))
    writer.close()
    code = int.from_bytes(body[4:8], "big")
    if code != 1:
        raise RuntimeError(f"the node answered code {code}")
    return head + body


def _generator(
    mode: str, port: int, payload: bytes, args: argparse.Namespace, server: int, rate: float = 0
) -> dict[str, Any]:
    """One measurement, with the CPU the server under test (process tree ``server``) spent per
    request, and how busy the generator was: a generator near 100% of its core limits the rate
    of any server, so then the CPU per request is the figure that compares node and ceiling."""
    command = [sys.executable, __file__, "--generate", mode, "--port", str(port),
               "--payload", payload.hex(), "--duration", str(args.duration),
               "--concurrency", str(args.concurrency), "--rate", str(rate)]  # fmt: skip
    server_before = cpu_seconds(server)
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        pinned(command, "generator"), capture_output=True, check=True, timeout=args.duration + 60
    )
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result: dict[str, Any] = json.loads(done.stdout)
    served = max(result["count"], 1)
    result["server_us"] = round((cpu_seconds(server) - server_before) / served * 1e6, 2)
    generator = (children_after.ru_utime + children_after.ru_stime) - (
        children_before.ru_utime + children_before.ru_stime
    )
    result["generator_busy"] = round(generator / args.duration, 2)
    return result


def _measure(
    args: argparse.Namespace,
    servers: dict[str, int],
    node: int,
    ceiling: int,
    http: int,
    request: bytes,
    hot: str,
) -> list[dict[str, Any]]:
    http_request = f"GET /api/handles/{hot} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
    udp_request = request  # one datagram: envelope + message
    runs = []
    for round_ in range(args.rounds):
        run: dict[str, Any] = {"before": check_quiet(f"round {round_ + 1}")}
        # In turns, so node and responder see the same background load.
        for name, mode, port, payload, server in (
            ("tcp_node", "tcp", node, request, "node"),
            ("tcp_ceiling", "tcp", ceiling, request, "ceiling"),
            ("udp_node", "udp", node, udp_request, "node"),
            ("udp_ceiling", "udp", ceiling, udp_request, "ceiling"),
            ("http_node", "http", http, http_request, "node"),
        ):
            run[name] = measured = _generator(mode, port, payload, args, servers[server])
            print(
                f"round {round_ + 1} {name}: {measured['rate']:,.0f}/s, server "
                f"{measured['server_us']} us CPU/request, generator {measured['generator_busy']:.0%}"
                " busy",
                flush=True,
            )
        half = run["tcp_node"]["rate"] / 2
        run["half_tcp_node"] = _generator("tcp", node, request, args, servers["node"], half)
        run["half_tcp_ceiling"] = _generator(
            "tcp", ceiling, request, args, servers["ceiling"], half
        )
        print(
            f"round {round_ + 1} p99 at {half:,.0f}/s: node {run['half_tcp_node']['p99_ms']} ms,"
            f" responder {run['half_tcp_ceiling']['p99_ms']} ms"
        )
        run["after"] = snapshot()
        print(f"round {round_ + 1} load average {run['before']['load']} -> {run['after']['load']}")
        runs.append(run)
    return runs


def _summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def median(name: str, field: str = "rate") -> float:
        return statistics.median(run[name][field] for run in runs)

    summary = {
        "tcp_node": median("tcp_node"),
        "tcp_ceiling": median("tcp_ceiling"),
        "udp_node": median("udp_node"),
        "udp_ceiling": median("udp_ceiling"),
        "http_node": median("http_node"),
        "half_rate": median("half_tcp_node"),
        "half_p99_ms": median("half_tcp_node", "p99_ms"),
        "half_p99_ms_responder": median("half_tcp_ceiling", "p99_ms"),
        "busy_rounds": sum(run["before"]["busy"] for run in runs),
    }
    for kind in ("tcp", "udp"):
        node_us, ceiling_us = (
            median(f"{kind}_node", "server_us"),
            median(f"{kind}_ceiling", "server_us"),
        )
        summary[f"{kind}_node_us"], summary[f"{kind}_ceiling_us"] = node_us, ceiling_us
        # CPU per request, ceiling over node: the comparison that holds when the generator,
        # not the server, sets the rate.
        summary[f"{kind}_cpu_ratio"] = ceiling_us / node_us if node_us else 0.0
    summary["http_node_us"] = median("http_node", "server_us")
    summary["tcp_ratio"] = summary["tcp_node"] / summary["tcp_ceiling"]
    summary["udp_ratio"] = summary["udp_node"] / summary["udp_ceiling"]
    summary["tcp_vs_http"] = summary["tcp_node"] / summary["http_node"]
    summary["udp_vs_http"] = summary["udp_node"] / summary["http_node"]
    print("\nmedians:")
    for key, value in summary.items():
        print(f"  {key:22} {value:,.2f}")
    return summary


# --- the load generator ---


async def _generate(args: argparse.Namespace) -> None:
    payload = bytes.fromhex(args.payload)
    stop = time.perf_counter() + args.duration
    latencies: list[float] = []
    interval = args.concurrency / args.rate if args.rate else 0.0
    one = {"tcp": _tcp_worker, "udp": _udp_worker, "http": _http_worker}[args.generate]
    started = time.perf_counter()
    await asyncio.gather(
        *(
            one(
                args.port,
                payload,
                stop,
                latencies,
                interval,
                started + i * interval / args.concurrency,
            )
            for i in range(args.concurrency)
        )
    )
    elapsed = time.perf_counter() - started
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99)] * 1000 if latencies else 0.0
    print(
        json.dumps(
            {"rate": len(latencies) / elapsed, "count": len(latencies), "p99_ms": round(p99, 2)}
        )
    )


async def _paced(interval: float, due: float) -> float:
    """Wait for the next scheduled send (fixed rate); the time it was due."""
    if interval:
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        return due
    return time.perf_counter()


async def _read_handle_answer(reader: asyncio.StreamReader) -> None:
    head = await reader.readexactly(ENVELOPE_SIZE)
    await reader.readexactly(int.from_bytes(head[16:20], "big"))


async def _read_http_answer(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    await reader.readexactly(length)


def _stream_worker(read_answer: Callable[[asyncio.StreamReader], Awaitable[None]]) -> Any:
    """A worker on one TCP connection, one request at a time, reading each answer with
    ``read_answer`` (a Handle message, or an HTTP response)."""

    async def worker(
        port: int, request: bytes, stop: float, latencies: list[float], interval: float, due: float
    ) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.perf_counter() < stop:
            sent = await _paced(interval, due)
            due += interval
            writer.write(request)
            await read_answer(reader)
            latencies.append(time.perf_counter() - sent)
        writer.close()

    return worker


_tcp_worker = _stream_worker(_read_handle_answer)
_http_worker = _stream_worker(_read_http_answer)


class _Answers(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.waiting: asyncio.Future[bytes] | None = None

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.waiting is not None and not self.waiting.done():
            self.waiting.set_result(data)


async def _udp_worker(
    port: int, request: bytes, stop: float, latencies: list[float], interval: float, due: float
) -> None:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        _Answers, remote_addr=("127.0.0.1", port)
    )
    while time.perf_counter() < stop:
        sent = await _paced(interval, due)
        due += interval
        protocol.waiting = loop.create_future()
        transport.sendto(request)
        try:
            await asyncio.wait_for(protocol.waiting, 1.0)
        except TimeoutError:
            continue  # lost: not counted
        latencies.append(time.perf_counter() - sent)
    transport.close()


# --- the raw responder (the ceiling) ---


class _TcpResponder(asyncio.Protocol):
    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.buffer = b""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= ENVELOPE_SIZE:
            size = ENVELOPE_SIZE + int.from_bytes(self.buffer[16:20], "big")
            if len(self.buffer) < size:
                return
            self.buffer = self.buffer[size:]
            self.transport.write(self.answer)


class _UdpResponder(asyncio.DatagramProtocol):
    def __init__(self, answer: bytes) -> None:
        self.answer = answer

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.transport.sendto(self.answer, addr)


async def _respond(args: argparse.Namespace) -> None:
    answer = bytes.fromhex(args.payload)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _TcpResponder(answer), "127.0.0.1", args.port)
    await loop.create_datagram_endpoint(
        lambda: _UdpResponder(answer), local_addr=("127.0.0.1", args.port)
    )
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    main()
