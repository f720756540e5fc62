"""``POST /api/v1/identifiers:batch``: many registrations in one call.

The body is NDJSON (``Content-Type: application/x-ndjson``, one request per line, read as it
streams in) or a JSON array (``application/json``, read whole). Results are kept in a spooled
file while the batch runs (so a million results do not sit in memory) and answered when the
body has been read: NDJSON results (then a ``{"summary"}`` line) for NDJSON, a JSON document
``{"accepted", "rejected", "results"}`` for a JSON array.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Iterator
from typing import IO, Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from app.api.deps import CallerDep, NodeDep, read_body, refuse_declared_size, require_credentials
from app.errors import BatchRejected, InvalidRequest, RequestTooLarge
from app.node import Node
from app.registry.identifiers import Batch, BulkLoad, Item
from app.storage.invalidation import evict_touched

router = APIRouter(prefix="/api/v1", tags=["Identifiers"])
NDJSON = "application/x-ndjson"
NDJSON_TYPES = {NDJSON, "application/jsonl", "application/jsonlines", "application/x-jsonlines"}
SPOOL_BYTES = 8 * 1024 * 1024  # results beyond this go to a temporary file
READ_BLOCK = 256 * 1024
MAX_LINE = 1024 * 1024  # one registration request; far more than any template allows
# Bounds its body itself (IDNODE_BATCH_MAX_BYTES), line by line: see app/api/bodies.py.
BATCH_PATH = f"{router.prefix}/identifiers:batch"


@router.post(
    "/identifiers:batch",
    summary="Register many identifiers (NDJSON or a JSON array)",
    responses={200: {"content": {NDJSON: {}, "application/json": {}}}},
)
async def register_batch(
    request: Request,
    node: NodeDep,
    principal: CallerDep,
    atomic: Annotated[
        bool, Query(description="All or nothing: write only if every item is accepted.")
    ] = False,
) -> StreamingResponse:
    """Each item is the body of one ``POST /api/v1/identifiers`` and is checked the same
    way; one result per item in order, ``{"line", "handle", "created", "attributes"}`` (the
    attributes by name, typed as the single registration answers them) or ``{"line",
    "error", "detail", "fields"}``. Without ``atomic`` accepted items are written in chunks
    of 10,000 whatever happens to the others; with ``atomic=true`` a single rejected item
    means nothing is written (422 ``BatchRejected`` listing the rejected items)."""
    require_credentials(principal)
    streamed = _media_type(request) in NDJSON_TYPES
    limit = node.settings.batch_max_bytes
    refuse_declared_size(request, limit)
    load = BulkLoad(
        node.database.write_session,
        Batch(principal, node.settings.node_prefix),
        atomic=atomic,
        chunk_rows=node.settings.batch_chunk_rows,
        after_commit=lambda session: evict_touched(session, node.resolver.cache),
    )
    items = _ndjson_items(request, node) if streamed else await _array_items(request, node)
    spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115
    stopped: RequestTooLarge | None = None
    created = 0
    try:
        async for results in load.run(items):
            spool.writelines(orjson.dumps(r) + b"\n" for r in results)
            created += sum(1 for r in results if r.get("created"))
    except RequestTooLarge as exc:
        if atomic:
            spool.close()
            raise
        stopped = exc  # what came before was processed and is answered below
    except BaseException:
        spool.close()
        raise
    if atomic and not load.committed:
        errors = [r for r in _results(spool) if "error" in r]
        spool.close()
        raise BatchRejected(
            f"{load.rejected} of {load.accepted + load.rejected} items were rejected; "
            "atomic=true, so nothing was written",
            errors,
        )
    node.activity.registrations["batch"] += created  # all written, or (atomic) committed
    summary: dict[str, Any] = {"accepted": load.accepted, "rejected": load.rejected}
    if stopped is not None:
        summary["stopped"] = {"error": "RequestTooLarge", "detail": stopped.message}
    status = 413 if stopped is not None else 200
    if streamed:
        return StreamingResponse(_ndjson_answer(spool, summary), status, media_type=NDJSON)
    return StreamingResponse(_json_answer(spool, summary), status, media_type="application/json")


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def _ndjson_items(request: Request, node: Node) -> AsyncIterator[Item]:
    """One item per non-blank line, parsed as the body streams in; a line that is not JSON
    becomes that item's error."""
    limit, most = node.settings.batch_max_bytes, node.settings.batch_max_items
    size = line = count = 0
    rest = b""
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestTooLarge(
                f"request body exceeds the limit of {limit} bytes (stopped at line {line + 1})"
            )
        *lines, rest = (rest + chunk).split(b"\n")
        if len(rest) > MAX_LINE:
            raise RequestTooLarge(f"line {line + len(lines) + 1} is longer than {MAX_LINE} bytes")
        for raw in lines:
            line += 1
            if raw.strip():
                count += 1
                if count > most:
                    raise RequestTooLarge(f"more than {most} items in one batch (line {line})")
                yield _parsed(line, raw)
    if rest.strip():
        if count + 1 > most:
            raise RequestTooLarge(f"more than {most} items in one batch (line {line + 1})")
        yield _parsed(line + 1, rest)


def _parsed(line: int, raw: bytes) -> Item:
    try:
        return Item(line, orjson.loads(raw))
    except orjson.JSONDecodeError as exc:
        return Item(line, unreadable=f"line {line} is not valid JSON: {exc}")


async def _array_items(request: Request, node: Node) -> AsyncIterator[Item]:
    body = await read_body(request, node.settings.batch_max_bytes)
    if not body:
        raise InvalidRequest("the request body is empty; a JSON array was expected")
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"the request body is not valid JSON: {exc}") from exc
    del body
    if not isinstance(parsed, list):
        raise InvalidRequest(
            "the body must be a JSON array of registration requests, or NDJSON sent with "
            f"Content-Type: {NDJSON}"
        )
    most = node.settings.batch_max_items
    if len(parsed) > most:
        raise RequestTooLarge(f"{len(parsed)} items in one batch; at most {most}")
    return _listed(parsed)


async def _listed(parsed: list[Any]) -> AsyncIterator[Item]:
    for position in range(len(parsed)):
        body, parsed[position] = parsed[position], None  # let each go once it is queued
        yield Item(position + 1, body)


def _results(spool: IO[bytes]) -> Iterator[dict[str, Any]]:
    spool.seek(0)
    for raw in spool:
        yield orjson.loads(raw)


def _ndjson_answer(spool: IO[bytes], summary: dict[str, Any]) -> Iterator[bytes]:
    with spool:
        spool.seek(0)
        while block := spool.read(READ_BLOCK):
            yield block
    yield orjson.dumps({"summary": summary}) + b"\n"


def _json_answer(spool: IO[bytes], summary: dict[str, Any]) -> Iterator[bytes]:
    yield orjson.dumps(summary)[:-1] + b',"results":['
    with spool:
        spool.seek(0)
        separator = b""
        while lines := spool.readlines(READ_BLOCK):
            yield separator + b",".join(raw.rstrip(b"\n") for raw in lines)
            separator = b","
    yield b"]}"
