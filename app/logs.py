"""Log lines: JSON (or plain text) on stderr, each carrying the id of the request it belongs to.

Standard ``logging`` with one formatter; events are dotted names (``gateways.mqtt.connected``)
and details go in ``extra``. A request's id (its sane ``X-Request-ID``, else one made here)
lives in a context variable, so every line logged while serving it carries the id without
anyone passing it around. Credentials never reach the output: fields named like secrets are
replaced, and bearer/basic credentials or URL passwords inside text are masked.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import secrets
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "REQUEST_ID_HEADER",
    "JsonFormatter",
    "RequestIdMiddleware",
    "RequestIds",
    "TextFormatter",
    "configure",
    "dict_config",
    "redact",
    "request_id",
]

REQUEST_ID_HEADER = "x-request-id"
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

_SANE_ID = re.compile(rb"[A-Za-z0-9._:+=/-]{1,128}")
_SECRET_FIELD = re.compile(r"authorization|token|password|passwd|secret|cookie|api[_-]?key", re.I)
_SECRET_TEXT = (
    # A credential after "Bearer"/"Basic": at least 6 characters, one of them not a letter
    # (so prose such as "the bearer token is not valid" stays readable).
    (
        re.compile(r"(?i)\b(bearer|basic)\s+(?=[A-Za-z]*[^A-Za-z\s])[A-Za-z0-9._~+/=:%-]{6,}"),
        r"\1 [redacted]",
    ),
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/@\s]*):[^@/\s]*@"), r"\1:[redacted]@"),
    (re.compile(r"(?i)\b(token|password|secret)=[^&\s\"']+"), r"\1=[redacted]"),
)
REDACTED = "[redacted]"
# Attributes every LogRecord has; anything else came in through ``extra``.
# (uvicorn adds color_message, a copy of the message with terminal colours.)
_STANDARD = set(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


def redact(text: str) -> str:
    """``text`` with credentials it may quote (``Bearer x``, ``mqtt://u:pw@``) masked."""
    for pattern, replacement in _SECRET_TEXT:
        text = pattern.sub(replacement, text)
    return text


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for key, value in vars(record).items():
        if key in _STANDARD or key.startswith("_"):
            continue
        if _SECRET_FIELD.search(key):
            fields[key] = REDACTED
        elif isinstance(value, str):
            fields[key] = redact(value)
        elif value is None or isinstance(value, bool | int | float):
            fields[key] = value
        else:
            fields[key] = redact(repr(value))
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, event, request_id, extras, exception."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": redact(record.getMessage()),
        }
        rid = request_id.get()
        if rid is not None:
            line["request_id"] = rid
        line.update(_fields(record))
        if record.exc_info:
            line["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``time level logger event key=value ... [request id]`` for people reading a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        parts = [stamp, record.levelname, record.name, redact(record.getMessage())]
        parts += [f"{k}={v}" for k, v in _fields(record).items()]
        rid = request_id.get()
        if rid is not None:
            parts.append(f"[{rid}]")
        text = " ".join(parts)
        if record.exc_info:
            text += "\n" + redact(self.formatException(record.exc_info))
        return text


Format = Literal["json", "text"]
_FORMATTERS: dict[str, type[logging.Formatter]] = {"json": JsonFormatter, "text": TextFormatter}


def dict_config(log_format: Format, level: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the HTTP servers (granian, uvicorn), so their own
    lines come out in the node's format too; their access logs stay off (they would cost
    more than a cached resolve)."""
    formatter = f"{_FORMATTERS[log_format].__module__}.{_FORMATTERS[log_format].__name__}"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"node": {"()": formatter}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "node"}},
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {
            name: {"handlers": [], "propagate": True}
            for name in ("uvicorn", "uvicorn.error", "_granian", "granian")
        }
        | {"uvicorn.access": {"handlers": [], "propagate": False}}
        | {name: {"level": "WARNING"} for name in _CHATTY if level.lower() != "debug"},
    }


# Libraries that log their internals at INFO: httpx each upstream lookup, the embedded
# broker (amqtt, and the `transitions` state machine it uses) some 14 lines per device
# connection. At warning unless the node logs at debug.
_CHATTY = ("httpx", "httpcore", "amqtt", "transitions")


def configure(log_format: Format, level: str) -> None:
    """Send every log line to stderr in ``log_format`` at ``level`` and above.

    Replaces plain stderr handlers a server installed; leaves other handlers (a test
    runner's capture, a file someone added) alone. Safe to call again.
    """
    root = logging.getLogger()
    root.setLevel(level.upper())
    for name in _CHATTY:
        logging.getLogger(name).setLevel(
            root.level if root.level <= logging.DEBUG else max(root.level, logging.WARNING)
        )
    wanted = _FORMATTERS[log_format]
    for handler in list(root.handlers):
        if type(handler) is logging.StreamHandler:  # not subclasses: test captures are those
            if isinstance(handler.formatter, wanted):
                return
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(wanted())
    root.addHandler(handler)


class RequestIds:
    """Request ids: the caller's ``X-Request-ID`` when sane, else this process's next one.

    Made from a random per-process token and a counter, which costs far less than a UUID on
    the resolve hot path and stays unique across workers and restarts.
    """

    def __init__(self) -> None:
        self._token = f"{secrets.token_hex(4)}{os.getpid():x}-"
        self._next = itertools.count(1)

    def take(self, offered: bytes | None) -> str:
        if offered is not None and _SANE_ID.fullmatch(offered):
            return offered.decode("ascii")
        return f"{self._token}{next(self._next):x}"


class RequestIdMiddleware:
    """Gives each HTTP request an id, set for its log lines and echoed in ``X-Request-ID``."""

    def __init__(self, app: ASGIApp, ids: RequestIds | None = None) -> None:
        self.app = app
        self.ids = ids or RequestIds()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered = next((v for k, v in scope["headers"] if k == b"x-request-id"), None)
        rid = self.ids.take(offered)
        header = (b"x-request-id", rid.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        token = request_id.set(rid)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)
