"""Checking attributes against a template and turning them into Handle values.

:func:`check` is pure (no database, no clock) so one registration and a bulk load of many rows
validate the same way. Every failing field is reported at once, in words a person setting up
a factory system understands. Each attribute becomes a Handle value at its item's index:
``type`` = the item name, ``data`` = ``{"format": "string", "value": <canonical text>}``;
restricted items have public read off. Index 1001 holds ``TEMPLATE`` = ``<id>@<version>``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from app.errors import TemplateViolation
from app.registry import clock
from app.registry.templates.definitions import DATED, MAX_TEXT, Item, Template
from resolver.errors import InvalidHandle
from resolver.identifier import parse_handle
from resolver.values import DEFAULT_PERMISSIONS, HandleValue, Reference

TEMPLATE_INDEX = 1001
TEMPLATE_TYPE = "TEMPLATE"
PUBLIC_PERMISSIONS = DEFAULT_PERMISSIONS  # admin read/write, public read
RESTRICTED_PERMISSIONS = "1100"  # admin read/write only
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f]")  # control characters but tab and newline
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})")

Problem = dict[str, str]


@dataclass(frozen=True, slots=True)
class Claim:
    """A value of a unique item that no other identifier may hold under the same template."""

    template_id: str
    item_name: str
    value: str
    index: int


@dataclass(frozen=True, slots=True)
class Checked:
    """What :func:`check` found: the values to store, the unique values to claim, problems."""

    values: tuple[HandleValue, ...]
    claims: tuple[Claim, ...]
    problems: tuple[Problem, ...]

    def or_raise(self) -> Checked:
        if self.problems:
            raise TemplateViolation(list(self.problems))
        return self


class _Invalid(ValueError):
    """One attribute's problem, in the words shown to the caller."""


def check(
    template: Template,
    attributes: Mapping[str, Any],
    *,
    visibility: Mapping[str, Any] | None = None,
    unchanged: Collection[str] = (),
) -> Checked:
    """Validate ``attributes`` (name -> value; None = absent) against ``template``.

    ``visibility`` may narrow an item to ``restricted`` (or keep it ``public``). ``unchanged``
    names attributes an identifier already holds as they are, which stay accepted even when
    their item has since been disabled.
    """
    problems: list[Problem] = []
    canonical: dict[str, tuple[str, Any]] = {}
    items = {i.name: i for i in template.items}
    for name, raw in attributes.items():
        item = items.get(name)
        if item is None:
            problems.append(_problem(name, _unknown(template)))
        elif item.disabled and name not in unchanged and raw is not None:
            problems.append(
                _problem(name, f"is disabled in template {template.id} and no longer accepted")
            )
        elif raw is not None:
            try:
                canonical[name] = _canonical(item, raw)
            except _Invalid as exc:
                problems.append(_problem(name, str(exc)))
    for item in template.items:
        if item.required and not item.disabled and attributes.get(item.name) is None:
            problems.append(_problem(item.name, f"is required ({item.label_en} / {item.label_zh})"))
    problems += _order_problems(template, canonical)
    permissions = _permissions(template, visibility or {}, problems)
    values = [_template_value(template)]
    claims = []
    for item in template.items:
        if item.name not in canonical:
            continue
        text, _ = canonical[item.name]
        values.append(_value(item, text, permissions.get(item.name)))
        if item.unique:
            claims.append(Claim(template.id, item.name, text, item.index))
    return Checked(tuple(values), tuple(claims), tuple(problems))


def _problem(name: str, message: str) -> Problem:
    return {"name": name, "message": message}


def _unknown(template: Template) -> str:
    names = ", ".join(i.name for i in template.items if not i.disabled)
    return f"is not an item of template {template.id} (its items: {names})"


def _template_value(template: Template) -> HandleValue:
    return HandleValue(
        index=TEMPLATE_INDEX, type=TEMPLATE_TYPE, format="string", value=template.reference
    )


def _value(item: Item, text: str, permissions: str | None) -> HandleValue:
    references = (Reference(text, 1),) if item.type == "reference" else ()
    if permissions is None:
        permissions = RESTRICTED_PERMISSIONS if item.restricted else PUBLIC_PERMISSIONS
    return HandleValue(
        index=item.index,
        type=item.name,
        format="string",
        value=text,
        permissions=permissions,
        references=references,
    )


