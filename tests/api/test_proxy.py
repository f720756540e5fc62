"""The proxy: what a scanned QR code hits (docs/domain.md section 3)."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest

from tests.conftest import bearer, create_enterprise, url_value

SLACK = timedelta(seconds=5)


async def register(
    client: httpx.AsyncClient, enterprise: dict[str, Any], suffix: str, values: list[Any]
) -> str:
    handle = f"{enterprise['prefix']}/{suffix}"
    created = await client.put(
        f"/api/handles/{quote(handle)}", json={"values": values}, headers=bearer(enterprise)
    )
    assert created.status_code == 201, created.text
    assert created.json()["handle"] == handle
    return handle


def assert_html(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "<html" in page.lower()
    return page


# --- redirect ---


async def test_redirects_to_the_lowest_index_url_with_expires_from_the_smallest_ttl(
    client: httpx.AsyncClient,
) -> None:
    dairy = await create_enterprise(client)
    handle = await register(
        client,
        dairy,
        "MILK-2026-000123",
        [
            {**url_value("https://trace.example.com/second", 7), "ttl": 3600},
            {**url_value("https://trace.example.com/first", 3), "ttl": 7200},
            {"index": 5, "type": "BATCH", "data": "B-1", "ttl": 600},
        ],
    )

    before = datetime.now(UTC)
    scanned = await client.get(f"/{handle}")
    after = datetime.now(UTC)

    assert scanned.status_code == 302, scanned.text
    assert scanned.headers["location"] == "https://trace.example.com/first"
    expires = parsedate_to_datetime(scanned.headers["expires"])
    assert expires.tzinfo is not None
    assert before + timedelta(seconds=600) - SLACK <= expires
    assert expires <= after + timedelta(seconds=600) + SLACK


async def test_ttl_zero_expires_now(client: httpx.AsyncClient) -> None:
    dairy = await create_enterprise(client)
    handle = await register(
        client, dairy, "FRESH", [{**url_value("https://trace.example.com/fresh"), "ttl": 0}]
    )
    scanned = await client.get(f"/{handle}")
    assert scanned.status_code == 302
    expires = parsedate_to_datetime(scanned.headers["expires"])
    assert abs(expires - datetime.now(UTC)) <= SLACK


async def test_redirect_follows_the_case_insensitive_prefix(client: httpx.AsyncClient) -> None:
    dairy = await create_enterprise(client, prefix="ab12")
    handle = await register(client, dairy, "Lot-7", [url_value("https://trace.example.com/7")])
    assert handle == "88.999.AB12/Lot-7"
    scanned = await client.get("/88.999.ab12/Lot-7")
    assert scanned.status_code == 302
    assert scanned.headers["location"] == "https://trace.example.com/7"
    # The suffix is case-sensitive.
    assert_html(await client.get("/88.999.AB12/LOT-7"), 404)


# --- pages ---


async def test_noredirect_shows_the_public_values_only(client: httpx.AsyncClient) -> None:
    dairy = await create_enterprise(client)
    handle = await register(
        client,
        dairy,
        "MILK-PAGE",
        [
            url_value("https://trace.example.com/milk/page"),
            {"index": 2, "type": "BATCH_NO", "data": "B-2026-11-0042"},
            {"index": 3, "type": "COST_NOTE", "data": "internal-cost-917", "permissions": "1100"},
        ],
    )
    page = assert_html(await client.get(f"/{handle}?noredirect"), 200)

    assert handle in page
    assert "BATCH_NO" in page
    assert "B-2026-11-0042" in page
    assert 'href="https://trace.example.com/milk/page"' in page
    assert "COST_NOTE" not in page
    assert "internal-cost-917" not in page


async def test_without_url_value_the_page_is_shown(client: httpx.AsyncClient) -> None:
    dairy = await create_enterprise(client)
    handle = await register(
        client,
        dairy,
        "NO-URL",
        [
            {"index": 1, "type": "EMAIL", "data": "qa@dairy.example.com"},
            {"index": 2, "type": "SECRET", "data": "hidden-915", "permissions": "1100"},
        ],
    )
    page = assert_html(await client.get(f"/{handle}"), 200)
    assert "qa@dairy.example.com" in page
    assert "hidden-915" not in page


async def test_url_value_that_is_not_public_is_not_followed(client: httpx.AsyncClient) -> None:
    dairy = await create_enterprise(client)
    handle = await register(
        client,
        dairy,
        "PRIVATE-URL",
        [{**url_value("https://internal.example.com/secret"), "permissions": "1100"}],
    )
    answer = await client.get(f"/{handle}")
    page = assert_html(answer, 200)
    assert "internal.example.com" not in page
    assert "location" not in answer.headers


async def test_unknown_handle_is_a_404_page(client: httpx.AsyncClient) -> None:
    dairy = await create_enterprise(client)
    for path in (f"/{dairy['prefix']}/NOT-THERE", f"/{dairy['prefix']}/NOT-THERE?noredirect"):
        page = assert_html(await client.get(path), 404)
        assert "NOT-THERE" in page


@pytest.mark.parametrize(
    "path", ["/88..1/X", "/88.999.1", "/88.9%2099/X", "/88.999.1/", "/88.999.1/CTL%0AX"]
)
async def test_invalid_handle_is_a_400_page(client: httpx.AsyncClient, path: str) -> None:
    assert_html(await client.get(path), 400)


# --- hostile content ---

SCRIPT = "<script>alert(1)</script>"


async def test_hostile_values_are_escaped(client: httpx.AsyncClient) -> None:
    dairy = await create_enterprise(client)
    handle = await register(
        client,
        dairy,
        "HOSTILE",
        [
            {"index": 1, "type": "NOTE", "data": SCRIPT},
            {"index": 2, "type": "<img/src=x/onerror=alert(2)>", "data": "typed"},
            {"index": 3, "type": "URL", "data": 'https://trace.example.com/"onmouseover="alert(3)'},
        ],
    )
    page = assert_html(await client.get(f"/{handle}?noredirect"), 200)

    assert SCRIPT not in page
    assert html.escape(SCRIPT, quote=False) in page
    assert "<img/src=x/onerror=alert(2)>" not in page
    assert "&lt;img/src=x/onerror=alert(2)&gt;" in page
    assert '"onmouseover="' not in page
    assert "<script" not in page.lower()


async def test_hostile_suffix_is_escaped_on_every_page(client: httpx.AsyncClient) -> None:
    dairy = await create_enterprise(client)
    suffix = '"><script>alert(4)</script>'
    handle = await register(client, dairy, suffix, [{"index": 1, "type": "NOTE", "data": "x"}])
    shown = assert_html(await client.get("/" + quote(handle)), 200)
    missing = assert_html(await client.get("/" + quote(f"{dairy['prefix']}/{suffix}-nope")), 404)
    invalid = assert_html(await client.get("/" + quote("88..1/" + suffix)), 400)
    for page in (shown, missing, invalid):
        assert "<script" not in page.lower()
        assert "alert(4)" in page  # shown, as text


@pytest.mark.parametrize(
    "target",
    [
        "javascript:alert(document.cookie)",
        "JavaScript:alert(1)",
        " javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
    ],
)
async def test_non_web_url_values_are_not_links(client: httpx.AsyncClient, target: str) -> None:
    dairy = await create_enterprise(client)
    handle = await register(
        client,
        dairy,
        "SCHEMES",
        [url_value(target, 1), url_value("https://trace.example.com/ok", 2)],
    )
    page = assert_html(await client.get(f"/{handle}?noredirect"), 200)
    hrefs = re.findall(r"""href\s*=\s*["']?([^"'\s>]*)""", page, flags=re.IGNORECASE)
    assert "https://trace.example.com/ok" in hrefs  # links are rendered at all
    for href in hrefs:
        decoded = html.unescape(href).strip().lower()
        assert not decoded.startswith(("javascript:", "data:", "vbscript:")), href
    assert html.escape(target.strip(), quote=False)[:10] in page  # still shown, as text


# --- the resolve form ---


async def test_root_shows_a_form(client: httpx.AsyncClient) -> None:
    page = assert_html(await client.get("/"), 200)
    assert re.search(r"<form[^>]*action=\"/\"", page)
    assert 'name="hdl"' in page


async def test_form_submission_redirects_to_the_handle(client: httpx.AsyncClient) -> None:
    dairy = await create_enterprise(client)
    handle = await register(client, dairy, "FORM-1", [url_value("https://trace.example.com/f")])

    answer = await client.get("/", params={"hdl": handle})
    assert answer.status_code in {302, 303, 307}
    assert answer.headers["location"] == f"/{handle}"

    padded = await client.get("/", params={"hdl": f"  {handle}  "})
    assert padded.headers["location"] == f"/{handle}"

    followed = await client.get(answer.headers["location"])
    assert followed.status_code == 302
    assert followed.headers["location"] == "https://trace.example.com/f"


async def test_form_keeps_query_characters_in_the_suffix(client: httpx.AsyncClient) -> None:
    dairy = await create_enterprise(client)
    handle = await register(client, dairy, "LOT?1#2", [url_value("https://trace.example.com/q")])
    answer = await client.get("/", params={"hdl": handle})
    location = answer.headers["location"]
    assert "?" not in location
    assert "#" not in location
    followed = await client.get(location)
    assert followed.status_code == 302, followed.text
    assert followed.headers["location"] == "https://trace.example.com/q"


async def raw_get(app: Any, path: str, query: dict[str, str]) -> tuple[int, dict[str, str]]:
    """One GET straight through ASGI: httpx itself refuses to parse a Location of "//host"."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": urlencode(query).encode(),
        "headers": [(b"host", b"idnode.test")],
        "server": ("idnode.test", 80),
        "client": ("127.0.0.1", 4321),
        "root_path": "",
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    return int(start["status"]), headers


@pytest.mark.parametrize(
    "hdl", ["//evil.example.com", "/evil.example.com", "///evil.example.com", "/\\evil.example.com"]
)
async def test_form_cannot_redirect_off_site(app: Any, hdl: str) -> None:
    status, headers = await raw_get(app, "/", {"hdl": hdl})
    if status in {301, 302, 303, 307, 308}:
        location = headers["location"]
        # A path on this node: one leading slash, never "//host" (scheme-relative, which
        # browsers follow to another site, as they do "///host" and "/\\host").
        assert location.startswith("/"), location
        assert not location.startswith(("//", "/\\")), location
    else:
        assert status == 400, (status, headers)


# --- the API description ---


async def test_docs_and_openapi_describe_the_api(client: httpx.AsyncClient) -> None:
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "text/html" in docs.headers["content-type"]
    assert "openapi.json" in docs.text

    spec = await client.get("/openapi.json")
    assert spec.status_code == 200
    paths = spec.json()["paths"]
    assert {"get", "put", "post", "delete"} <= set(paths["/api/handles/{handle}"])
    assert "/api/v1/enterprises" in paths
    assert {"get", "post"} <= set(paths["/api/v1/enterprises"])


# --- as it was at a past time ---


async def test_the_page_shows_the_public_values_as_they_were_at_a_past_time(
    client: httpx.AsyncClient,
) -> None:
    dairy = await create_enterprise(client)
    batch = {"index": 5, "type": "BATCH", "data": {"format": "string", "value": "OLD-BATCH"}}
    hidden = {
        "index": 6,
        "type": "SUPPLIER",
        "data": {"format": "string", "value": "HIDDEN-SUPPLIER"},
        "permissions": "1100",
    }
    before = datetime.now(UTC) - timedelta(seconds=1)
    handle = await register(
        client, dairy, "MILK-AT", [url_value("https://trace.example.com/v1"), batch, hidden]
    )
    between = datetime.now(UTC)
    changed = await client.put(
        f"/api/handles/{quote(handle)}?index=5",
        json={"values": [{**batch, "data": {"format": "string", "value": "NEW-BATCH"}}]},
        headers=bearer(dairy),
    )
    assert changed.status_code == 200, changed.text

    then = assert_html(await client.get(f"/{handle}", params={"at": iso(between)}), 200)
    assert "OLD-BATCH" in then
    assert "NEW-BATCH" not in then
    assert "As it was at" in then
    assert "HIDDEN-SUPPLIER" not in then  # the page shows public values only, then as now
    now = assert_html(await client.get(f"/{handle}?noredirect"), 200)
    assert "NEW-BATCH" in now
    assert "As it was at" not in now

    not_yet = assert_html(await client.get(f"/{handle}", params={"at": iso(before)}), 404)
    assert "did not exist" in html.unescape(not_yet)
    garbled = assert_html(await client.get(f"/{handle}", params={"at": "last tuesday"}), 400)
    assert "ISO 8601" in html.unescape(garbled)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
