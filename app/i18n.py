"""The languages of the node's human-facing pages: one gettext catalogue per language.

Every catalogue is a ``.po`` file at ``app/locales/<language>/LC_MESSAGES/messages.po``
(Babel's layout), compiled in memory when the node starts, so adding a language is adding
one file; msgids are the English texts. A request's language is ``?lang=`` when the node has
it, else the best of ``Accept-Language``, else English. Dates and numbers are formatted for
the language by Babel's CLDR data; times are shown in the node's time zone
(``IDNODE_TIMEZONE``), with its offset from UTC, since the people reading the pages are where
the node is.
"""

from __future__ import annotations

import contextlib
import gettext
import io
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from importlib import resources

import jinja2
from babel import Locale
from babel.dates import format_date, format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal

DEFAULT = "en"
CATALOGUE = "messages.po"


@dataclass(frozen=True)
class Language:
    """One language a page can be shown in: its tag, its texts and its formats."""

    tag: str
    translations: gettext.NullTranslations
    zone: tzinfo = UTC

    @property
    def html_lang(self) -> str:
        """The ``<html lang>`` value: zh-Hans for the Simplified Chinese catalogue."""
        return "zh-Hans" if self.tag == "zh" else self.tag

    def gettext(self, message: str) -> str:
        return self.translations.gettext(message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self.translations.ngettext(singular, plural, n)

    @property
    def name(self) -> str:
        """The language's name in itself (中文, English), for the language switch."""
        return str(Locale.parse(self.tag).get_display_name(self.tag))

    def pick(self, zh: str, en: str) -> str:
        """A template's label or title in this language (templates carry zh and en)."""
        return zh if self.tag == "zh" else en

    def date(self, value: date) -> str:
        return format_date(value, "long", locale=self.tag)

    def moment(self, value: datetime | str) -> str:
        """A time (or a Handle timestamp, ISO 8601; UTC when it names no zone) in the node's
        zone, formatted for the language and followed by its offset: ``2026年12月3日 18:30:00
        UTC+8``."""
        try:
            moment = datetime.fromisoformat(value) if isinstance(value, str) else value
        except ValueError:
            return str(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        local = moment.astimezone(self.zone)
        shown = format_datetime(local, "medium", tzinfo=self.zone, locale=self.tag)
        return f"{shown} {_offset(local)}"

    def number(self, value: float) -> str:
        return format_decimal(value, locale=self.tag)

    def value(self, kind: str, text: str) -> str:
        """An attribute value of a template item of type ``kind``, formatted for reading."""
        try:
            if kind == "date":
                return self.date(date.fromisoformat(text))
            if kind == "datetime":
                return self.moment(datetime.fromisoformat(text))
            if kind == "number":
                return self.number(float(text) if "." in text or "e" in text else int(text))
        except ValueError:
            pass
        return text


class Languages:
    """Every catalogue the node ships, compiled once, and the choice of one per request."""

    def __init__(self, catalogues: dict[str, gettext.NullTranslations], zone: tzinfo = UTC) -> None:
        self._by_tag = {tag: Language(tag, t, zone) for tag, t in catalogues.items()}
        self._by_tag.setdefault(DEFAULT, Language(DEFAULT, gettext.NullTranslations(), zone))
        self._current: ContextVar[Language] = ContextVar("language", default=self[DEFAULT])

    @classmethod
    def shipped(cls, zone: tzinfo = UTC) -> Languages:
        """The catalogues under ``app/locales``, compiled from their ``.po`` files, showing
        times in ``zone``."""
        root = resources.files("app") / "locales"
        catalogues: dict[str, gettext.NullTranslations] = {}
        for folder in root.iterdir():
            po = folder / "LC_MESSAGES" / CATALOGUE
            if po.is_file():
                catalogues[folder.name] = _compiled(po.read_bytes(), folder.name)
        return cls(catalogues, zone)

    def __getitem__(self, tag: str) -> Language:
        return self._by_tag[tag]

    @property
    def tags(self) -> list[str]:
        return sorted(self._by_tag)

    def choose(self, *, override: str | None, accept: str | None) -> Language:
        """``?lang=`` when the node has it, else the best ``Accept-Language`` match."""
        for tag in (override, *_preferred(accept or "")):
            # Matched on the first part: zh, zh-CN, zh-Hans -> zh.
            base = (tag or "").strip().lower().split("-")[0].split("_")[0]
            if base in self._by_tag:
                return self._by_tag[base]
        return self._by_tag[DEFAULT]

    def install(self, pages: jinja2.Environment) -> None:
        """Give the pages ``{% trans %}``/``_()`` texts and ``lang`` of the one being shown."""
        pages.add_extension("jinja2.ext.i18n")
        pages.install_gettext_callables(  # type: ignore[attr-defined]
            gettext=lambda message: self._current.get().gettext(message),
            ngettext=lambda s, p, n: self._current.get().ngettext(s, p, n),
            newstyle=True,
        )

    @contextlib.contextmanager
    def speaking(self, language: Language) -> Iterator[None]:
        """Render pages in ``language`` (rendering is synchronous, so this is per request)."""
        token = self._current.set(language)
        try:
            yield
        finally:
            self._current.reset(token)


def _offset(moment: datetime) -> str:
    """``UTC``, ``UTC+8`` or ``UTC+5:30``: the offset of an aware time, short."""
    offset = moment.utcoffset()
    minutes = int(offset.total_seconds()) // 60 if offset is not None else 0
    if minutes == 0:
        return "UTC"
    sign = "+" if minutes > 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours}" + (f":{rest:02d}" if rest else "")


def _preferred(header: str) -> list[str]:
    """Accept-Language tags, best first (``q=0`` ones left out)."""
    ranked = []
    for position, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if tag and quality > 0:
            ranked.append((-quality, position, tag))
    return [tag for _, _, tag in sorted(ranked)]


def _compiled(po: bytes, tag: str) -> gettext.GNUTranslations:
    catalogue = read_po(io.BytesIO(po), locale=Locale.parse(tag))
    mo = io.BytesIO()
    write_mo(mo, catalogue)
    mo.seek(0)
    return gettext.GNUTranslations(mo)
