"""What a template is: its items and constraints, read from and written as JSON.

A template says which attributes an identifier of one kind carries (docs/domain.md section
6). Node templates have a bare id (``food.batch``); an enterprise's own carry its prefix
(``88.999.1/widget``). Items are disabled, never deleted, and a new version keeps every item of
the one before, so identifiers registered under an older version stay valid.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from app.errors import InvalidTemplate
from resolver.errors import InvalidHandle
from resolver.identifier import parse_prefix

FIRST_ATTRIBUTE_INDEX = 2000
MAX_ITEMS = 200
MAX_TEXT = 400  # characters of one attribute value (kept searchable: see storage/attributes.py)
ITEM_TYPES = ("string", "number", "date", "datetime", "reference", "enum")
VISIBILITIES = ("public", "restricted")
DATED = frozenset({"date", "datetime"})
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
_TEMPLATE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_CONSTRAINTS = frozenset({"length", "pattern", "hint", "range", "enum", "notAfter"})


@dataclass(frozen=True, slots=True)
class Item:
    """One attribute of a template, stored at ``index`` in an identifier's record."""

    index: int
    name: str
    label_zh: str
    label_en: str
    type: str
    required: bool = False
    unique: bool = False
    visibility: str = "public"
    min_length: int | None = None
    max_length: int | None = None
    pattern: re.Pattern[str] | None = None
    hint: str | None = None  # what the pattern asks for, in words ("20 digits starting with 8")
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    not_after: str | None = None  # name of a date item this one must not be later than
    disabled: bool = False

    @property
    def restricted(self) -> bool:
        return self.visibility == "restricted"


@dataclass(frozen=True, slots=True)
class Template:
    """One version of a template."""

    id: str
    version: int
    industry: str
    title_zh: str
    title_en: str
    items: tuple[Item, ...]
    example: Mapping[str, Any] = field(default_factory=dict)
    display: str | None = None  # the item whose value titles the identifier's page
    show_scans: bool = False  # its page says when it was first scanned and how often

    @property
    def owner_prefix(self) -> str | None:
        """The enterprise prefix of an enterprise template; None for a node template."""
        prefix, sep, _ = self.id.partition("/")
        return prefix if sep else None

    @property
    def reference(self) -> str:
        """What identifiers carry at index 1001: ``<id>@<version>``."""
        return f"{self.id}@{self.version}"

    def item(self, name: str) -> Item | None:
        return next((i for i in self.items if i.name == name), None)

    def at(self, index: int) -> Item | None:
        return next((i for i in self.items if i.index == index), None)

    def with_disabled(self, name: str, disabled: bool) -> Template:
        items = tuple(replace(i, disabled=disabled) if i.name == name else i for i in self.items)
        return replace(self, items=items)


def template_id(text: str) -> str:
    """The normalised id: ``name`` or ``<prefix>/name`` (prefix upper-cased like handles)."""
    prefix, sep, name = text.strip().rpartition("/")
    if not _TEMPLATE_NAME.fullmatch(name):
        raise InvalidTemplate(
            f"template id {text!r}: the name must be 1 to 64 letters, digits, '.', '_' or '-' "
            "(e.g. food.batch, or 88.999.1/widget for an enterprise's own)"
        )
    if not sep:
        return name
    try:
        return f"{parse_prefix(prefix)}/{name}"
    except InvalidHandle as exc:
        raise InvalidTemplate(f"template id {text!r}: {exc.message}") from exc


MAX_VERSION = 2**31 - 1  # a 32-bit column


def split_reference(text: str) -> tuple[str, int | None]:
    """``food.batch@2`` -> (``food.batch``, 2); ``food.batch`` -> (``food.batch``, None)."""
    name, sep, version = text.rpartition("@")
    if not sep:
        return template_id(text), None
    if not (version.isascii() and version.isdigit() and 1 <= int(version) <= MAX_VERSION):
        raise InvalidTemplate(
            f"{text!r}: the version after '@' must be a whole number from 1 to {MAX_VERSION}"
        )
    return template_id(name), int(version)


