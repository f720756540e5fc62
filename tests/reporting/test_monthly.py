"""``idnode report monthly``: figures for the month asked, nothing from the months around it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.registry import clock
from app.reporting.monthly import as_text, monthly_report
from app.settings import Settings
from app.storage import statistics as repo
from tests.conftest import OPERATOR, LiveNode, bearer, create_enterprise, url_value

IDNODE = Path(sys.executable).with_name("idnode")


def idnode(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDNODE_")}
    env["IDNODE_DATABASE_URL"] = settings.database_url
    return subprocess.run(  # bounded by the timeout
        [str(IDNODE), "report", "monthly", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def at(moment: datetime, monkeypatch: pytest.MonkeyPatch) -> None:
    """Everything the node writes from now on happens at ``moment``."""
    monkeypatch.setattr(clock, "now", lambda: moment)


async def put(client: httpx.AsyncClient, enterprise: dict[str, Any], suffix: str) -> None:
    answer = await client.put(
        f"/api/handles/{enterprise['prefix']}/{suffix}",
        json={"values": [url_value(f"https://example.com/{suffix}")]},
        headers=bearer(enterprise),
    )
    assert answer.status_code in {200, 201}, answer.text


@pytest.mark.slow  # runs idnode in a subprocess
async def test_a_month_counts_only_its_own_changes(
    app: Any, client: httpx.AsyncClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    at(datetime(2026, 2, 20, tzinfo=UTC), monkeypatch)  # before the month
    old = await create_enterprise(client, "Old Mill")
    await put(client, old, "FEB-1")
    await put(client, old, "FEB-2")

    at(datetime(2026, 3, 10, tzinfo=UTC), monkeypatch)  # in the month
    dairy = await create_enterprise(client, "Yili Dairy")
    for i in range(3):
        await put(client, dairy, f"MAR-{i}")
    await put(client, old, "MAR-OLD")
    answer = await client.delete(f"/api/handles/{old['prefix']}/FEB-1", headers=bearer(old))
    assert answer.status_code == 200

    at(datetime(2026, 4, 2, tzinfo=UTC), monkeypatch)  # after the month
    await put(client, dairy, "APR-1")
    await create_enterprise(client, "Late Farm")

    database = app.state.node.database
    async with database.write_session() as session:
        for start, end, resolutions, errors in (
            ((2026, 2, 28, 23), (2026, 3, 1, 1), 50, 9),  # ends in March: counted in March
            ((2026, 3, 1, 0), (2026, 3, 16, 12), 1000, 2),  # half the month (30 days + 12 h)
            ((2026, 3, 31, 23), (2026, 4, 1, 1), 7, 1),  # ends in April: not March's
        ):
            await repo.add_sample(
                session,
                process="p1",
                started_at=datetime(*start, tzinfo=UTC),
                ended_at=datetime(*end, tzinfo=UTC),
                resolutions=resolutions,
                errors=errors,
            )
        await session.commit()

    done = idnode(settings, "--month", "2026-03", "--format", "json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["month"] == "2026-03"
    assert report["enterprises"] == {"new": 1, "total": 2}
    assert report["prefixes"] == {"new": 1, "total": 2}
    ids = report["identifiers"]
    # 3 + 1 registrations and the dairy's admin identity; one deletion
    assert (ids["registered"], ids["updated"], ids["deleted"]) == (5, 0, 1)
    assert ids["heldAtEnd"] == 3 + 5 - 1  # February's 3 (2 + admin) + March's 5 - 1
    assert ids["topEnterprises"] == [
        {"prefix": dairy["prefix"], "enterprise": "Yili Dairy", "registered": 4,
         "updated": 0, "deleted": 0},
        {"prefix": old["prefix"], "enterprise": "Old Mill", "registered": 1,
         "updated": 0, "deleted": 1},
    ]  # fmt: skip
    assert (report["resolutions"], report["errors"]) == (1050, 11)
    # Covered: March 1 00:00 to March 16 12:00 (the first two overlap), and March 31 23:00
    # to midnight (samples are clipped to the month).
    covered_hours = (15 * 24 + 12) + 1
    assert report["availabilityPercent"] == pytest.approx(
        100 * covered_hours / (31 * 24), abs=0.001
    )
    assert report["outbox"]["pending"] > 0
    assert report["outbox"]["delivered"] == 0

    text = idnode(settings, "--month", "2026-03")
    assert text.returncode == 0, text.stderr
    assert "2026-03" in text.stdout
    assert "Yili Dairy" in text.stdout
    assert "5 registered, 0 updated, 1 deleted" in text.stdout


@pytest.mark.slow  # runs idnode in a subprocess
@pytest.mark.parametrize("month", ["2026-13", "2026-3", "March", "2026-00", ""])
def test_a_bad_month_is_refused_with_exit_2(
    month: str, database_urls: dict[str, str], tmp_path: Path
) -> None:
    settings = Settings(database_url=database_urls["sqlite"])
    done = idnode(settings, "--month", month)
    assert done.returncode == 2
    assert "YYYY-MM" in done.stderr


@pytest.mark.slow  # runs idnode in a subprocess
async def test_the_report_goes_to_a_file(app: Any, settings: Settings, tmp_path: Path) -> None:
    target = tmp_path / "2026-03.json"
    done = idnode(settings, "--month", "2026-03", "--format", "json", "--output", str(target))
    assert done.returncode == 0, done.stderr
    assert json.loads(target.read_text())["month"] == "2026-03"


async def test_availability_counts_from_when_the_node_first_served(
    app: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node first started on the 10th and asked on the same day is not blamed for the
    nine days before it existed; one that wrote no sample yet says so instead of 0 %."""
    database = app.state.node.database
    at(datetime(2026, 3, 10, 12, 30, tzinfo=UTC), monkeypatch)
    async with database.read_session() as session:
        unsampled = await monthly_report(session, "2026-03")
    assert unsampled["availabilityPercent"] is None
    assert "not measured yet" in as_text({**unsampled, "node": "88.999"})

    async with database.write_session() as session:
        await repo.add_sample(
            session,
            process="p1",
            started_at=datetime(2026, 3, 10, 12, 0, tzinfo=UTC),
            ended_at=datetime(2026, 3, 10, 12, 20, tzinfo=UTC),
            resolutions=40,
            errors=0,
        )
        await session.commit()
    async with database.read_session() as session:
        report = await monthly_report(session, "2026-03")
    assert report["availabilityPercent"] == pytest.approx(100 * 20 / 30, abs=0.001)
    assert report["measuredFrom"] == "2026-03-10T12:00:00+00:00"
    assert report["resolutions"] == 40
    text = as_text({**report, "node": "88.999"})
    assert "66.667 %" in text
    assert "up to the last statistics sample, 2026-03-10T12:20:00+00:00" in text