def _permissions(
    template: Template, visibility: Mapping[str, Any], problems: list[Problem]
) -> dict[str, str]:
    """Visibility asked for per attribute: an item may be narrowed, never widened."""
    out = {}
    for name, wanted in visibility.items():
        item = template.item(name)
        if item is None:
            problems.append(_problem(name, "visibility names " + _unknown(template)))
        elif wanted not in {"public", "restricted"}:
            problems.append(_problem(name, "visibility must be 'public' or 'restricted'"))
        elif wanted == "public" and item.restricted:
            problems.append(
                _problem(name, "is restricted by the template; it cannot be made public")
            )
        else:
            out[name] = RESTRICTED_PERMISSIONS if wanted == "restricted" else PUBLIC_PERMISSIONS
    return out


def _order_problems(template: Template, canonical: Mapping[str, tuple[str, Any]]) -> list[Problem]:
    problems = []
    for item in template.items:
        if item.not_after is None or item.name not in canonical:
            continue
        later = canonical.get(item.not_after)
        if later is None:
            continue
        text, when = canonical[item.name]
        if _later(when, later[1]):
            other = template.item(item.not_after)
            label = other.label_en if other is not None else item.not_after
            problems.append(
                _problem(
                    item.name,
                    f"{text} is after {item.not_after} ({label}) {later[0]}; "
                    f"{item.label_en} must not be later than it",
                )
            )
    return problems


def _later(first: Any, second: Any) -> bool:
    """Whether ``first`` is after ``second``; a date against a date-time compares the days."""
    if type(first) is type(second):
        return bool(first > second)
    return _as_date(first) > _as_date(second)


def _as_date(value: Any) -> date:
    return value.astimezone(UTC).date() if isinstance(value, datetime) else value


def canonical_text(item: Item, raw: Any) -> str:
    """The stored text of one value (what search compares), or ValueError with the reason."""
    return _canonical(item, raw)[0]


def _canonical(item: Item, raw: Any) -> tuple[str, Any]:
    """(stored text, comparable value) of one attribute, or :class:`_Invalid`."""
    parsed: Any
    if item.type == "number":
        text, parsed = _number(item, raw)
    elif item.type in DATED:
        text, parsed = _dated(item, raw)
    elif item.type == "reference":
        text = _reference(raw)
        parsed = text
    elif item.type == "enum":
        text = _enum(item, raw)
        parsed = text
    else:
        text = _string(item, raw)
        parsed = text
    return text, parsed


def _got(raw: Any) -> str:
    shown = repr(raw) if isinstance(raw, str) else str(raw).lower()
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _string(item: Item, raw: Any) -> str:
    if not isinstance(raw, str):
        raise _Invalid(f"must be text (in quotes), got {_got(raw)}")
    if _CONTROL.search(raw):
        raise _Invalid("must not contain control characters")
    length = len(raw)
    low, high = item.min_length, item.max_length
    if low is not None and low == high and length != low:
        raise _Invalid(f"must be exactly {low} characters long, got {length}")
    if low is not None and length < low:
        raise _Invalid(f"must be at least {low} characters long, got {length}")
    if length > min(high if high is not None else MAX_TEXT, MAX_TEXT):
        raise _Invalid(f"must be at most {min(high or MAX_TEXT, MAX_TEXT)} characters long")
    if item.required and not raw.strip():
        raise _Invalid(f"is required ({item.label_en} / {item.label_zh}) and may not be empty")
    if item.pattern is not None and not item.pattern.fullmatch(raw):
        wanted = item.hint or f"text of the form {item.pattern.pattern}"
        raise _Invalid(f"must be {wanted}, got {_got(raw)}")
    return raw


