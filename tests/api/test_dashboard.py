"""The operator dashboard over HTTP: login with the operator token, the session cookie, logout,
and the live stream (refused without a session)."""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx
import orjson
import pytest

from app.dashboard.sessions import COOKIE, Sessions
from app.main import create_app
from tests.api.factories import register
from tests.conftest import OPERATOR_TOKEN, asgi_client, create_enterprise, url_value


async def log_in(client: httpx.AsyncClient, token: str = OPERATOR_TOKEN) -> httpx.Response:
    return await client.post("/dashboard/login", data={"token": token})


def events(body: str) -> list[tuple[str, dict[str, Any], str | None]]:
    """(event name, data, id) of each Server-Sent Event in ``body``."""
    found = []
    for block in body.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            found.append((fields["event"], orjson.loads(fields["data"]), fields.get("id")))
    return found


async def test_without_a_session_the_dashboard_is_a_login_form(client: httpx.AsyncClient) -> None:
    page = await client.get("/dashboard")
    assert page.status_code == 200
    assert 'action="/dashboard/login"' in page.text
    assert 'type="password"' in page.text
    assert "chart-resolutions" not in page.text


async def test_a_wrong_token_shows_the_form_again_with_401(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="app.throttle")
    for token in ("not-the-token", ""):
        answer = await log_in(client, token)
        assert answer.status_code == 401
        assert 'action="/dashboard/login"' in answer.text
        assert "Wrong token" in answer.text or "Enter the operator token" in answer.text
        assert COOKIE not in answer.headers.get("set-cookie", "")
    assert "chart-resolutions" not in (await client.get("/dashboard")).text
    assert "auth.failed" in caplog.messages
    assert "not-the-token" not in caplog.text


async def test_an_enterprise_token_is_not_the_operator_token(client: httpx.AsyncClient) -> None:
    enterprise = await create_enterprise(client)
    answer = await log_in(client, enterprise["token"])
    assert answer.status_code == 401
    assert "Wrong token" in answer.text


async def test_the_operator_logs_in_with_a_safe_session_cookie(client: httpx.AsyncClient) -> None:
    answer = await log_in(client)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/dashboard"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    flags = {part.strip().lower() for part in cookie.split(";")}
    assert {"httponly", "samesite=strict", "path=/dashboard"} <= flags
    assert "secure" not in flags  # plain http here: a Secure cookie would never come back
    assert OPERATOR_TOKEN not in cookie

    page = await client.get("/dashboard")
    assert page.status_code == 200
    assert 'id="chart-resolutions"' in page.text
    assert 'id="metrics-off"' not in page.text
    assert OPERATOR_TOKEN not in page.text
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp


async def test_over_https_the_cookie_is_secure(app: Any) -> None:
    async with asgi_client(app, "https://idnode.test") as client:
        cookie = (await log_in(client)).headers["set-cookie"]
    assert "secure" in {part.strip().lower() for part in cookie.split(";")}


async def test_behind_an_https_proxy_the_cookie_is_secure(client: httpx.AsyncClient) -> None:
    answer = await client.post(
        "/dashboard/login", data={"token": OPERATOR_TOKEN}, headers={"X-Forwarded-Proto": "https"}
    )
    assert "secure" in {part.strip().lower() for part in answer.headers["set-cookie"].split(";")}


async def test_logout_ends_the_session(client: httpx.AsyncClient) -> None:
    await log_in(client)
    answer = await client.post("/dashboard/logout")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/dashboard"
    assert 'action="/dashboard/login"' in (await client.get("/dashboard")).text
    assert (await client.get("/dashboard/stream")).status_code == 401


async def test_the_stream_is_refused_without_a_valid_session(client: httpx.AsyncClient) -> None:
    answer = await client.get("/dashboard/stream")
    assert answer.status_code == 401
    assert answer.json()["error"] == "AuthenticationRequired"
    assert "www-authenticate" not in answer.headers  # no browser password prompt
    forged = Sessions("another node's secret", 3600).issue()
    client.cookies.set(COOKIE, forged, path="/dashboard")
    assert (await client.get("/dashboard/stream")).status_code == 401


async def test_a_session_expires(client: httpx.AsyncClient, app: Any) -> None:
    now = [1_000_000.0]
    sessions = Sessions("node secret", 3600, clock=lambda: now[0])
    cookie = sessions.issue()
    now[0] += 3600
    assert sessions.valid(cookie)
    now[0] += 1
    assert not sessions.valid(cookie)
    # the node's own sessions last IDNODE_DASHBOARD_SESSION_TTL
    assert app.state.dashboard.sessions.ttl == app.state.node.settings.dashboard_session_ttl


@pytest.mark.slow  # waits for several one-second snapshots
async def test_the_stream_sends_history_then_a_snapshot_each_second(
    client: httpx.AsyncClient,
) -> None:
    enterprise = await create_enterprise(client)
    handle = await register(client, enterprise, "MILK-1", [url_value("https://example.com/1")])
    for _ in range(5):
        assert (await client.get(f"/api/handles/{handle}")).status_code == 200
    await log_in(client)
    started = time.monotonic()
    answer = await client.get("/dashboard/stream")  # the node ends each stream after ~5 s
    assert time.monotonic() - started < 10
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    received = events(answer.text)
    assert received[0][0] == "history"
    assert received[0][1]["full"] is True
    snapshots = [(data, ident) for name, data, ident in received if name == "snapshot"]
    assert len(snapshots) >= 4
    latest, ident = snapshots[-1]
    assert ident == repr(latest["t"])
    assert latest["resolutions_total"] >= 5
    assert latest["registrations_total"] >= 1
    for field in (
        "resolutions_per_s",
        "registrations_by_channel",
        "cache_hit_ratio",
        "latency_p50_ms",
        "latency_p99_ms",
        "devices_online",
        "devices_offline",
        "enterprises",
        "identifiers",
        "top_enterprises",
        "upstream",
        "recent_errors",
    ):
        assert field in latest, field

    # Reconnecting with the last id gets only what was missed since.
    again = await client.get("/dashboard/stream", headers={"Last-Event-ID": ident or ""})
    history = events(again.text)[0][1]
    assert history["full"] is False
    assert all(point["t"] > latest["t"] for point in history["points"])


async def test_recent_errors_show_warnings_logged_by_the_node(
    client: httpx.AsyncClient, app: Any
) -> None:
    logging.getLogger("app.test").warning("disk nearly full on %s", "/var/lib/idnode")
    logging.getLogger("app.test").info("not shown: below WARNING")
    entries = app.state.dashboard.errors.entries()
    assert entries[0]["level"] == "WARNING"
    assert entries[0]["message"] == "disk nearly full on /var/lib/idnode"
    assert all("not shown" not in entry["message"] for entry in entries)


async def test_the_page_assets_are_served_by_the_node(client: httpx.AsyncClient) -> None:
    for path, kind in (
        ("/static/dashboard.js", "javascript"),
        ("/static/dashboard.css", "text/css"),
        ("/static/vendor/uplot/uPlot.iife.min.js", "javascript"),
        ("/static/vendor/uplot/uPlot.min.css", "text/css"),
    ):
        answer = await client.get(path)
        assert answer.status_code == 200, path
        assert kind in answer.headers["content-type"], path


async def test_the_page_says_when_counting_is_off(settings: Any) -> None:
    off = create_app(settings.model_copy(update={"metrics": False}))
    async with off.router.lifespan_context(off), asgi_client(off) as client:
        await log_in(client)
        page = await client.get("/dashboard")
    assert 'id="metrics-off"' in page.text
