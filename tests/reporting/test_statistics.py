"""Statistics reports: each interval the node sends one ``statistics`` event summing what every
process saw (registrations, resolutions, errors, availability); one process delivers."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.main import create_app
from app.settings import Settings
from tests.api.factories import register
from tests.conftest import bearer, create_enterprise, free_port, url_value
from tests.reporting.conftest import reporting_to
from tests.reporting.recorder import Recorder, eventually


@pytest.fixture
def settings(settings: Settings, recorder: Recorder) -> Settings:
    # An upstream that is down: resolving outside the node's prefix answers 504.
    return reporting_to(
        recorder,
        settings,
        report_stats_interval=1.0,
        upstream_url=f"http://127.0.0.1:{free_port()}",
        upstream_timeout=0.5,
    )


def statistics(recorder: Recorder) -> list[dict[str, Any]]:
    return [e["data"] for e in recorder.accepted() if e["kind"] == "statistics"]


async def test_each_interval_reports_what_the_node_did(
    app: Any, client: httpx.AsyncClient, recorder: Recorder
) -> None:
    recorder.public_pem = (await client.get("/api/v1/node/key")).text
    await eventually(lambda: len(statistics(recorder)) >= 1, what="a first statistics event")
    baseline = len(statistics(recorder))

    dairy = await create_enterprise(client)  # its admin identity is one registration
    for suffix in ("A", "B"):
        await register(client, dairy, suffix, [url_value("https://example.com")])
    for _ in range(5):
        assert (await client.get(f"/api/handles/{dairy['prefix']}/A")).status_code == 200
    assert (await client.get("/api/handles/77.1/ELSEWHERE")).status_code == 504

    def totals() -> tuple[int, int, int]:
        later = statistics(recorder)[baseline:]
        return (
            sum(s["registrations"] for s in later),
            sum(s["resolutions"] for s in later),
            sum(s["errors"] for s in later),
        )

    await eventually(lambda: totals() == (3, 6, 1), what=f"the counts (now {totals()})")
    reports = statistics(recorder)
    windows = [(s["start"], s["end"]) for s in reports]
    assert len(windows) == len(set(windows))  # one event per interval
    assert [w[0] for w in windows[1:]] == [w[1] for w in windows[:-1]]  # back to back
    assert max(s["availability"] for s in reports) >= 0.99  # a process was up throughout


async def test_one_process_delivers_while_several_run(
    app: Any, client: httpx.AsyncClient, recorder: Recorder, settings: Settings
) -> None:
    recorder.public_pem = (await client.get("/api/v1/node/key")).text
    second = create_app(settings)  # another node process on the same database
    async with second.router.lifespan_context(second):
        dairy = await create_enterprise(client)
        for i in range(12):
            await client.put(
                f"/api/handles/{dairy['prefix']}/X{i}",
                json={"values": [url_value("https://example.com")]},
                headers=bearer(dairy),
            )
        await eventually(
            lambda: sum(e["data"].get("handle", "").startswith(dairy["prefix"] + "/X")
                        for e in recorder.accepted()) == 12,
            what="the registrations",
        )  # fmt: skip
        ids = [e["id"] for e in recorder.events]
        assert len(ids) == len(set(ids))
        delivered = sorted(
            (app.state.reporting.reporter.delivered, second.state.reporting.reporter.delivered)
        )
        assert delivered[0] == 0 < delivered[1]
