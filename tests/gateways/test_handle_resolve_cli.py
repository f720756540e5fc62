"""``idnode resolve HANDLE --native HOST:PORT`` against a node's Handle protocol listener."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import bearer, create_enterprise, url_value
from tests.gateways.handle_node import HOST, NativeNode

IDNODE = Path(sys.executable).with_name("idnode")
pytestmark = pytest.mark.slow


async def idnode_resolve(*args: str) -> tuple[int, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDNODE_")}
    process = await asyncio.create_subprocess_exec(
        str(IDNODE), "resolve", *args, env=env, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, json.loads(out)


async def test_resolve_prints_the_values_over_tcp_and_udp(node: NativeNode) -> None:
    dairy = await create_enterprise(node.http)
    handle = f"{dairy['prefix']}/CLI-1"
    values = [url_value("https://example.com/cli"), {"index": 2, "type": "EMAIL", "data": "a@b"}]
    put = await node.http.put(f"/api/handles/{handle}", json=values, headers=bearer(dairy))
    assert put.status_code == 201
    address = f"{HOST}:{node.port}"
    code, answer = await idnode_resolve(handle, "--native", address, "--type", "URL")
    assert code == 0
    assert answer["handle"] == handle
    assert [(v["index"], v["data"]["value"]) for v in answer["values"]] == [
        (1, "https://example.com/cli")
    ]
    code, answer = await idnode_resolve(handle, "--native", address, "--udp", "--index", "2")
    assert code == 0
    assert [v["data"]["value"] for v in answer["values"]] == ["a@b"]


async def test_resolve_of_an_unknown_handle_says_so_and_fails(node: NativeNode) -> None:
    code, answer = await idnode_resolve("88.999/NOPE", "--native", f"{HOST}:{node.port}")
    assert code == 1
    assert answer["responseCode"] == 100
    assert "not found" in answer["message"]
