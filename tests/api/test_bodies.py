"""Every request body is bounded before it is read (``app/api/bodies.py``): typed JSON bodies
too, anonymous or not, whatever the endpoint.

Runs on both backends (``settings`` is parametrised over SQLite and PostgreSQL).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from app.settings import Settings
from tests.conftest import OPERATOR_TOKEN, node_client

LIMIT = 2048
CHUNK = b" " * 1024
CHUNKS = 1024  # 1 MiB, 512 times the limit, if the node read it all

# Every endpoint with a typed (pydantic) JSON body, and the untyped ones beside them.
BODIES = [
    ("POST", "/api/v1/grants"),
    ("POST", "/api/v1/reader-tokens"),
    ("POST", "/api/v1/enterprises"),
    ("PATCH", "/api/v1/enterprises/88.999.1"),
    ("POST", "/api/v1/identifiers"),
    ("PATCH", "/api/v1/identifiers/88.999.1/LOT-1"),
    ("POST", "/api/v1/enterprises/88.999.1/provisioning-keys"),
    ("POST", "/api/v1/templates"),
    ("PATCH", "/api/v1/templates/food.batch/items/origin"),
    ("PUT", "/api/v1/enterprises/88.999.1/nbiot/onenet"),
    ("POST", "/api/v1/enterprises/88.999.1/lorawan/applications"),
    ("PUT", "/api/handles/88.999.1/LOT-1"),
]


@pytest.fixture
async def small_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A node that accepts request bodies of 2 KiB at most."""
    small = Settings(
        database_url=settings.database_url, admin_token=OPERATOR_TOKEN, max_request_bytes=LIMIT
    )
    async with node_client(small, emptied=True) as http:
        yield http


class Sent:
    """A request body streamed in chunks, counting how many the node pulled."""

    def __init__(self) -> None:
        self.pulled = 0

    async def chunks(self) -> AsyncIterator[bytes]:
        yield b'{"name": "'
        for _ in range(CHUNKS):
            self.pulled += 1
            yield CHUNK
        yield b'"}'


def assert_too_large(answer: httpx.Response) -> None:
    assert answer.status_code == 413, answer.text
    body = answer.json()
    detail = body.get("detail") or body.get("message")
    assert str(LIMIT) in detail, body
    assert answer.headers["connection"] == "close"


@pytest.mark.parametrize(("method", "path"), BODIES)
async def test_a_chunked_body_over_the_limit_is_413_before_it_is_read(
    small_client: httpx.AsyncClient, method: str, path: str
) -> None:
    sent = Sent()
    answer = await small_client.request(
        method, path, content=sent.chunks(), headers={"Content-Type": "application/json"}
    )
    assert answer.request.headers["transfer-encoding"] == "chunked"
    assert_too_large(answer)
    assert sent.pulled <= LIMIT // len(CHUNK) + 1, sent.pulled


@pytest.mark.parametrize(("method", "path"), BODIES)
async def test_a_declared_length_over_the_limit_is_413_with_nothing_read(
    small_client: httpx.AsyncClient, method: str, path: str
) -> None:
    sent = Sent()
    length = len(CHUNK) * CHUNKS + 12
    answer = await small_client.request(
        method,
        path,
        content=sent.chunks(),
        headers={"Content-Type": "application/json", "Content-Length": str(length)},
    )
    assert_too_large(answer)
    assert sent.pulled == 0


async def test_a_typed_body_under_the_limit_is_read(small_client: httpx.AsyncClient) -> None:
    """The 413s above are the limit's doing: the same endpoints answer small bodies."""
    answer = await small_client.post(
        "/api/v1/reader-tokens",
        json={"name": "regulator"},
        headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"},
    )
    assert answer.status_code != 413
    assert answer.status_code < 500, answer.text
