"""The page a QR scan opens, in a real headless browser (Debian chromium driven by playwright),
in Chinese and English, on a 375 px phone and a desktop: a food.batch unit with its trace, a
unit of a recalled batch, a device, and an identifier that does not exist.

Screenshots are saved under the test's temporary directory (their paths are printed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.registry.templates import DEVICE
from tests.api.supply_chain import PRODUCT_NAME, Chain, chain, identifier
from tests.app.test_dashboard_browser import browser  # noqa: F401 - the shared fixture
from tests.conftest import bearer, create_enterprise, running_node

pytestmark = pytest.mark.slow

REASON = "黄曲霉毒素M1超标 / Aflatoxin M1 above the limit"
VIEWPORTS = {"phone": {"width": 375, "height": 812}, "desktop": {"width": 1280, "height": 900}}
LOCALES = {"zh": "zh-CN", "en": "en-US"}


class Scene:
    """What the pages show: identifiers registered in a live node."""

    def __init__(self, url: str, fine: Chain, recalled: Chain, device: str) -> None:
        self.url = url
        self.fine = fine
        self.recalled = recalled
        self.device = device


async def _seed(url: str) -> Scene:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        fine = await chain(client)
        recalled = await chain(client)
        answer = await client.post(
            f"/api/v1/identifiers/{recalled.batch}/recall",
            json={"reason": REASON},
            headers=bearer(recalled.dairy),
        )
        assert answer.status_code == 200, answer.text
        plant = await create_enterprise(client, "呼和浩特冷库")
        attributes = {**DEVICE["example"], "online": "true", "lastSeen": "2026-12-01T08:00:00Z"}
        device = await identifier(client, plant, "COLD-ROOM-7", "device", attributes)
    return Scene(url, fine, recalled, device)


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    workdir = tmp_path_factory.mktemp("public-page")
    database = f"sqlite+aiosqlite:///{workdir / 'page.db'}"
    # In a thread of its own: playwright's sync API keeps an event loop in this one.
    with running_node(workdir, database, "--no-broker") as live, ThreadPoolExecutor(1) as thread:
        yield thread.submit(asyncio.run, _seed(live.url)).result()


@dataclass(frozen=True)
class View:
    page: Any
    lang: str
    size: str


@pytest.fixture(params=[(lang, size) for lang in LOCALES for size in VIEWPORTS])
def view(request: pytest.FixtureRequest, browser: Any) -> Iterator[View]:  # noqa: F811
    lang, size = request.param
    context = browser.new_context(
        viewport=VIEWPORTS[size], locale=LOCALES[lang], is_mobile=size == "phone"
    )
    yield View(context.new_page(), lang, size)
    context.close()


def visit(view: View, url: str, shots: Path, name: str) -> str:
    """Open ``url``; check it fits the screen; save a screenshot; the page's visible text."""
    page = view.page
    page.goto(url)
    width = page.viewport_size["width"]
    assert page.evaluate("document.documentElement.scrollWidth") <= width, "sideways scroll"
    shot = shots / f"{name}-{view.lang}-{view.size}.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")
    return str(page.locator("body").inner_text())


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


def test_a_unit_shows_its_product_and_trace(view: View, scene: Scene, shots: Path) -> None:
    page = view.page
    text = visit(view, f"{scene.url}/{scene.fine.unit}", shots, "unit")
    assert page.locator("h1").inner_text() == PRODUCT_NAME
    assert ("追溯链" if view.lang == "zh" else "Where it comes from") in text
    assert page.locator("#trace li").count() == 3  # case, pallet batch, product
    assert page.locator(".qr svg").is_visible()
    assert page.locator("#recall").count() == 0
    assert page.evaluate("document.documentElement.lang") == (
        "zh-Hans" if view.lang == "zh" else "en"
    )


def test_a_recalled_batch_warns_on_its_unit(view: View, scene: Scene, shots: Path) -> None:
    page = view.page
    visit(view, f"{scene.url}/{scene.recalled.unit}", shots, "recalled-unit")
    warning = page.locator("#recall")
    assert warning.is_visible()
    assert REASON in warning.inner_text()
    assert ("已召回" if view.lang == "zh" else "Recalled") in warning.inner_text()
    box = warning.bounding_box()
    assert box is not None
    assert box["y"] < page.viewport_size["height"]  # on the first screen, not below the fold


def test_a_device_shows_whether_it_is_online(view: View, scene: Scene, shots: Path) -> None:
    page = view.page
    visit(view, f"{scene.url}/{scene.device}", shots, "device")
    assert page.locator("#liveness .badge").inner_text() == (
        "在线" if view.lang == "zh" else "Online"
    )


def test_an_unknown_identifier_says_what_to_do(view: View, scene: Scene, shots: Path) -> None:
    page = view.page
    answer = page.goto(f"{scene.url}/88.999.1/NO-SUCH-UNIT")
    assert answer.status == 404
    text = visit(view, f"{scene.url}/88.999.1/NO-SUCH-UNIT", shots, "not-found")
    assert ("未找到该标识" if view.lang == "zh" else "Identifier not found") in text
    assert page.locator("input[name=hdl]").is_visible()  # where to try again