def parse_template(raw: Mapping[str, Any], *, version: int) -> Template:
    """A template from its JSON form; every problem found is named in one error."""
    problems: list[str] = []
    items = tuple(_item(entry, n, problems) for n, entry in enumerate(_items(raw, problems), 1))
    _check_items(items, problems)
    title = raw.get("title")
    if not isinstance(title, Mapping) or not all(
        isinstance(title.get(lang), str) and title.get(lang) for lang in ("zh", "en")
    ):
        problems.append('title must be {"zh": "...", "en": "..."}')
        title = {"zh": "", "en": ""}
    industry = raw.get("industry")
    if not isinstance(industry, str) or not re.fullmatch(r"[A-T]\d{0,4}", industry):
        problems.append("industry must be a GB/T 4754 code such as C14 or C2762")
    example = raw.get("example", {})
    if not isinstance(example, Mapping):
        problems.append("example must be an object of attribute values")
        example = {}
    display, show_scans = raw.get("display"), raw.get("showScans", False)
    if display is not None and not any(i.name == display for i in items):
        problems.append("display must name one of the items (its value titles the page)")
    if not isinstance(show_scans, bool):
        problems.append("showScans must be true or false")
    if problems:
        raise InvalidTemplate("; ".join(problems))
    return Template(
        id=template_id(str(raw.get("id", ""))),
        version=version,
        industry=str(industry),
        title_zh=str(title["zh"]),
        title_en=str(title["en"]),
        items=items,
        example=dict(example),
        display=str(display) if display is not None else None,
        show_scans=show_scans is True,
    )


def _items(raw: Mapping[str, Any], problems: list[str]) -> list[Any]:
    items = raw.get("items")
    if not isinstance(items, list) or not items:
        problems.append("items must be a non-empty list")
        return []
    if len(items) > MAX_ITEMS:
        problems.append(f"a template holds at most {MAX_ITEMS} items")
        return []
    return items


def _item(raw: Any, position: int, problems: list[str]) -> Item:
    where = f"item {position}"
    if not isinstance(raw, Mapping):
        problems.append(f"{where} must be an object")
        return Item(0, "", "", "", "string")
    name = raw.get("name")
    if isinstance(name, str) and _NAME.fullmatch(name):
        where = f"item {name}"
    else:
        problems.append(f"{where}: name must be a letter then letters, digits or '_'")
    index = raw.get("index")
    if type(index) is not int or not FIRST_ATTRIBUTE_INDEX <= index < 2**31:
        problems.append(f"{where}: index must be a whole number from {FIRST_ATTRIBUTE_INDEX}")
    kind = raw.get("type")
    if kind not in ITEM_TYPES:
        problems.append(f"{where}: type must be one of {', '.join(ITEM_TYPES)}")
    visibility = raw.get("visibility", "public")
    if visibility not in VISIBILITIES:
        problems.append(f"{where}: visibility must be public or restricted")
    labels = [raw.get("label_zh"), raw.get("label_en")]
    if not all(isinstance(label, str) and label for label in labels):
        problems.append(f"{where}: label_zh and label_en are required")
    flags = [raw.get(key, False) for key in ("required", "unique", "disabled")]
    if not all(isinstance(flag, bool) for flag in flags):
        problems.append(f"{where}: required, unique and disabled must be true or false")
    item = Item(
        index=index if type(index) is int else 0,
        name=str(name),
        label_zh=str(labels[0]),
        label_en=str(labels[1]),
        type=str(kind),
        required=flags[0] is True,
        unique=flags[1] is True,
        visibility=str(visibility),
        disabled=flags[2] is True,
    )
    return _constrained(item, raw.get("constraints", {}), where, problems)


