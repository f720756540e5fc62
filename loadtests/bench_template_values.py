"""Does an identifier with 30 template values resolve as fast as one with 2 (cached path)?

    .venv/bin/python loadtests/bench_template_values.py [--runs 3] [--duration 5]

Starts ``idnode serve`` (uvicorn, one worker, a fresh SQLite file), registers a ``device``
identifier with 2 attributes and one of a 30-item template with 30, warms the cache, then
drives ``GET /api/handles/<handle>`` of each with wrk (1 thread, 64 connections), alternating
the order per run. The two are measured against each other in the same run; the answer is
the ratio of their medians (1.0 = no difference). Needs wrk (apt-get install wrk).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent
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
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "IDNODE_DATABASE_URL": f"sqlite+aiosqlite:///{work / 'bench.db'}",
        "IDNODE_ADMIN_TOKEN": TOKEN,
    }
    with (work / "node.log").open("w") as log:
        node = subprocess.Popen(
            [str(BIN / "idnode"), "serve", "--port", str(port)],
            env=env,
            cwd=work,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait(base, node)
        handles = _register(base)
        rates: dict[str, list[float]] = {name: [] for name in handles}
        for run in range(args.runs):
            order = list(handles) if run % 2 == 0 else list(reversed(handles))
            for name in order:
                rates[name].append(_wrk(f"{base}/api/handles/{handles[name]}", args.duration))
                print(f"run {run + 1}: {name:>9} {rates[name][-1]:>9,.0f} req/s", flush=True)
        sizes = {
            name: len(httpx.get(f"{base}/api/handles/{h}").content) for name, h in handles.items()
        }
    finally:
        node.terminate()
        node.wait(timeout=20)
    two, thirty = statistics.median(rates["2 values"]), statistics.median(rates["30 values"])
    print(f"\nmedian req/s: 2 values {two:,.0f} ({sizes['2 values']} B answer), "
          f"30 values {thirty:,.0f} ({sizes['30 values']} B answer)")  # fmt: skip
    print(f"ratio 30/2: {thirty / two:.3f}")


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


def _wrk(url: str, duration: int) -> float:
    out = subprocess.run(
        ["wrk", "-t1", "-c64", f"-d{duration}s", url], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if match is None or "Non-2xx" in out:
        raise SystemExit(f"wrk failed:\n{out}")
    return float(match.group(1))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(base: str, node: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if node.poll() is not None:
            sys.exit(f"node exited with {node.returncode}")
        try:
            httpx.get(f"{base}/api/v1/templates", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    sys.exit("node did not answer in 60 s")


if __name__ == "__main__":
    main()
