"""The pages' languages: every text of every page is in every catalogue, and a request gets
the language it asks for."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from pydantic import ValidationError

from app.i18n import Languages
from app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
LOCALES = ROOT / "app" / "locales"


def template_texts() -> set[str]:
    """The msgids the templates use, found as `make messages` finds them (babel.cfg)."""
    found = extract_from_dir(
        str(ROOT / "app" / "templates"),
        method_map=[("**.html", "jinja2")],
        options_map={"**.html": {"extensions": "jinja2.ext.i18n"}},
    )
    return {message[0] if isinstance(message, tuple) else message for *_, message, _, _ in found}


@pytest.mark.parametrize("po", sorted(LOCALES.glob("*/LC_MESSAGES/messages.po")), ids=str)
def test_every_text_of_every_page_is_translated(po: Path) -> None:
    with po.open("rb") as f:
        catalogue = read_po(f)
    translated = {
        (m.id[0] if isinstance(m.id, tuple) else m.id)
        for m in catalogue
        if m.id and all(m.string if isinstance(m.string, tuple) else [m.string]) and not m.fuzzy
    }
    missing = template_texts() - translated
    assert not missing, f"{po}: untranslated (run `make messages`, then translate): {missing}"


def test_every_catalogue_is_a_language_of_the_node() -> None:
    shipped = Languages.shipped()
    assert shipped.tags == sorted({"en", *(p.name for p in LOCALES.iterdir() if p.is_dir())})
    assert shipped["zh"].gettext("Identifier not found") == "未找到该标识"


@pytest.mark.parametrize(
    ("override", "accept", "chosen"),
    [
        (None, "zh-CN,zh;q=0.9,en;q=0.8", "zh"),
        (None, "zh-Hans", "zh"),
        (None, "zh", "zh"),
        (None, "en-US,en;q=0.9,zh-CN;q=0.8", "en"),
        (None, "fr-FR, zh;q=0.5", "zh"),  # the best the node has
        (None, "zh;q=0, en", "en"),  # q=0: not wanted
        (None, "fr-FR", "en"),
        (None, None, "en"),
        ("en", "zh-CN", "en"),  # ?lang= wins
        ("zh-CN", "en", "zh"),
        ("xx", "zh-CN", "zh"),  # a language the node lacks is ignored
    ],
)
def test_the_language_a_request_asks_for(
    override: str | None, accept: str | None, chosen: str
) -> None:
    assert Languages.shipped().choose(override=override, accept=accept).tag == chosen


def test_times_are_shown_in_the_nodes_zone_with_its_offset() -> None:
    # 10:30 UTC is 18:30 in Hohhot, where the shopper scanning the carton is.
    shanghai = Languages.shipped(ZoneInfo("Asia/Shanghai"))
    assert shanghai["zh"].moment("2026-12-03T10:30:00+00:00") == "2026年12月3日 18:30:00 UTC+8"
    assert shanghai["en"].moment("2026-12-03T10:30:00Z") == "Dec 3, 2026, 6:30:00\u202fPM UTC+8"
    # A Handle timestamp without a zone is UTC; a zone crossing the date line moves the day.
    assert shanghai["en"].moment("2026-12-03T20:00:00").startswith("Dec 4, 2026, 4:00:00")
    assert (
        Languages.shipped(ZoneInfo("Asia/Kolkata"))["en"]
        .moment(datetime(2026, 12, 3, 10, 0, tzinfo=UTC))
        .endswith("3:30:00\u202fPM UTC+5:30")
    )
    assert Languages.shipped()["en"].moment("2026-12-03T10:30:00Z").endswith("AM UTC")


def test_an_unknown_time_zone_is_refused_with_what_to_write() -> None:
    with pytest.raises(ValidationError, match=r"unknown time zone 'Asia/Hohhot'.*Asia/Shanghai"):
        Settings(timezone="Asia/Hohhot")
