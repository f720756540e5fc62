"""``idnode serve`` as deployed: metrics added up over worker processes, and its log output."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import OPERATOR, OPERATOR_TOKEN, LiveNode, free_port

pytestmark = pytest.mark.slow


def node_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    env = {
        **os.environ,
        "IDNODE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'node.db'}",
        "IDNODE_ADMIN_TOKEN": OPERATOR_TOKEN,
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env | {f"IDNODE_{k.upper()}": v for k, v in settings.items()}


def counter(url: str, name: str, **labels: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


def test_two_workers_report_the_total_of_both(tmp_path: Path) -> None:
    # Statistics samples every second: a commit that changes no record must leave the
    # workers' caches as they are (SQLite's watchers follow record changes only).
    node = LiveNode(node_env(tmp_path, report_stats_flush="1"), tmp_path)
    node.start("--workers", "2", "--no-broker")
    try:
        created = httpx.post(
            f"{node.url}/api/v1/enterprises", json={"name": "Workers"}, headers=OPERATOR
        ).json()
        handle = f"{created['prefix']}/P-1"
        put = httpx.put(
            f"{node.url}/api/handles/{handle}",
            json={"values": [{"index": 1, "type": "URL", "data": "https://example.com/"}]},
            headers={"Authorization": f"Bearer {created['token']}"},
        )
        assert put.status_code == 201, put.text
        before = sum(
            counter(node.url, "idnode_resolutions_total", outcome=o) for o in ("hit", "miss")
        )
        requests = 400
        # New connections each time, so both workers take a share.
        for _ in range(requests):
            assert httpx.get(f"{node.url}/api/handles/{handle}").status_code == 200

        def total() -> float:
            return sum(
                counter(node.url, "idnode_resolutions_total", outcome=o) for o in ("hit", "miss")
            )

        deadline = time.monotonic() + 10
        while total() - before < requests and time.monotonic() < deadline:
            time.sleep(0.3)
        assert total() - before == requests
        # Both processes answered: each holds the record in its own cache.
        assert counter(node.url, "idnode_cache_entries") >= 2
    finally:
        node.stop()


def log_lines(node: LiveNode) -> list[dict[str, Any]]:
    lines = [line for line in node.log.read_text().splitlines() if line.startswith("{")]
    return [json.loads(line) for line in lines]


def test_logs_are_json_with_request_ids_and_no_secrets(tmp_path: Path) -> None:
    broker_password = "broker-pw-" + os.urandom(4).hex()
    bearer_secret = "tok-" + os.urandom(8).hex()
    basic_secret = "pw-" + os.urandom(8).hex()
    dead_broker = f"mqtt://gateway:{broker_password}@127.0.0.1:{free_port()}"
    node = LiveNode(node_env(tmp_path, mqtt_url=dead_broker), tmp_path)
    node.start()
    try:
        wrong_bearer = httpx.get(
            f"{node.url}/api/v1/enterprises",
            headers={"Authorization": f"Bearer {bearer_secret}", "X-Request-ID": "probe-42"},
        )
        basic = base64.b64encode(f"300:88.999.1/ADMIN:{basic_secret}".encode()).decode()
        wrong_basic = httpx.put(
            f"{node.url}/api/handles/88.999.1/X",
            json={"values": []},
            headers={"Authorization": f"Basic {basic}", "X-Request-ID": "bad id with spaces"},
        )
        hit = httpx.get(f"{node.url}/api/handles/0.NA/88.999", headers={"X-Request-ID": "r-7"})
        ready = httpx.get(f"{node.url}/readyz")
        time.sleep(1.5)  # a reconnection attempt to the broker gets logged meanwhile
    finally:
        node.stop()

    assert wrong_bearer.status_code == 401
    assert wrong_bearer.headers["x-request-id"] == "probe-42"
    generated = wrong_basic.headers["x-request-id"]
    assert wrong_basic.status_code == 401
    assert generated != "bad id with spaces"
    assert " " not in generated
    assert hit.headers["x-request-id"] == "r-7"  # the lean path echoes it too
    assert ready.status_code == 503
    assert "broker" in ready.json()["reasons"][0]

    output = node.log.read_text()
    for secret in (bearer_secret, basic_secret, basic, broker_password):
        assert secret not in output
    lines = log_lines(node)
    failures = [line for line in lines if line["event"] == "auth.failed"]
    # One line per burst of failures from an address (the first of them), per process.
    assert "probe-42" in {line["request_id"] for line in failures}
    assert {line["request_id"] for line in failures} <= {"probe-42", generated}
    assert all(line["level"] == "info" and "time" in line for line in failures)
    assert any(line["event"] == "gateways.mqtt.reconnecting" for line in lines)
    # No access log: the resolve left no line of its own.
    assert not [line for line in lines if line.get("request_id") == "r-7"]
    assert "0.NA/88.999" not in output
