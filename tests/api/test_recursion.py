"""Resolution beyond the node's own store, between real node processes.

- a foreign identifier goes to the upstream node (IDNODE_UPSTREAM_URL), is cached, is served
  stale while the upstream is down, and fails with 504 / responseCode 301 when it never was
  seen;
- a local prefix whose ``0.NA/<prefix>`` record has an HS_SITE value is resolved at that
  enterprise node (or, with ``?referral=true``, referred to it with 300 / responseCode 303);
- two nodes pointing at each other end a resolution quickly with a loop error.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import OPERATOR, LiveNode

pytestmark = pytest.mark.slow

UPSTREAM_PREFIX = "86.100"
ENTERPRISE = "86.100.1"
FOREIGN = f"{ENTERPRISE}/X"
NODE_PREFIX = "88.999"
SITE_PREFIX = "88.999.7"
SITE_HANDLE = f"{SITE_PREFIX}/BATCH-1"


def node_env(database: Path, **settings: str) -> dict[str, str]:
    """The environment of a node on its own SQLite file; no IDNODE_* leaks in from outside."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDNODE_")}
    env["IDNODE_DATABASE_URL"] = f"sqlite+aiosqlite:///{database}"
    env["IDNODE_ADMIN_TOKEN"] = OPERATOR["Authorization"].removeprefix("Bearer ")
    env.update({f"IDNODE_{name.upper()}": value for name, value in settings.items()})
    return env


def new_node(tmp_path: Path, name: str, **settings: str) -> LiveNode:
    """A node (not started yet) in its own directory with its own database."""
    workdir = tmp_path / name
    workdir.mkdir()
    return LiveNode(node_env(workdir / f"{name}.db", **settings), workdir)


@contextmanager
def running(*nodes: LiveNode) -> Iterator[None]:
    """Start the nodes (in order) and stop every one of them afterwards, whatever happened."""
    try:
        for node in nodes:
            node.start()
        yield
    finally:
        for node in nodes:
            node.stop()


def api(node: LiveNode, handle: str) -> str:
    return f"{node.url}/api/handles/{handle}"


def put_record(node: LiveNode, handle: str, values: list[dict[str, Any]]) -> httpx.Response:
    response = httpx.put(api(node, handle), json={"values": values}, headers=OPERATOR)
    assert response.status_code in (200, 201), response.text
    return response


def string_value(index: int, vtype: str, value: str, **extra: Any) -> dict[str, Any]:
    return {"index": index, "type": vtype, "data": {"format": "string", "value": value}, **extra}


def assert_handle_error(response: httpx.Response, status: int, code: int) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    body = dict(response.json())
    assert body["responseCode"] == code, body
    assert isinstance(body.get("message"), str), body
    assert body["message"], body
    return body


def new_upstream(tmp_path: Path) -> LiveNode:
    return new_node(tmp_path, "upstream", node_prefix=UPSTREAM_PREFIX)