def _number(item: Item, raw: Any) -> tuple[str, Decimal]:
    problem = _Invalid(f"must be a number such as 12 or 3.5, got {_got(raw)}")
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise problem
    try:
        number = Decimal(str(raw).strip())
    except InvalidOperation as exc:
        raise problem from exc
    if not number.is_finite():
        raise problem
    low, high = item.minimum, item.maximum
    if (low is not None and number < Decimal(str(low))) or (
        high is not None and number > Decimal(str(high))
    ):
        raise _Invalid(f"must be {_range(low, high)}, got {_got(raw)}")
    text = format(number.normalize(), "f")
    return (text if text != "-0" else "0"), number


def _range(low: float | None, high: float | None) -> str:
    def show(n: float) -> str:
        return str(int(n)) if float(n).is_integer() else str(n)

    if low is not None and high is not None:
        return f"between {show(low)} and {show(high)}"
    return f"at least {show(low)}" if low is not None else f"at most {show(high or 0)}"


def _dated(item: Item, raw: Any) -> tuple[str, date | datetime]:
    text = raw.strip() if isinstance(raw, str) else None
    if item.type == "date":
        if text is not None and _DATE.fullmatch(text):
            try:
                return text, date.fromisoformat(text)
            except ValueError:
                pass
        raise _Invalid(f"must be a real date written YYYY-MM-DD (e.g. 2026-03-01), got {_got(raw)}")
    if text is not None and _DATETIME.fullmatch(text):
        try:
            moment = clock.in_utc(datetime.fromisoformat(text))
        except ValueError:
            pass
        else:
            return moment.isoformat().replace("+00:00", "Z"), moment
    raise _Invalid(
        "must be a real date and time with its time zone, e.g. 2026-03-01T08:30:00+08:00 "
        f"or 2026-03-01T00:30:00Z, got {_got(raw)}"
    )


def _reference(raw: Any) -> str:
    if not isinstance(raw, str):
        raise _Invalid(f"must be a full identifier such as 88.999.1/BATCH-001, got {_got(raw)}")
    try:
        return str(parse_handle(raw.strip()))
    except InvalidHandle as exc:
        raise _Invalid(
            f"must be a full identifier such as 88.999.1/BATCH-001 ({exc.message})"
        ) from exc


def _enum(item: Item, raw: Any) -> str:
    text = str(raw).lower() if isinstance(raw, bool) else raw
    if isinstance(text, int | float):
        text = str(text)
    if not isinstance(text, str) or text not in item.choices:
        raise _Invalid(f"must be one of: {', '.join(item.choices)}; got {_got(raw)}")
    return text


_BOOLEAN = frozenset({"true", "false"})


def json_value(item: Item, stored: Any) -> Any:
    """An attribute's stored text as the JSON type its item declares: a number as a number,
    a ``true``/``false`` enum as a boolean; every other type (dates too) is text in JSON
    already. The Handle record keeps the text. A value the Handle API wrote that does not
    fit its type is shown as it is."""
    if not isinstance(stored, str):
        return stored
    if item.type == "number":
        try:
            number = Decimal(stored)
        except InvalidOperation:
            return stored
        if not number.is_finite():
            return stored
        if number == number.to_integral_value():
            return int(number)
        as_float = float(number)
        return as_float if math.isfinite(as_float) else stored
    if item.type == "enum" and set(item.choices) == _BOOLEAN and stored in _BOOLEAN:
        return stored == "true"
    return stored


def attributes_of(template: Template, values: Collection[HandleValue]) -> dict[str, HandleValue]:
    """The attribute values a record holds, by item name (values at the items' indexes)."""
    by_index = {i.index: i for i in template.items}
    return {
        item.name: v
        for v in values
        if (item := by_index.get(v.index)) is not None and v.type == item.name
    }


def json_attributes(template: Template, values: Collection[HandleValue]) -> dict[str, Any]:
    """The attribute values a record holds by item name, each as the JSON type its item
    declares (:func:`json_value`): what a batch result carries."""
    by_index = {v.index: v for v in values}
    return {
        item.name: json_value(item, held.value)
        for item in template.items
        if (held := by_index.get(item.index)) is not None and held.type == item.name
    }


def template_reference(values: Collection[HandleValue]) -> str | None:
    """The ``<id>@<version>`` a record was registered against, if any."""
    for v in values:
        if v.index == TEMPLATE_INDEX and v.type == TEMPLATE_TYPE and isinstance(v.value, str):
            return v.value
    return None
