"""Failed authentication is throttled per client address and per credential, on every door."""

from __future__ import annotations

import base64
import logging
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from app.commands.serve import announce_operator_token
from app.errors import TooManyAttempts
from app.main import create_app
from app.settings import Settings
from app.throttle import AttemptLimiter
from tests.conftest import OPERATOR, _empty_tables, create_enterprise

LIMIT = 3


@pytest.fixture
async def node(settings: Settings) -> AsyncIterator[Any]:
    await _empty_tables(settings.database_url)
    limits = {"auth_failures_per_address": LIMIT, "auth_failures_per_credential": LIMIT}
    application = create_app(settings.model_copy(update=limits))
    async with application.router.lifespan_context(application):
        yield application


def client_from(app: Any, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://idnode.test")


async def test_an_address_that_keeps_failing_is_refused_429_then_even_with_the_right_token(
    node: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="app.throttle")
    async with client_from(node, "192.0.2.10") as guesser, client_from(node, "192.0.2.11") as other:
        for _ in range(LIMIT):
            wrong = {"Authorization": f"Bearer {secrets.token_urlsafe(16)}"}
            assert (await guesser.get("/api/v1/enterprises", headers=wrong)).status_code == 401
        for headers in ({"Authorization": "Bearer guess"}, OPERATOR):
            refused = await guesser.get("/api/v1/enterprises", headers=headers)
            assert refused.status_code == 429
            assert refused.headers["Retry-After"] == "60"
            assert refused.json()["error"] == "TooManyAttempts"
        # The Handle API says so in its own shape.
        handle = await guesser.get("/api/handles/88.999.1/X", headers=OPERATOR)
        assert handle.status_code == 429
        assert handle.json()["responseCode"] == 3
        # Anonymous reads are not authentication; another address is not throttled.
        assert (await guesser.get("/api/handles/88.999.1/X")).status_code == 404
        assert (await other.get("/api/v1/enterprises", headers=OPERATOR)).status_code == 200
    # One line when the burst began, one when it was throttled: not one per attempt.
    events = [r.getMessage() for r in caplog.records if r.name == "app.throttle"]
    assert events == ["auth.failed", "auth.throttled"]


async def test_a_credential_guessed_from_many_addresses_is_refused(node: Any) -> None:
    async with client_from(node, "192.0.2.1") as setup:
        plant = await create_enterprise(setup, "Guessed Plant")
    user = f"300:{plant['prefix']}/ADMIN"

    def basic(secret: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}

    url = f"/api/handles/{plant['prefix']}/X"
    for n in range(LIMIT):
        async with client_from(node, f"198.51.100.{n}") as guesser:
            put = await guesser.put(url, json={"values": []}, headers=basic(f"guess-{n}"))
            assert put.status_code == 401
    async with client_from(node, "198.51.100.200") as late:
        refused = await late.put(url, json={"values": []}, headers=basic(plant["secret"]))
        assert refused.status_code == 429
        # Other enterprises' credentials are not affected.
        other = await late.get("/api/v1/enterprises", headers=OPERATOR)
        assert other.status_code == 200


async def test_the_dashboard_login_is_throttled(node: Any) -> None:
    async with client_from(node, "192.0.2.20") as browser:
        for _ in range(LIMIT):
            wrong = await browser.post("/dashboard/login", data={"token": secrets.token_hex(8)})
            assert wrong.status_code == 401
        right = OPERATOR["Authorization"].removeprefix("Bearer ")
        refused = await browser.post("/dashboard/login", data={"token": right})
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "60"
        assert 'action="/dashboard/login"' in refused.text


def test_memory_stays_bounded_under_a_flood_of_addresses_and_credentials() -> None:
    limiter = AttemptLimiter(per_address=5, per_credential=5, max_keys=100)
    for n in range(5_000):
        limiter.failed("http", address=f"10.{n // 256}.{n % 256}.1", credential=f"c{n}", reason="")
    assert limiter.remembered <= 200
    # The newest addresses are still counted.
    for _ in range(4):
        limiter.failed("http", address="10.0.0.99", credential=None, reason="")
    limiter.check("http", address="10.0.0.99", credential=None)
    limiter.failed("http", address="10.0.0.99", credential=None, reason="")
    with pytest.raises(TooManyAttempts, match="too many failed attempts"):
        limiter.check("http", address="10.0.0.99", credential=None)


def test_a_short_operator_token_is_warned_about(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    announce_operator_token(settings.model_copy(update={"admin_token": SecretStr("hunter2")}))
    warned = capsys.readouterr().err
    assert "WARNING: IDNODE_ADMIN_TOKEN has only 7 characters" in warned
    assert "at least 32" in warned
    announce_operator_token(settings.model_copy(update={"admin_token": SecretStr("x" * 40)}))
    assert "WARNING" not in capsys.readouterr().err
