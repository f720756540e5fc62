"""Two nodes over the Handle protocol: ``IDNODE_UPSTREAM_URL=hdl://host:port`` resolves what
this node does not hold at the upstream node, natively, for native and HTTP clients alike."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.cli import migrate_database
from app.settings import Settings
from tests.conftest import OPERATOR, OPERATOR_TOKEN, free_port, url_value
from tests.gateways.handle_node import HOST, native_node


@pytest.fixture
def top_level(tmp_path: Path) -> Settings:
    """The upstream node: prefix 88.100, on its own SQLite database (migrated here: Alembic
    runs its own event loop)."""
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'top.db'}",
        admin_token=OPERATOR_TOKEN,
        node_prefix="88.100",
    )
    migrate_database(settings)
    return settings


async def test_a_node_resolves_foreign_prefixes_through_a_native_upstream(
    settings: Settings, top_level: Settings
) -> None:
    async with native_node(top_level) as top:
        made = await top.http.post("/api/v1/enterprises", json={"name": "Far"}, headers=OPERATOR)
        far = made.json()
        handle = f"{far['prefix']}/FAR-1"
        put = await top.http.put(
            f"/api/handles/{handle}",
            json=[
                url_value("https://far.example.com"),
                {"index": 4, "type": "C", "data": "x", "permissions": "1100"},
            ],
            headers={"Authorization": f"Bearer {far['token']}"},
        )
        assert put.status_code == 201, put.text
        upstream = f"hdl://{HOST}:{top.port}"
        async with native_node(settings, upstream_url=upstream) as node:
            async with node.connection() as client:
                answer = await client.resolve(handle)
                assert answer.code == 1, answer.error
                values = {v["index"]: v["data"]["value"] for v in answer.values()[1]}
                assert values[1] == "https://far.example.com"
                assert 4 not in values  # restricted at the upstream: never sent
                missing = await client.resolve(f"{far['prefix']}/NOPE")
                assert missing.code == 100
            over_http = await node.http.get(f"/api/handles/{handle}")
            assert over_http.status_code == 200
            assert over_http.json()["values"][0]["data"]["value"] == "https://far.example.com"


async def test_nodes_pointing_at_each_other_give_up_instead_of_going_round(
    settings: Settings, top_level: Settings
) -> None:
    port = free_port()
    top_settings = top_level.model_copy(
        update={"upstream_url": f"hdl://{HOST}:{port}", "max_hops": 4}
    )
    async with (
        native_node(top_settings) as top,
        native_node(
            settings, upstream_url=f"hdl://{HOST}:{top.port}", handle_port=port, max_hops=4
        ) as node,
        node.connection() as client,
    ):
        answer = await client.resolve("86.1/ANYWHERE")
    assert answer.code == 2
    assert "hops" in answer.error


async def test_a_prefix_delegated_to_a_native_node_resolves_through_it(
    settings: Settings, top_level: Settings
) -> None:
    enterprise_node = top_level.model_copy(update={"node_prefix": "88.999.7"})
    async with native_node(enterprise_node) as far:
        put = await far.http.put(
            "/api/handles/88.999.7/MILK-1",
            json=[url_value("https://dairy.example.com/m/1")],
            headers=OPERATOR,
        )
        assert put.status_code == 201, put.text
        async with native_node(settings) as node:
            site = [{"index": 1, "type": "HS_SITE", "data": f"hdl://{HOST}:{far.port}"}]
            delegated = await node.http.put(
                "/api/handles/0.NA/88.999.7", json=site, headers=OPERATOR
            )
            assert delegated.status_code == 201, delegated.text
            async with node.connection() as client:
                answer = await client.resolve("88.999.7/MILK-1")
    assert answer.code == 1, answer.error
    assert answer.values()[1][0]["data"]["value"] == "https://dairy.example.com/m/1"
