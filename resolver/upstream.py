"""Asking another node: the upstream top-level node, or an enterprise node hosting a prefix.

Speaks Handle REST over httpx (one pooled client, timeouts). Every hop carries how many hops
the request has made and which nodes it passed, so a chain of nodes pointing at each other
ends with a clear error instead of going round until something times out.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from resolver.errors import InvalidValue, NotResponsible
from resolver.record import Record
from resolver.values import HandleValue, parse_values

HOPS_HEADER = "X-Idnode-Hops"
VIA_HEADER = "X-Idnode-Via"


class UpstreamUnavailable(NotResponsible):
    """The other node did not answer in time or could not be reached."""

    status = 504


class UpstreamFailed(NotResponsible):
    """The other node answered, but with an error or something that is not Handle JSON."""

    status = 502


class ResolutionLoop(NotResponsible):
    """The request came back to a node it passed, or made too many hops."""

    status = 508


class HandleRestClient:
    """Resolves handles at other Handle REST servers."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    async def resolve(
        self, base_url: str, handle: str, *, hops: int, via: tuple[str, ...]
    ) -> Record | None:
        """The record at ``base_url``, or None when that node says it does not exist."""
        url = f"{base_url.rstrip('/')}/api/handles/{quote(handle, safe='/:@')}"
        headers = {HOPS_HEADER: str(hops + 1), VIA_HEADER: ",".join(via)}
        try:
            response = await self._http.get(url, headers=headers)
        except httpx.TimeoutException as exc:
            raise UpstreamUnavailable(f"{base_url} did not answer in time for {handle}") from exc
        except httpx.TransportError as exc:
            raise UpstreamUnavailable(f"{base_url} is unreachable: {exc}") from exc
        body = _json(response)
        code = body.get("responseCode") if isinstance(body, dict) else None
        if response.status_code == 404 and code == 100:
            return None
        if response.status_code != 200 or code != 1 or not isinstance(body, dict):
            message = body.get("message") if isinstance(body, dict) else None
            raise UpstreamFailed(
                f"{base_url} answered {response.status_code} (responseCode {code}) for {handle}"
                + (f": {message}" if message else "")
            )
        return Record(handle, _wire_values(body.get("values"), base_url))


def _json(response: httpx.Response) -> Any:
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None


def _wire_values(raw: Any, base_url: str) -> tuple[HandleValue, ...]:
    if not isinstance(raw, list):
        raise UpstreamFailed(f"{base_url} answered without a values list")
    try:
        values = parse_values(raw)
    except InvalidValue as exc:
        raise UpstreamFailed(f"{base_url} answered invalid values: {exc.message}") from exc
    stamps = {item.get("index"): item.get("timestamp", "") for item in raw}
    return tuple(
        replace(v, timestamp=str(stamps.get(v.index) or ""))
        for v in sorted(values, key=lambda v: v.index)
    )
