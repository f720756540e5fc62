"""Log formatting: request ids, masking of credentials, the format and level settings."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from app.logs import JsonFormatter, RequestIds, TextFormatter, configure, request_id
from app.settings import Settings


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    logger = logging.getLogger("tests.logs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, out
    logger.removeHandler(handler)


def test_json_line_has_request_id_and_no_credentials(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = captured
    logger.handlers[0].setFormatter(JsonFormatter())
    token = request_id.set("req-1")
    try:
        logger.info(
            "upstream.failed Bearer abc.DEF-123456",
            extra={"url": "mqtt://gw:pa55word@broker:1883", "password": "hunter22", "tries": 3},
        )
    finally:
        request_id.reset(token)
    line = json.loads(out.getvalue())
    assert line["request_id"] == "req-1"
    assert line["event"] == "upstream.failed Bearer [redacted]"
    assert line["url"] == "mqtt://gw:[redacted]@broker:1883"
    assert line["password"] == "[redacted]"
    assert line["tries"] == 3
    assert "pa55word" not in out.getvalue()
    assert "hunter22" not in out.getvalue()


def test_text_format_is_one_readable_line(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, out = captured
    logger.handlers[0].setFormatter(TextFormatter())
    logger.warning("cache.listener.reconnecting", extra={"token": "idn_secret1"})
    text = out.getvalue().strip()
    assert "WARNING tests.logs cache.listener.reconnecting token=[redacted]" in text
    assert "idn_secret1" not in text


def test_configure_replaces_a_servers_plain_handler_only() -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    server_handler = logging.StreamHandler(io.StringIO())  # what granian/uvicorn install
    root.addHandler(server_handler)
    try:
        configure("text", "warning")
        configure("text", "warning")  # again: still one handler of ours
        ours = [h for h in root.handlers if type(h) is logging.StreamHandler]
        assert server_handler not in root.handlers
        assert len(ours) == 1
        assert isinstance(ours[0].formatter, TextFormatter)
        assert root.level == logging.WARNING
        kept = [h for h in saved_handlers if type(h) is not logging.StreamHandler]
        assert all(h in root.handlers for h in kept)  # pytest's capture handlers stay
    finally:
        for handler in list(root.handlers):
            if handler not in saved_handlers:
                root.removeHandler(handler)
        for handler in saved_handlers:
            if handler not in root.handlers:
                root.addHandler(handler)
        root.setLevel(saved_level)


def test_request_ids_honour_sane_ones_only() -> None:
    ids = RequestIds()
    assert ids.take(b"abc-123_x.y:z") == "abc-123_x.y:z"
    made = {ids.take(None), ids.take(b"has space"), ids.take(b"x" * 129), ids.take(b"")}
    assert len(made) == 4  # each request a new one
    assert all(" " not in rid and 0 < len(rid) <= 40 for rid in made)


def test_log_settings_are_checked() -> None:
    assert Settings(log_format="TEXT", log_level="Warning").log_level == "warning"
    with pytest.raises(ValidationError, match="log_format"):
        Settings(log_format="xml")
