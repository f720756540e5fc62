"""Fixtures of the reporting tests: a recording top-level node and a node reporting to it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.settings import Settings
from tests.reporting.recorder import Recorder


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    server.start()
    yield server
    server.stop()


def reporting_to(recorder: Recorder, settings: Settings, **more: object) -> Settings:
    """``settings`` delivering to the recorder, polling and retrying quickly."""
    return settings.model_copy(
        update={
            "upstream_report_url": recorder.url,
            "report_interval": 0.05,
            "report_max_backoff": 0.5,
            **more,
        }
    )
