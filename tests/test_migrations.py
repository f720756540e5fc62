"""Migrating a node that already holds identifiers: they get a history and indexed references."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from alembic import command
from alembic.config import Config
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

import migrations
from app.registry.identifiers import record_at
from app.settings import Settings
from app.storage import history as history_repo
from app.storage.models import HandleRow, NbiotPlatform, SnmsUser
from gateways.nbiot.onenet import signature
from tests.conftest import (
    OPERATOR_TOKEN,
    bearer,
    create_enterprise,
    create_provisioning_key,
    empty_database,
    node_client,
)
from tests.gateways.conftest import configure_nbiot

CREATED = datetime(2026, 1, 1, tzinfo=UTC)
UPDATED = datetime(2026, 2, 1, tzinfo=UTC)
UNIT = "88.999.1/UNIT-1"
CASE = "88.999.1/CASE-1"
VALUES = [
    {
        "index": 1,
        "type": "PARENT",
        "data": {"format": "string", "value": "case"},
        "ttl": 86400,
        "timestamp": "2026-02-01T00:00:00Z",
        "references": [{"handle": CASE, "index": 1}],
    }
]


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    config.attributes["database_url"] = url
    config.attributes["configure_logger"] = False
    return config


async def _seed(url: str) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.execute(
            insert(HandleRow).values(
                handle=UNIT,
                prefix="88.999.1",
                values=VALUES,
                created_at=CREATED,
                updated_at=UPDATED,
            )
        )
    await engine.dispose()


async def _inspect(url: str) -> tuple[list[tuple[str, int, str, str]], object, object, object]:
    engine = create_async_engine(url)
    async with engine.connect() as conn, AsyncSession(conn) as session:
        entries = [
            (e.handle, e.version, e.operation, e.actor)
            for e in await history_repo.entries(session, UNIT)
        ]
        referrers = await history_repo.referrers(session, [CASE])
        then = await record_at(session, UNIT, UPDATED + timedelta(seconds=1))
        before = await record_at(session, UNIT, UPDATED - timedelta(seconds=1))
    await engine.dispose()
    return entries, referrers, then, before


def test_identifiers_that_exist_get_history_and_references(backend: str, tmp_path: Path) -> None:
    with empty_database(backend, tmp_path / "old.db", "migration") as url:
        config = alembic_config(url)
        command.upgrade(config, "0001")
        asyncio.run(_seed(url))
        command.upgrade(config, "head")
        entries, referrers, then, before = asyncio.run(_inspect(url))
        assert entries == [(UNIT, 1, "create", "migration")]
        assert referrers == [(UNIT, CASE)]
        assert then is not None
        assert then.values[0].references[0].handle == CASE
        assert before is None  # history starts at the last change it knew of
        command.downgrade(config, "base")
        command.upgrade(config, "head")


async def _platform_tokens(url: str) -> list[str | None]:
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        tokens = list((await conn.execute(select(NbiotPlatform.token))).scalars())
    await engine.dispose()
    return tokens


@asynccontextmanager
async def _node_client(url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a node on the database at ``url`` (started in-process)."""
    async with node_client(Settings(database_url=url, admin_token=OPERATOR_TOKEN)) as http:
        yield http


async def _configure_onenet(url: str, token: str) -> dict[str, Any]:
    async with _node_client(url) as http:
        plant = await create_enterprise(http, "Sealed Plant")
        key = await create_provisioning_key(http, plant, "nb")
        await configure_nbiot(http, {**plant, "key": key["key"]}, "onenet", token)
    return plant


async def _onenet_check(url: str, prefix: str, token: str) -> int:
    """The answer to a OneNET URL check signed with ``token``."""
    async with _node_client(url) as http:
        query = {"msg": "hello", "nonce": "abc", "signature": signature(token, "abc", "hello")}
        answer = await http.get(f"/api/v1/ingest/onenet/{prefix}", params=query)
    return answer.status_code


def test_platform_tokens_are_sealed_at_rest_and_the_migration_reverses(
    backend: str, tmp_path: Path
) -> None:
    token = "onenet-push-token-" + secrets.token_hex(4)
    with empty_database(backend, tmp_path / "sealed.db", "migration") as url:
        config = alembic_config(url)
        command.upgrade(config, "head")
        plant = asyncio.run(_configure_onenet(url, token))
        [stored] = asyncio.run(_platform_tokens(url))
        assert stored is not None
        assert token not in stored
        assert stored.startswith("v1.")
        assert asyncio.run(_onenet_check(url, plant["prefix"], token)) == 200

        command.downgrade(config, "0007")  # plain text again, as 0007 kept it
        assert asyncio.run(_platform_tokens(url)) == [token]
        command.upgrade(config, "head")  # existing plain tokens are sealed
        [resealed] = asyncio.run(_platform_tokens(url))
        assert resealed is not None
        assert token not in resealed
        assert asyncio.run(_onenet_check(url, plant["prefix"], token)) == 200
        assert asyncio.run(_onenet_check(url, plant["prefix"], "wrong")) == 403


SNMS_PASSWORD = "a long SNMS password"


async def _snms_digests(url: str) -> list[str]:
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        digests = list((await conn.execute(select(SnmsUser.password_sha256))).scalars())
    await engine.dispose()
    return digests


async def _make_snms_user(url: str, username: str) -> None:
    async with _node_client(url) as http:
        plant = await create_enterprise(http, "Sealed Dairy")
        made = await http.post(
            f"/api/v1/enterprises/{plant['prefix']}/users",
            json={"username": username, "password": SNMS_PASSWORD},
            headers=bearer(plant),
        )
        assert made.status_code == 201, made.text


async def _hashed_login(url: str, username: str, password: str) -> int:
    """The SNMS status of a /identity/token/v1 login with ``password``, hashed as clients do."""
    day = (datetime.now(UTC) + timedelta(hours=8)).strftime("%Y-%m-%d")  # China's date
    sent = hashlib.sha256((_sha256hex(password) + day).encode()).hexdigest()
    async with _node_client(url) as http:
        answer = await http.post(
            "/identity/token/v1", json={"username": username, "password": sent}
        )
    return int(answer.json()["status"])


def _sha256hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_snms_password_digests_are_sealed_at_rest_and_the_migration_reverses(
    backend: str, tmp_path: Path
) -> None:
    """The SHA-256 the hashed SNMS login needs logs a user in as well as the password does:
    stored sealed with the node key, opened again by the downgrade, sealed by the upgrade."""
    with empty_database(backend, tmp_path / "sealed-snms.db", "migration") as url:
        config = alembic_config(url)
        command.upgrade(config, "head")
        asyncio.run(_make_snms_user(url, "sealed-mes"))
        [stored] = asyncio.run(_snms_digests(url))
        assert stored.startswith("v1.")
        assert _sha256hex(SNMS_PASSWORD) not in stored
        assert asyncio.run(_hashed_login(url, "sealed-mes", SNMS_PASSWORD)) == 1

        command.downgrade(config, "0011")  # plain hex again, as 0011 kept it
        assert asyncio.run(_snms_digests(url)) == [_sha256hex(SNMS_PASSWORD)]
        command.upgrade(config, "head")  # existing digests are sealed
        [resealed] = asyncio.run(_snms_digests(url))
        assert resealed.startswith("v1.")
        assert resealed != stored  # a fresh nonce
        assert asyncio.run(_hashed_login(url, "sealed-mes", SNMS_PASSWORD)) == 1
        assert asyncio.run(_hashed_login(url, "sealed-mes", "not the password")) == -2
