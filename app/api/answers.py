"""How a resolved identifier is answered over HTTP — one function, used by both the lean path
(``app/api/fast.py``) and the FastAPI route, so they cannot drift apart."""

from __future__ import annotations

from app.api.errors import handle_error_body
from resolver.cache import Entry
from resolver.errors import HandleNotFound

JSON = "application/json"
Headers = list[tuple[str, str]]


def cache_control(entry: Entry, now: float, *, public: bool) -> str:
    """Let browsers and CDNs keep public answers for what is left of the entry's lifetime."""
    if not public:
        return "private, no-cache"
    if entry.stale:
        return "public, max-age=0"
    return f"public, max-age={entry.remaining(now)}"


def answer(
    body: bytes,
    etag: str,
    control: str,
    if_none_match: str | None,
    *,
    stale: bool = False,
) -> tuple[int, Headers, bytes]:
    """Status, headers and body of a successful resolve (or 304 when the client has it)."""
    headers: Headers = [("etag", etag), ("cache-control", control)]
    if stale:
        headers.append(("x-idnode-stale", "true"))
    if if_none_match is not None and _matches(if_none_match, etag):
        return 304, headers, b""
    headers += [("content-type", JSON), ("content-length", str(len(body)))]
    return 200, headers, body


def public_answer(
    entry: Entry, now: float, if_none_match: str | None
) -> tuple[int, Headers, bytes]:
    """The cached public answer of an identifier, as anonymous callers get it."""
    control = cache_control(entry, now, public=True)
    return answer(entry.body, entry.etag, control, if_none_match, stale=entry.stale)


def _matches(if_none_match: str, etag: str) -> bool:
    if if_none_match.strip() == "*":
        return True
    candidates = (tag.strip().removeprefix("W/") for tag in if_none_match.split(","))
    return etag in candidates


def error_answer(status: int, code: int, handle: str, message: str) -> tuple[int, Headers, bytes]:
    """A Handle API error, as ``app.api.errors`` renders it for the routed path."""
    body = handle_error_body(code, handle, message)
    return status, [("content-length", str(len(body))), ("content-type", JSON)], body


def not_found_answer(handle: str) -> tuple[int, Headers, bytes]:
    """The 404 of an identifier known not to exist (a negative cache entry)."""
    return error_answer(
        HandleNotFound.status,
        HandleNotFound.response_code,
        handle,
        HandleNotFound.of(handle).message,
    )
