"""Traffic to watch on the operator dashboard: not a benchmark.

Creates a demo enterprise, registers a few hundred identifiers, then resolves them (and a few
unknown ones) at a steady rate for a bounded time, printing what it did each second:

    IDNODE_ADMIN_TOKEN=<operator token> .venv/bin/python loadtests/demo_load.py

Options: --url (default http://127.0.0.1:8000), --seconds (60), --rate resolves/s (200),
--identifiers (300). Every bound is capped so a typo cannot flood a node.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time

import httpx

MAX_SECONDS, MAX_RATE, MAX_IDENTIFIERS = 600, 5000, 10_000


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the node")
    parser.add_argument(
        "--token",
        default=os.environ.get("IDNODE_ADMIN_TOKEN"),
        help="operator token (default: $IDNODE_ADMIN_TOKEN)",
    )
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=int, default=200, help="resolves per second")
    parser.add_argument("--identifiers", type=int, default=300, help="identifiers to register")
    args = parser.parse_args()
    if not args.token:
        parser.error("give the operator token: --token or IDNODE_ADMIN_TOKEN")
    args.seconds = min(max(args.seconds, 1.0), MAX_SECONDS)
    args.rate = min(max(args.rate, 1), MAX_RATE)
    args.identifiers = min(max(args.identifiers, 1), MAX_IDENTIFIERS)
    return args


async def _register(http: httpx.AsyncClient, operator: str, count: int) -> list[str]:
    created = await http.post(
        "/api/v1/enterprises",
        json={"name": f"Dashboard demo {int(time.time())}"},
        headers={"Authorization": f"Bearer {operator}"},
    )
    if created.status_code != 201:
        sys.exit(
            f"demo_load: could not create the demo enterprise: {created.status_code} {created.text}"
        )
    enterprise = created.json()
    headers = {"Authorization": f"Bearer {enterprise['token']}"}
    handles = [f"{enterprise['prefix']}/DEMO-{number:05d}" for number in range(count)]
    for handle in handles:
        value = {
            "index": 1,
            "type": "URL",
            "data": {"format": "string", "value": f"https://example.com/{handle}"},
        }
        answer = await http.put(f"/api/handles/{handle}", json={"values": [value]}, headers=headers)
        answer.raise_for_status()
    print(f"demo_load: enterprise {enterprise['prefix']}, {count} identifiers registered")
    return handles


async def _resolve(http: httpx.AsyncClient, handles: list[str], seconds: float, rate: int) -> None:
    started = time.monotonic()
    done = errors = 0
    for second in range(int(seconds)):
        batch = [random.choice(handles) for _ in range(rate)]
        batch[::20] = [f"{h}-UNKNOWN" for h in batch[::20]]  # some "not found" answers too
        answers = await asyncio.gather(
            *(http.get(f"/api/handles/{handle}") for handle in batch), return_exceptions=True
        )
        done += len(answers)
        errors += sum(1 for a in answers if isinstance(a, Exception) or a.status_code >= 500)
        print(f"demo_load: {done} resolves, {errors} failed", flush=True)
        await asyncio.sleep(max(started + second + 1 - time.monotonic(), 0))


async def main() -> None:
    args = _arguments()
    limits = httpx.Limits(max_connections=32)
    async with httpx.AsyncClient(base_url=args.url, limits=limits, timeout=10) as http:
        handles = await _register(http, args.token, args.identifiers)
        await _resolve(http, handles, args.seconds, args.rate)


if __name__ == "__main__":
    asyncio.run(main())