def _constrained(item: Item, raw: Any, where: str, problems: list[str]) -> Item:
    if not isinstance(raw, Mapping) or set(raw) - _CONSTRAINTS:
        problems.append(f"{where}: constraints may hold {', '.join(sorted(_CONSTRAINTS))}")
        return item
    low, high = _bounds(raw.get("length"), f"{where}: length", problems, whole=True)
    minimum, maximum = _bounds(raw.get("range"), f"{where}: range", problems, whole=False)
    pattern = None
    if "pattern" in raw:
        try:
            pattern = re.compile(str(raw["pattern"]))
        except re.error as exc:
            problems.append(f"{where}: pattern is not a valid regular expression ({exc})")
    choices = raw.get("enum", [])
    if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
        problems.append(f"{where}: enum must be a list of texts")
        choices = []
    if item.type == "enum" and not choices:
        problems.append(f"{where}: an enum item needs constraints.enum, the allowed texts")
    hint, not_after = raw.get("hint"), raw.get("notAfter")
    return replace(
        item,
        min_length=int(low) if low is not None else None,
        max_length=int(high) if high is not None else None,
        pattern=pattern,
        hint=str(hint) if hint is not None else None,
        minimum=minimum,
        maximum=maximum,
        choices=tuple(choices),
        not_after=str(not_after) if not_after is not None else None,
    )


def _bounds(
    raw: Any, where: str, problems: list[str], *, whole: bool
) -> tuple[float | None, float | None]:
    if raw is None:
        return None, None
    ok = (int,) if whole else (int, float)
    low, high = (raw.get("min"), raw.get("max")) if isinstance(raw, Mapping) else (0, -1)
    valid = all(b is None or (isinstance(b, ok) and not isinstance(b, bool)) for b in (low, high))
    if not valid or (low is not None and high is not None and low > high):
        problems.append(f"{where} must be {{min, max}} numbers with min <= max")
        return None, None
    return low, high


def _check_items(items: tuple[Item, ...], problems: list[str]) -> None:
    by_name = {i.name: i for i in items}
    for attr, what in (("index", "index"), ("name", "name")):
        seen = [getattr(i, attr) for i in items]
        twice = sorted({str(v) for v in seen if seen.count(v) > 1})
        if twice:
            problems.append(f"{what} used by more than one item: {', '.join(twice)}")
    for i in items:
        if i.not_after is None:
            continue
        other = by_name.get(i.not_after)
        if i.type not in DATED or other is None or other.type not in DATED:
            problems.append(f"item {i.name}: notAfter must name another date item")


def check_successor(previous: Template, new: Template) -> None:
    """A new version keeps every item of the previous one (same index, name and type)."""
    lost = [
        f"{old.name} (index {old.index}, {old.type})"
        for old in previous.items
        if (kept := new.item(old.name)) is None or (kept.index, kept.type) != (old.index, old.type)
    ]
    if lost:
        raise InvalidTemplate(
            f"version {new.version} must keep every item of version {previous.version} with "
            f"the same index and type (disable items instead of removing them): {', '.join(lost)}"
        )


def template_json(template: Template) -> dict[str, Any]:
    """The template as the API answers it and as it is stored."""
    return {
        "id": template.id,
        "version": template.version,
        "industry": template.industry,
        "title": {"zh": template.title_zh, "en": template.title_en},
        "owner": template.owner_prefix or "node",
        "items": [item_json(i) for i in template.items],
        "example": dict(template.example),
        "display": template.display,
        "showScans": template.show_scans,
    }


def item_json(item: Item) -> dict[str, Any]:
    constraints: dict[str, Any] = {}
    if item.min_length is not None or item.max_length is not None:
        constraints["length"] = {"min": item.min_length, "max": item.max_length}
    if item.pattern is not None:
        constraints["pattern"] = item.pattern.pattern
    if item.hint is not None:
        constraints["hint"] = item.hint
    if item.minimum is not None or item.maximum is not None:
        constraints["range"] = {"min": item.minimum, "max": item.maximum}
    if item.choices:
        constraints["enum"] = list(item.choices)
    if item.not_after is not None:
        constraints["notAfter"] = item.not_after
    return {
        "index": item.index,
        "name": item.name,
        "label_zh": item.label_zh,
        "label_en": item.label_en,
        "type": item.type,
        "required": item.required,
        "unique": item.unique,
        "visibility": item.visibility,
        "constraints": constraints,
        "disabled": item.disabled,
    }
