"""A request body that does not arrive in time is refused (408) and its connection closed, on
both servers ``idnode serve`` can run: a slow client, even one that keeps trickling its body,
cannot hold connections open, and other clients are served meanwhile."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import LiveNode, running_node

pytestmark = pytest.mark.slow

TIMEOUT = 2  # IDNODE_REQUEST_BODY_TIMEOUT for the node under test
CONNECTIONS = 10
PATIENCE = 20.0  # seconds the test waits for each answer, well past the timeout
PROMPT = 2.0  # seconds a normal request may take while the slow ones are pending


@pytest.fixture(params=["granian", "uvicorn"])
def slow_node(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveNode]:
    database = f"sqlite+aiosqlite:///{tmp_path / 'slow.db'}"
    options = ("--server", request.param, "--no-broker")
    with running_node(tmp_path, database, *options, request_body_timeout=str(TIMEOUT)) as node:
        yield node


def _slow_request(port: int) -> socket.socket:
    """A connection that sends its headers and the start of a 100 kB body, then waits."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=PATIENCE)
    sock.sendall(
        b"POST /api/v1/grants HTTP/1.1\r\nHost: idnode.test\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
        b'{"grantee": "'
    )
    return sock


def _trickle(sockets: list[socket.socket], stop: threading.Event) -> None:
    """Keep sending one more byte of each body, as a slow client does, until ``stop``."""
    while not stop.wait(0.2):
        for sock in sockets:
            with contextlib.suppress(OSError):  # closed by the node: that one is done
                sock.sendall(b"x")


def _served_promptly(url: str) -> None:
    started = time.monotonic()
    answer = httpx.get(f"{url}/healthz", timeout=PATIENCE)
    assert answer.status_code == 200
    assert time.monotonic() - started < PROMPT


def _answer(sock: socket.socket, deadline: float) -> tuple[bytes, bool]:
    """What the node answered by ``deadline``, and whether it closed the connection (a
    reset, too: the node closed while the trickle was still sending)."""
    received = b""
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            return received, True
        if not chunk:
            return received, True
        received += chunk
    return received, False


def test_slow_bodies_are_answered_408_and_their_connections_closed(slow_node: LiveNode) -> None:
    sockets = [_slow_request(slow_node.port) for _ in range(CONNECTIONS)]
    stop = threading.Event()
    trickling = threading.Thread(target=_trickle, args=(sockets, stop), daemon=True)
    trickling.start()
    deadline = time.monotonic() + PATIENCE
    try:
        _served_promptly(slow_node.url)  # while the slow bodies are still arriving
        answers = [_answer(sock, deadline) for sock in sockets]
        _served_promptly(slow_node.url)  # and after they were refused
    finally:
        stop.set()
        trickling.join()
        for sock in sockets:
            sock.close()
    for answer, closed in answers:
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert b"RequestTimeout" in answer
        assert closed, answer