def fill_upstream(upstream: LiveNode) -> dict[str, Any]:
    """Enterprise 86.100.1 on the upstream node and its identifier 86.100.1/X; U's answer."""
    created = httpx.post(
        f"{upstream.url}/api/v1/enterprises",
        json={"name": "Upstream Dairy", "prefix": "1"},
        headers=OPERATOR,
    )
    assert created.status_code == 201, created.text
    assert created.json()["prefix"] == ENTERPRISE
    put_record(
        upstream,
        FOREIGN,
        [
            string_value(1, "URL", "https://trace.example.com/upstream/x"),
            string_value(2, "EMAIL", "qa@upstream.example", ttl=600),
        ],
    )
    answer = httpx.get(api(upstream, FOREIGN))
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def wait_for(condition: Any, timeout: float, interval: float = 0.05) -> Any:
    """Poll ``condition`` until it returns something truthy (returned) or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            return result
        time.sleep(interval)


# --- the upstream node ---


def test_foreign_identifier_resolves_through_the_upstream_and_is_cached(tmp_path: Path) -> None:
    upstream = new_upstream(tmp_path)
    node = new_node(tmp_path, "node", node_prefix=NODE_PREFIX)
    node.env["IDNODE_UPSTREAM_URL"] = upstream.url
    with running(upstream, node):
        at_upstream = fill_upstream(upstream)

        through = httpx.get(api(node, FOREIGN))
        assert through.status_code == 200, through.text
        assert through.json() == at_upstream
        assert through.json()["values"][0]["data"]["value"] == (
            "https://trace.example.com/upstream/x"
        )
        assert "x-idnode-stale" not in through.headers

        unknown = httpx.get(api(node, f"{ENTERPRISE}/NOPE"))
        assert_handle_error(unknown, 404, 100)
        assert unknown.json()["handle"] == f"{ENTERPRISE}/NOPE"

        upstream.stop()

        # The answer is still fresh in N's cache: served as before, not marked stale.
        cached = httpx.get(api(node, FOREIGN))
        assert cached.status_code == 200, cached.text
        assert cached.json() == at_upstream
        assert cached.headers["etag"] == through.headers["etag"]
        assert "x-idnode-stale" not in cached.headers
        # The same through the FastAPI route (a filter bypasses the lean path).
        filtered = httpx.get(api(node, FOREIGN), params={"type": "URL"})
        assert filtered.status_code == 200, filtered.text
        assert [v["index"] for v in filtered.json()["values"]] == [1]

        # An identifier N never saw, with the upstream down: 504, naming the upstream.
        never = httpx.get(api(node, f"{ENTERPRISE}/NEVER-SEEN"))
        body = assert_handle_error(never, 504, 301)
        assert upstream.url in body["message"], body


def test_expired_answer_is_served_stale_while_the_upstream_is_down(tmp_path: Path) -> None:
    upstream = new_upstream(tmp_path)
    node = new_node(
        tmp_path,
        "node",
        node_prefix=NODE_PREFIX,
        cache_max_ttl="1",
        cache_stale_ttl="3600",
        upstream_timeout="2",
    )
    node.env["IDNODE_UPSTREAM_URL"] = upstream.url
    with running(upstream, node):
        at_upstream = fill_upstream(upstream)
        first = httpx.get(api(node, FOREIGN))
        assert first.status_code == 200, first.text
        assert first.json() == at_upstream
        loaded = time.monotonic()
        upstream.stop()

        # Once the 1 s lifetime is over, the answer comes from the expired entry, marked stale.
        def stale_answer() -> httpx.Response | None:
            response = httpx.get(api(node, FOREIGN), timeout=5)
            assert response.status_code == 200, response.text
            assert response.json() == at_upstream
            return response if response.headers.get("x-idnode-stale") == "true" else None

        stale = wait_for(stale_answer, timeout=6, interval=0.1)
        assert stale, "N never served the expired answer marked X-Idnode-Stale: true"
        assert time.monotonic() - loaded >= 1
        assert stale.headers["cache-control"] == "public, max-age=0"
        # The FastAPI route (a filter) marks it stale too.
        filtered = httpx.get(api(node, FOREIGN), params={"type": "EMAIL"}, timeout=5)
        assert filtered.status_code == 200, filtered.text
        assert filtered.headers.get("x-idnode-stale") == "true"
        assert [v["index"] for v in filtered.json()["values"]] == [2]

        # Nothing stale to fall back on: 504.
        never = httpx.get(api(node, f"{ENTERPRISE}/NEVER-SEEN"), timeout=5)
        body = assert_handle_error(never, 504, 301)
        assert upstream.url in body["message"], body

        # The upstream is back (same address, same data): answers are fresh again.
        upstream.start()
        fresh = httpx.get(api(node, FOREIGN), timeout=5)
        assert fresh.status_code == 200, fresh.text
        assert fresh.json() == at_upstream
        assert "x-idnode-stale" not in fresh.headers


def test_an_upstream_that_does_not_answer_times_out_with_504(tmp_path: Path) -> None:
    # A socket that accepts connections (the kernel completes the handshake) but never answers.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        silent_url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        node = new_node(tmp_path, "node", node_prefix=NODE_PREFIX, upstream_timeout="1")
        node.env["IDNODE_UPSTREAM_URL"] = silent_url
        with running(node):
            started = time.monotonic()
            response = httpx.get(api(node, FOREIGN), timeout=10)
            elapsed = time.monotonic() - started
            body = assert_handle_error(response, 504, 301)
            assert silent_url in body["message"], body
            assert elapsed < 4, f"took {elapsed:.2f}s with IDNODE_UPSTREAM_TIMEOUT=1"


def test_without_an_upstream_a_foreign_identifier_is_not_this_nodes(tmp_path: Path) -> None:
    node = new_node(tmp_path, "node", node_prefix=NODE_PREFIX)
    with running(node):
        response = httpx.get(api(node, FOREIGN))
        body = assert_handle_error(response, 400, 301)
        assert body["handle"] == FOREIGN
        assert NODE_PREFIX in body["message"], body
        # The same through the FastAPI route with a filter, and again (nothing was cached).
        assert_handle_error(httpx.get(api(node, FOREIGN), params={"type": "URL"}), 400, 301)
        assert_handle_error(httpx.get(api(node, FOREIGN)), 400, 301)


# --- an enterprise node hosting a prefix under the node's ---


def test_a_prefix_with_hs_site_is_resolved_at_the_enterprise_node(tmp_path: Path) -> None:
    site = new_node(tmp_path, "enterprise", node_prefix=SITE_PREFIX)
    node = new_node(tmp_path, "node", node_prefix=NODE_PREFIX)
    with running(site, node):
        # E's operator writes under E's own node prefix.
        put_record(
            site,
            SITE_HANDLE,
            [
                string_value(1, "URL", "https://trace.example.com/batch/1"),
                string_value(2, "BATCH", "B-2026-1"),
            ],
        )
        at_site = httpx.get(api(site, SITE_HANDLE))
        assert at_site.status_code == 200, at_site.text

        # Before the prefix is delegated N knows nothing of it.
        assert_handle_error(httpx.get(api(node, SITE_HANDLE)), 404, 100)

        # N's operator delegates 88.999.7 to E with an HS_SITE value in 0.NA/88.999.7.
        site_value = string_value(1, "HS_SITE", site.url)
        put_record(node, f"0.NA/{SITE_PREFIX}", [site_value])

        # (N cached "not found" above for its negative TTL; a fresh identifier shows the
        # delegation without waiting for that to expire.)
        put_record(site, f"{SITE_PREFIX}/BATCH-2", [string_value(1, "URL", "https://b2.example")])
        second = httpx.get(api(node, f"{SITE_PREFIX}/BATCH-2"))
        assert second.status_code == 200, second.text
        assert second.json() == httpx.get(api(site, f"{SITE_PREFIX}/BATCH-2")).json()

        referral = httpx.get(api(node, SITE_HANDLE), params={"referral": "true"})
        assert referral.status_code == 300, referral.text
        assert referral.headers["location"] == f"{site.url}/api/handles/{SITE_HANDLE}"
        body = referral.json()
        assert body["responseCode"] == 303, body
        assert body["handle"] == SITE_HANDLE
        sites = [v for v in body["values"] if v["type"] == "HS_SITE"]
        assert len(sites) == 1, body
        assert sites[0]["index"] == 1
        assert sites[0]["data"] == {"format": "string", "value": site.url}


def test_delegated_identifier_resolved_at_the_enterprise_node_has_its_values(
    tmp_path: Path,
) -> None:
    site = new_node(tmp_path, "enterprise", node_prefix=SITE_PREFIX)
    node = new_node(tmp_path, "node", node_prefix=NODE_PREFIX)
    with running(site, node):
        put_record(
            site,
            SITE_HANDLE,
            [
                string_value(1, "URL", "https://trace.example.com/batch/1"),
                string_value(2, "BATCH", "B-2026-1", ttl=300),
            ],
        )
        at_site = httpx.get(api(site, SITE_HANDLE))
        assert at_site.status_code == 200, at_site.text
        put_record(node, f"0.NA/{SITE_PREFIX}", [string_value(1, "HS_SITE", site.url)])

        through = httpx.get(api(node, SITE_HANDLE))
        assert through.status_code == 200, through.text
        assert through.json() == at_site.json()
        assert "x-idnode-stale" not in through.headers
        # Again, now from N's cache.
        again = httpx.get(api(node, SITE_HANDLE))
        assert again.status_code == 200
        assert again.json() == at_site.json()

        # An identifier E does not have: 404 / 100 through N as well.
        assert_handle_error(httpx.get(api(node, f"{SITE_PREFIX}/NOPE")), 404, 100)

        # The referral does not ask E: it answers even while E is down.
        site.stop()
        referral = httpx.get(api(node, SITE_HANDLE), params={"referral": "true"})
        assert referral.status_code == 300, referral.text
        assert referral.json()["responseCode"] == 303
        assert referral.headers["location"] == f"{site.url}/api/handles/{SITE_HANDLE}"


# --- loops between nodes ---


def test_two_nodes_pointing_at_each_other_end_quickly_with_a_loop_error(tmp_path: Path) -> None:
    first = new_node(tmp_path, "n1", node_prefix=NODE_PREFIX, node_id="n1", upstream_timeout="2")
    second = new_node(tmp_path, "n2", node_prefix=NODE_PREFIX, node_id="n2", upstream_timeout="2")
    first.env["IDNODE_UPSTREAM_URL"] = second.url
    second.env["IDNODE_UPSTREAM_URL"] = first.url
    with running(first, second):
        started = time.monotonic()
        response = httpx.get(api(first, "86.5/X"), timeout=30)
        elapsed = time.monotonic() - started
        assert response.status_code in (502, 508), (response.status_code, response.text)
        body = response.json()
        assert body["responseCode"] == 301, body
        message = body["message"].lower()
        assert "loop" in message or "hops" in message, body
        assert elapsed < 5, f"the loop took {elapsed:.2f}s to end"

        # The other way round too, and the error is not cached as an answer.
        response = httpx.get(api(second, "86.5/X"), timeout=30)
        assert response.status_code in (502, 508), response.text
        assert response.json()["responseCode"] == 301

        # A request that already made as many hops as allowed is refused outright.
        refused = httpx.get(api(first, "86.5/Y"), headers={"X-Idnode-Hops": "8"}, timeout=30)
        body = assert_handle_error(refused, 508, 301)
        assert "hops" in body["message"].lower(), body
