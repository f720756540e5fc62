"""Does an identifier with 30 template values resolve as fast as one with 2 (cached path)?

    .venv/bin/python loadtests/bench_template_values.py [--runs 3] [--duration 5]

Starts ``idnode serve`` (uvicorn, one worker, a fresh SQLite file), registers a ``device``
identifier with 2 attributes and one of a 30-item template with 30, warms the cache, then
drives ``GET /api/handles/<handle>`` of each with wrk (1 thread, 64 connections), alternating
the order per run, and the ceiling app of loadtests/ceiling.py (raw ASGI, same server) sending
the very same answer bytes. The answer is the node's 30/2 ratio of medians next to the
ceiling's: a larger answer costs the transport (and wrk) throughput whatever the node does,
so the node keeps up when its ratio matches the ceiling's. Needs wrk (apt-get install wrk).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loadtests.node import BIN, free_port, serve, wait

ROOT = Path(__file__).resolve().parent.parent

TOKEN = "bench-operator-token"
OPERATOR = {"Authorization": f"Bearer {TOKEN}"}
ITEMS = 30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk measurement")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install wrk")
    work = Path(tempfile.mkdtemp(prefix="idnode-tplbench-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    node = serve(work, port, f"sqlite+aiosqlite:///{work / 'bench.db'}", TOKEN)
    ceilings: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
    try:
        wait(base, node)
        handles = _register(base)
        for name, handle in handles.items():
            body = work / f"{name.split()[0]}.json"
            body.write_bytes(httpx.get(f"{base}/api/handles/{handle}").content)
            ceilings[name] = _ceiling(body, work)
        rates: dict[str, list[float]] = {}
        for run in range(args.runs):
            order = list(handles) if run % 2 == 0 else list(reversed(handles))
            for name in order:
                for who, url in (("node", f"{base}/api/handles/{handles[name]}"),
                                 ("ceiling", ceilings[name][1])):  # fmt: skip
                    rate = _wrk(url, args.duration)
                    rates.setdefault(f"{who} {name}", []).append(rate)
                    print(f"run {run + 1}: {who:>7} {name:>9} {rate:>9,.0f} req/s", flush=True)
    finally:
        for process in [node, *(p for p, _ in ceilings.values())]:
            process.terminate()
            process.wait(timeout=20)
    median = {key: statistics.median(values) for key, values in rates.items()}
    print()
    for who in ("node", "ceiling"):
        two, thirty = median[f"{who} 2 values"], median[f"{who} 30 values"]
        print(f"{who:>7}: 2 values {two:>9,.0f} req/s, 30 values {thirty:>9,.0f} req/s, "
              f"ratio 30/2 {thirty / two:.3f}")  # fmt: skip


def _register(base: str) -> dict[str, str]:
    with httpx.Client(base_url=base, timeout=30) as client:
        enterprise = client.post("/api/v1/enterprises", json={"name": "Bench"}, headers=OPERATOR)
        enterprise.raise_for_status()
        bearer = {"Authorization": f"Bearer {enterprise.json()['token']}"}
        items = [
            {"index": 2000 + n, "name": f"attribute{n:02d}", "label_zh": f"属性{n}",
             "label_en": f"Attribute {n}", "type": "string"}
            for n in range(ITEMS)
        ]  # fmt: skip
        example = {f"attribute{n:02d}": f"value number {n} of thirty" for n in range(ITEMS)}
        template = {"id": "bench.thirty", "industry": "C14", "title": {"zh": "三十", "en": "Thirty"},
                    "items": items, "example": example}  # fmt: skip
        client.post("/api/v1/templates", json=template, headers=OPERATOR).raise_for_status()
        handles = {}
        for name, kind, attributes in (
            ("2 values", "device", {"hardwareId": "70B3D57ED005A1B2", "hardwareIdType": "deveui"}),
            ("30 values", "bench.thirty", example),
        ):
            body = {
                "prefix": enterprise.json()["prefix"],
                "template": kind,
                "attributes": attributes,
            }
            answer = client.post("/api/v1/identifiers", json=body, headers=bearer)
            answer.raise_for_status()
            handles[name] = answer.json()["handle"]
            client.get(f"/api/handles/{handles[name]}").raise_for_status()  # warm the cache
        return handles


def _ceiling(body: Path, work: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "CEILING_BODY_FILE": str(body), "PYTHONPATH": str(ROOT)}
    command = [str(BIN / "uvicorn"), "--factory", "--host", "127.0.0.1", "--port", str(port),
               "--log-level", "warning", "loadtests.ceiling:bytes_app"]  # fmt: skip
    with (work / f"ceiling-{port}.log").open("w") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/api/handles/x"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return process, url
        except httpx.HTTPError:
            time.sleep(0.2)
    sys.exit("the ceiling app did not answer in 30 s")


def _wrk(url: str, duration: int) -> float:
    out = subprocess.run(
        ["wrk", "-t1", "-c64", f"-d{duration}s", url], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if match is None or "Non-2xx" in out:
        raise SystemExit(f"wrk failed:\n{out}")
    return float(match.group(1))


if __name__ == "__main__":
    main()
