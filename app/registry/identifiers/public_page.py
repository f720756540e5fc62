"""What the public page of an identifier shows (the page a scan of its QR code opens).

Everything here is what anyone may read: the record's public values, grouped and ordered by
its template, titled by the template's ``display`` item; the enterprise's name; the upward
trace (public values only, as ``GET .../trace`` answers an anonymous caller) and how many
identifiers lie directly below; a recall warning (its own, or a recalled ancestor's); device
liveness for a device; and, when its template asks for it, its scans.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import ANONYMOUS
from app.registry.identifiers import scans, trace
from app.registry.identifiers.recalls import recall_of
from app.registry.identifiers.templated import template_of
from app.registry.templates.attributes import attributes_of
from app.registry.templates.definitions import Item, Template
from app.storage import enterprises as enterprise_repo
from app.storage import history as history_repo
from resolver.errors import HandleNotFound
from resolver.identifier import parse_handle
from resolver.record import Record
from resolver.values import HandleValue

DEVICE_TEMPLATE = "device"


@dataclass(frozen=True)
class Attribute:
    item: Item
    value: str


@dataclass(frozen=True)
class Step:
    """One identifier above this one in its trace."""

    handle: str
    depth: int
    title: str | None
    template: Template | None
    found: bool
    recalled: bool


@dataclass(frozen=True)
class Recall:
    reason: str
    at: str
    source: str | None  # the recalled identifier above this one; None: this one is recalled


@dataclass(frozen=True)
class Scans:
    total: int
    first: datetime | None


@dataclass
class PublicPage:
    handle: str
    record: Record
    template: Template | None = None
    title: str | None = None
    enterprise: str | None = None
    attributes: list[Attribute] = field(default_factory=list)
    recall: Recall | None = None
    above: list[Step] = field(default_factory=list)
    below: int = 0
    online: bool | None = None  # devices only
    last_seen: str | None = None
    scans: Scans | None = None


async def public_page(session: AsyncSession, record: Record, *, local: bool) -> PublicPage:
    """The page of ``record`` (its public view, as resolved); ``local``: held on this node,
    so it has a template, an enterprise and a trace here."""
    page = PublicPage(record.handle, record, recall=_recall(record))
    if not local:
        return page
    page.template = await template_of(session, record)
    page.attributes = _attributes(record, page.template)
    owner = await enterprise_repo.owner_of(session, record.handle.partition("/")[0])
    page.enterprise = owner.name if owner is not None else None
    page.above, titles = await _above(session, record)
    page.title = titles.of(record.handle)
    page.below = await history_repo.referrer_count(session, record.handle)
    if page.template is not None and page.template.id == DEVICE_TEMPLATE:
        held = {a.item.name: a.value for a in page.attributes}
        page.online = held["online"] == "true" if "online" in held else None
        page.last_seen = held.get("lastSeen")
    if page.template is not None and page.template.show_scans:
        page.scans = Scans(*await scans.summary(session, record.handle))
    return page


def _recall(record: Record) -> Recall | None:
    value = recall_of(record)
    if value is None:
        return None
    source = value.references[0].handle if value.references else None
    return Recall(str(value.value), value.timestamp, source)


def _attributes(record: Record, template: Template | None) -> list[Attribute]:
    if template is None:
        return []
    held = attributes_of(template, record.values)
    return [
        Attribute(item, _text(held[item.name]))
        for item in template.items
        if item.name in held and not item.disabled
    ]


async def _above(session: AsyncSession, record: Record) -> tuple[list[Step], _Titles]:
    """The upward trace as an anonymous caller sees it, and each identifier's title."""
    try:
        walked = (
            await trace.trace(session, parse_handle(record.handle), principal=ANONYMOUS)
        ).nodes
    except HandleNotFound:  # deleted since (a page ?at= a past time): no trace now
        walked = [trace.Node(record.handle, 0, record)]
    records = {n.handle: n.record for n in walked if n.record is not None}
    records[record.handle] = record  # as shown (a page ?at= shows it as it was)
    templates = {name: await template_of(session, r) for name, r in records.items()}
    titles = _Titles(records, templates)
    steps = [
        Step(
            n.handle,
            n.depth,
            titles.of(n.handle),
            templates.get(n.handle),
            n.record is not None,
            n.record is not None and recall_of(n.record) is not None,
        )
        for n in walked
        if n.depth > 0
    ]
    return steps, titles


class _Titles:
    """Each identifier's title: its template's ``display`` value, or, when that is a
    reference (a batch titled by its product), the title of the identifier it names."""

    def __init__(self, records: dict[str, Record], templates: dict[str, Template | None]):
        self._records = records
        self._templates = templates

    def of(self, handle: str, seen: frozenset[str] = frozenset()) -> str | None:
        record, template = self._records.get(handle), self._templates.get(handle)
        if record is None or template is None or template.display is None or handle in seen:
            return None
        item = template.item(template.display)
        value = attributes_of(template, record.values).get(template.display)
        if item is None or value is None:
            return None
        text = _text(value)
        return self.of(text, seen | {handle}) if item.type == "reference" else text


def _text(value: HandleValue) -> str:
    return value.value if isinstance(value.value, str) else str(value.value)