@pytest.mark.slow
def test_a_running_node_reports_what_it_has_served_so_far(live_node: LiveNode) -> None:
    """Resolutions reach the report within seconds (IDNODE_REPORT_STATS_FLUSH), not at the
    end of the hourly statistics window, and without stopping the node."""
    with httpx.Client(base_url=live_node.url, timeout=10) as client:
        created = client.post("/api/v1/enterprises", json={"name": "Dairy"}, headers=OPERATOR)
        assert created.status_code == 201, created.text
        dairy = created.json()
        handle = f"{dairy['prefix']}/MILK-1"
        put = client.put(
            f"/api/handles/{handle}",
            json={"values": [url_value("https://example.com/milk")]},
            headers=bearer(dairy),
        )
        assert put.status_code == 201, put.text
        for _ in range(7):
            assert client.get(f"/api/handles/{handle}").status_code == 200
    settings = Settings(database_url=live_node.env["IDNODE_DATABASE_URL"])
    month = f"{datetime.now(UTC):%Y-%m}"
    deadline = time.monotonic() + 30
    while True:
        done = idnode(settings, "--month", month, "--format", "json")
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        if report["resolutions"] == 7 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert report["resolutions"] == 7
    assert report["identifiers"]["registered"] >= 1
    assert report["availabilityPercent"] is not None
    assert live_node.process is not None
    assert live_node.process.poll() is None  # still serving
