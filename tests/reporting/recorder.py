"""A stand-in for the top-level node: an HTTP server on loopback, in a thread, that verifies
each report's Ed25519 signature and records what arrived. It can be stopped and started again
on the same port, like a top-level node that goes down for a while."""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from tests.conftest import free_port


@dataclass
class Delivery:
    headers: dict[str, str]
    body: dict[str, Any]
    signature_valid: bool


@dataclass
class Recorder:
    """Records every POST; ``public_pem`` (set by the test) is the key to verify with."""

    port: int = field(default_factory=free_port)
    public_pem: str | None = None
    delay: float = 0.0  # seconds before answering (to stop a node mid-delivery)
    deliveries: list[Delivery] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/reports"

    def start(self) -> None:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(recorder.delay)
                headers = {k.lower(): v for k, v in self.headers.items()}
                delivery = Delivery(headers, json.loads(raw), recorder.verify(headers, raw))
                with recorder._lock:
                    recorder.deliveries.append(delivery)
                self.send_response(200 if delivery.signature_valid else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def verify(self, headers: dict[str, str], raw: bytes) -> bool:
        if self.public_pem is None:
            return False
        scheme, _, signature = headers.get("x-idnode-signature", "").partition(" ")
        key = load_pem_public_key(self.public_pem.encode())
        assert isinstance(key, Ed25519PublicKey)
        try:
            key.verify(base64.b64decode(signature), raw)
        except (InvalidSignature, ValueError):
            return False
        return scheme == "ed25519"

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every event received, in arrival order (a re-sent one appears again)."""
        with self._lock:
            return [e for d in self.deliveries for e in d.body["events"]]

    def accepted(self) -> list[dict[str, Any]]:
        """Events as a top-level node keeps them: from correctly signed batches (answered
        200), once per event id, in order of first arrival."""
        with self._lock:
            valid = [e for d in self.deliveries if d.signature_valid for e in d.body["events"]]
        seen: dict[str, dict[str, Any]] = {}
        for event in valid:
            seen.setdefault(event["id"], event)
        return list(seen.values())


async def eventually(
    check: Callable[[], bool | Awaitable[bool]], what: str = "", within: float = 30
) -> None:
    """Wait (without blocking the event loop) until ``check()`` holds (it may be async)."""
    deadline = time.monotonic() + within
    while True:
        outcome = check()
        if await outcome if inspect.isawaitable(outcome) else outcome:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.05)
