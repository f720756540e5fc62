"""``idnode import FILE.csv``: rows of a spreadsheet become identifiers, through the same bulk
service and chunked transactions as ``POST /api/v1/identifiers:batch``.

The header names template attributes; three columns are special: ``suffix`` (the identifier
is ``<prefix>/<suffix>``; empty or absent: the node picks one), ``url`` and
``idempotencyKey``. Empty cells are absent attributes. Rejected rows go to
``<FILE>.rejected.csv`` with their line number, the reason and the row as it was.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from app.auth import OPERATOR
from app.errors import NodeError
from app.registry.identifiers import Batch, BulkLoad, Item, Result, authorize_write
from app.registry.templates import catalog
from app.storage.database import Database
from resolver.identifier import parse_handle, parse_prefix

SPECIAL = ("suffix", "url", "idempotencyKey")
# What spreadsheets write: UTF-8, often with a byte-order mark (read either way), or, from
# Excel on Chinese Windows, GBK; GB18030 reads GBK too and is tried when UTF-8 fails.
DETECTED = ("utf-8-sig", "gb18030")
_CHUNK = 1 << 20


class UnreadableCsv(NodeError):
    """The file is not text in the encoding given (or any the import recognises)."""


@dataclass
class ImportSummary:
    rows: int
    accepted: int
    rejected: int
    rejected_file: Path | None


def rejected_path(source: Path) -> Path:
    return source.with_suffix(".rejected.csv")


def encoding_of(source: Path, declared: str | None = None) -> str:
    """The encoding to read ``source`` with: ``declared`` when it reads the whole file, else
    the first of UTF-8 (with or without BOM) and GB18030 (GBK) that does; or
    :class:`UnreadableCsv` naming the encoding."""
    if declared is not None:
        try:
            name = codecs.lookup(declared).name
        except LookupError as exc:
            raise UnreadableCsv(
                f"unknown encoding {declared!r}: pass --encoding utf-8, gbk or gb18030"
            ) from exc
        problem = _decode_problem(source, "utf-8-sig" if name == "utf-8" else name)
        if problem is not None:
            raise UnreadableCsv(
                f"{source} is not {declared} text ({problem}): pass the encoding it was "
                "saved in with --encoding (utf-8, gbk, gb18030)"
            )
        return "utf-8-sig" if name == "utf-8" else name
    for encoding in DETECTED:
        if _decode_problem(source, encoding) is None:
            return encoding
    raise UnreadableCsv(
        f"{source} is neither UTF-8 nor GB18030/GBK text ({_decode_problem(source, 'utf-8')}): "
        "save it as CSV UTF-8, or pass the encoding it was saved in with --encoding"
    )


def _decode_problem(source: Path, encoding: str) -> str | None:
    decoder = codecs.getincrementaldecoder(encoding)()
    offset = 0
    with source.open("rb") as file:
        while True:
            chunk = file.read(_CHUNK)
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                return f"byte 0x{exc.object[exc.start]:02x} at offset {offset + exc.start}"
            if not chunk:
                return None
            offset += len(chunk)


def count_rows(source: Path, encoding: str) -> int:
    with source.open(newline="", encoding=encoding) as file:
        return max(sum(1 for _ in csv.reader(file)) - 1, 0)


async def import_csv(
    database: Database,
    source: Path,
    *,
    template: str,
    prefix: str,
    node_prefix: str,
    encoding: str,
    progress: Callable[[int], None],
) -> ImportSummary:
    """Register every row of ``source`` under ``prefix`` as the operator would."""
    prefix = parse_prefix(prefix)
    await _refuse_early(database, template=template, prefix=prefix, node_prefix=node_prefix)
    load = BulkLoad(database.write_session, Batch(OPERATOR, node_prefix))
    target = rejected_path(source)
    target.unlink(missing_ok=True)
    with source.open(newline="", encoding=encoding) as file:
        reader = csv.reader(file)
        header = next(reader, None)
        if header is None:
            raise NodeError(f"{source} is empty; the first row must name the columns")
        originals: dict[int, list[str]] = {}
        items = _items(reader, header, originals, template=template, prefix=prefix)
        with _Rejections(target, header) as rejections:
            async for results in load.run(_async(items)):
                for result in results:
                    row = originals.pop(result["line"])
                    if "error" in result:
                        rejections.add(result, row)
                progress(len(results))
    written = target if load.rejected else None
    if written is None:
        target.unlink(missing_ok=True)
    return ImportSummary(load.accepted + load.rejected, load.accepted, load.rejected, written)


async def _refuse_early(
    database: Database, *, template: str, prefix: str, node_prefix: str
) -> None:
    """A wrong template or prefix would reject every row: say so once, before any."""
    async with database.read_session() as session:
        await catalog.find(session, OPERATOR, template)
        await authorize_write(
            session, OPERATOR, parse_handle(f"{prefix}/import"), node_prefix=node_prefix
        )


def _items(
    reader: Any,
    header: list[str],
    originals: dict[int, list[str]],
    *,
    template: str,
    prefix: str,
) -> Iterator[Item]:
    names = [name.strip() for name in header]
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        originals[line] = row
        if len(row) != len(names):
            yield Item(
                line, unreadable=f"line {line} has {len(row)} cells, the header {len(names)}"
            )
            continue
        cells = {name: cell for name, cell in zip(names, row, strict=True) if cell.strip()}
        body: dict[str, Any] = {"template": template}
        suffix = cells.pop("suffix", None)
        if suffix is not None:
            body["handle"] = f"{prefix}/{suffix.strip()}"
        else:
            body["prefix"] = prefix
        for name in SPECIAL[1:]:
            if name in cells:
                body[name] = cells.pop(name).strip()
        body["attributes"] = cells
        yield Item(line, body)


async def _async(items: Iterator[Item]) -> AsyncIterator[Item]:
    for item in items:
        yield item


class _Rejections:
    """``<FILE>.rejected.csv``: line, error, reason, then the row as it was."""

    def __init__(self, path: Path, header: list[str]) -> None:
        self.path = path
        self.header = header
        self.file: TextIO | None = None
        self.writer: Any = None

    def __enter__(self) -> _Rejections:
        return self

    def add(self, result: Result, row: list[str]) -> None:
        if self.writer is None:
            self.file = self.path.open("w", newline="", encoding="utf-8")
            self.writer = csv.writer(self.file)
            self.writer.writerow(["line", "error", "reason", *self.header])
        self.writer.writerow([result["line"], result["error"], reason(result), *row])

    def __exit__(self, *_: object) -> None:
        if self.file is not None:
            self.file.close()


def reason(result: Result) -> str:
    fields = result.get("fields") or []
    if not fields:
        return str(result["detail"])
    return "; ".join(f"{f['name']} {f['message']}" for f in fields)


__all__ = [
    "ImportSummary",
    "UnreadableCsv",
    "count_rows",
    "encoding_of",
    "import_csv",
    "rejected_path",
]
