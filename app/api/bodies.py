"""Request bodies are bounded before they are read: in size (``IDNODE_MAX_REQUEST_BYTES``) and
in time (``IDNODE_REQUEST_BODY_TIMEOUT``), for every endpoint, typed JSON bodies included.

Neither granian nor uvicorn bounds how long a request body may take (granian times out only
the headers), and FastAPI's own ``max_body_size`` answers with a body of its own and a limit
fixed when the routes are declared. So one ``receive`` wrapper does both here: a declared
``Content-Length`` over the limit is refused at the first read, a chunked body as soon as its
count passes the limit, and a body that has not arrived by the deadline is refused with 408.
The error is raised where the endpoint reads, so it is answered by the one error map
(``app/api/errors.py``) like any other; the answer asks the server to close the connection,
so the rest of the body is never read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import RequestTimeout, RequestTooLarge


class BodyGuard:
    """Wraps ``receive`` with the size and time bounds; ``streamed`` paths (the batch
    endpoint, which reads its own larger limit line by line and needs credentials first) are
    left to bound their bodies themselves."""

    def __init__(
        self, app: ASGIApp, *, limit: int, timeout: float, streamed: Collection[str] = ()
    ) -> None:
        self.app = app
        self.limit = limit
        self.timeout = timeout
        self.streamed = frozenset(streamed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.streamed:
            await self.app(scope, receive, send)
            return
        deadline = asyncio.get_running_loop().time() + self.timeout
        body = _Body(receive, self.limit, deadline, _declared(scope))
        await self.app(scope, body.receive, body.send_to(send))


class _Body:
    """One request's body as the endpoint reads it, refused past its size or deadline.

    Once a refused request has been answered, the server's ``receive`` and ``send`` are let
    go. The refusal is an exception, and exceptions leave reference cycles (traceback, frames,
    the framework's ``Request``) that live until the garbage collector runs; granian keeps a
    connection open, reading the rest of the body, for as long as anything still holds its
    ``receive``/``send`` pair, so a cycle reaching them would keep a slow client's connection
    open despite the ``Connection: close``. Nothing reachable from the cycles reaches them.
    """

    def __init__(self, receive: Receive, limit: int, deadline: float, declared: int | None) -> None:
        self._receive: Receive | None = receive
        self._send: Send | None = None
        self._limit = limit
        self._deadline = deadline
        self._declared = declared
        self._size = 0
        self._done = False
        self.refused = False

    def send_to(self, send: Send) -> Send:
        """The ``send`` for the app: a refused request's answer asks to close the connection,
        and once it is complete the server is let go."""
        self._send = send
        return self._forward

    async def _forward(self, message: Message) -> None:
        if self._send is None:
            raise RuntimeError("the response to a refused request is already complete")
        if self.refused and message["type"] == "http.response.start":
            headers = [h for h in message.get("headers", []) if h[0].lower() != b"connection"]
            message = {**message, "headers": [*headers, (b"connection", b"close")]}
        await self._send(message)
        answered = message["type"] == "http.response.body" and not message.get("more_body")
        if self.refused and answered:
            self._send = self._receive = None

    async def receive(self) -> Message:
        if self._receive is None:  # refused and answered: the connection is closing
            return {"type": "http.disconnect"}
        if self._done:  # after the body: waiting for a disconnect is not bounded here
            return await self._receive()
        if self._declared is not None and self._declared > self._limit:
            self._refuse()
            raise RequestTooLarge(
                f"request body of {self._declared} bytes exceeds the limit of {self._limit}"
            )
        try:
            async with asyncio.timeout_at(self._deadline):
                message = await self._receive()
        except TimeoutError:
            self._refuse()
            raise RequestTimeout(
                "the request body did not arrive in time; send it at once, or less of it"
            ) from None
        if message["type"] == "http.request":
            self._size += len(message.get("body", b""))
            self._done = not message.get("more_body", False)
            if self._size > self._limit:
                self._refuse()
                raise RequestTooLarge(f"request body exceeds the limit of {self._limit} bytes")
        else:
            self._done = True
        return message

    def _refuse(self) -> None:
        self.refused = True
        self._done = True


def _declared(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None
