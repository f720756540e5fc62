"""The dashboard in a real headless browser (Debian chromium driven by playwright): log in,
see the charts draw, load the node, see the numbers move, log out. Screenshots (laptop and
phone) are saved in test-artifacts/.

One backend (SQLite) is enough: the dashboard reads the metrics, not the database.
`make check` installs chromium when it is missing (as root); elsewhere the test is skipped
with that hint, and in CI (CI=true) a missing chromium fails it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import OPERATOR, OPERATOR_TOKEN, LiveNode, running_node, url_value

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
RESOLVES, REGISTRATIONS = 300, 20


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        hint = "chromium is not installed: `apt-get install chromium` (make check does it as root)"
        if os.environ.get("CI") == "true":
            pytest.fail(hint)
        pytest.skip(hint)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def node(tmp_path: Path) -> Iterator[LiveNode]:
    database = f"sqlite+aiosqlite:///{tmp_path / 'dashboard.db'}"
    # census_interval: identifier counts within a second, not 15
    with running_node(tmp_path, database, "--no-broker", census_interval="1") as live:
        yield live


def shown(page: Any, element: str) -> float:
    """The number an element of the page shows (``–`` before the first figures: NaN)."""
    text = page.locator(f"#{element}").inner_text().replace(",", "").strip()
    try:
        return float(text)
    except ValueError:
        return float("nan")


def eventually(check: Callable[[], bool], what: str, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"not within {seconds}s: {what}")


def log_in(page: Any, url: str, token: str) -> Any:
    page.goto(f"{url}/dashboard")
    page.fill("#token", token)
    with page.expect_navigation():
        page.click("button[type=submit]")
    return page


def wait_for_charts(page: Any) -> None:
    page.wait_for_selector("#stream-status.live")
    for chart in ("chart-resolutions", "chart-registrations"):
        canvas = page.locator(f"#{chart} canvas")
        canvas.wait_for()
        box = canvas.bounding_box()
        assert box is not None
        assert box["width"] > 100
        assert box["height"] > 100


def put_load(url: str, watch: Callable[[], None]) -> None:
    """An enterprise, REGISTRATIONS identifiers, then RESOLVES resolves over ~3 s."""
    with httpx.Client(base_url=url, timeout=10) as http:
        enterprise = http.post("/api/v1/enterprises", json={"name": "Load"}, headers=OPERATOR)
        assert enterprise.status_code == 201
        headers = {"Authorization": f"Bearer {enterprise.json()['token']}"}
        handles = [f"{enterprise.json()['prefix']}/ITEM-{i}" for i in range(REGISTRATIONS)]
        for handle in handles:
            body = {"values": [url_value(f"https://example.com/{handle}")]}
            assert http.put(f"/api/handles/{handle}", json=body, headers=headers).is_success
        for round_ in range(6):
            for i in range(RESOLVES // 6):
                handle = handles[(round_ * 50 + i) % REGISTRATIONS]
                assert http.get(f"/api/handles/{handle}").status_code == 200
            watch()
            time.sleep(0.5)


def test_the_operator_watches_live_numbers(
    browser: Any, node: LiveNode, capsys: pytest.CaptureFixture[str]
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    problems: list[str] = []  # CSP violations and script errors show up here
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))

    log_in(page, node.url, "not-the-operator-token")
    assert page.locator("#login-error").inner_text().startswith("Wrong token")
    problems.clear()  # the browser reports the 401 of the refused login itself
    log_in(page, node.url, OPERATOR_TOKEN)
    wait_for_charts(page)
    eventually(lambda: shown(page, "resolutions-total") >= 0, "first figures shown")
    resolved, registered = shown(page, "resolutions-total"), shown(page, "registrations-total")
    identifiers, enterprises = shown(page, "identifiers"), shown(page, "enterprises")

    rates: list[float] = []
    put_load(node.url, lambda: rates.append(shown(page, "resolutions-rate")))
    eventually(
        lambda: shown(page, "resolutions-total") == resolved + RESOLVES,
        f"resolutions total {resolved} + {RESOLVES}",
    )
    assert shown(page, "registrations-total") == registered + REGISTRATIONS
    # the new enterprise's <prefix>/ADMIN record counts as an identifier too
    eventually(
        lambda: shown(page, "identifiers") == identifiers + REGISTRATIONS + 1,
        f"identifiers {identifiers} + {REGISTRATIONS} + 1",
    )
    assert shown(page, "enterprises") == enterprises + 1
    assert max(rates) > 10, rates  # the load (~50 resolves every ~0.5 s) shows as a rate
    eventually(lambda: shown(page, "resolutions-rate") == 0, "the rate falls back to 0 after")
    top = page.locator("#top-enterprises tr").first.inner_text()
    assert "88.999.1" in top
    assert page.locator("#hit-ratio").inner_text().endswith("%")
    assert page.locator("#latency-p99").inner_text().endswith("ms")
    shot = ARTIFACTS / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    with capsys.disabled():  # the artefact's path, shown even when output is captured
        print(f"\ndashboard screenshot: {shot}")
    assert problems == [], problems

    with page.expect_navigation():
        page.click("#logout")
    page.wait_for_selector("#token")
    assert page.evaluate("fetch('/dashboard/stream').then(r => r.status)") == 401
    context.close()


def test_the_dashboard_fits_a_phone(
    browser: Any, node: LiveNode, capsys: pytest.CaptureFixture[str]
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 375, "height": 812}, is_mobile=True)
    page = context.new_page()
    log_in(page, node.url, OPERATOR_TOKEN)
    wait_for_charts(page)
    eventually(lambda: shown(page, "identifiers") >= 0, "figures shown")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375  # no sideways scroll
    box = page.locator("#chart-resolutions canvas").bounding_box()
    assert box is not None
    assert box["width"] <= 375
    shot = ARTIFACTS / "dashboard-phone.png"
    page.screenshot(path=str(shot), full_page=True)
    with capsys.disabled():
        print(f"\ndashboard phone screenshot: {shot}")
    context.close()
