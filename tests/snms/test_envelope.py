"""Every error the node raises has one SNMS answer, decided by its class's attributes."""

from __future__ import annotations

import pytest

from app.api.errors import InternalError
from app.errors import ServiceUnavailable
from app.snms.envelope import error_answer, outcome
from resolver.errors import HandleAlreadyExists, IdnodeError
from tests.test_errors import _all_errors, _instance


@pytest.mark.parametrize("cls", _all_errors(), ids=lambda cls: cls.__name__)
def test_each_error_maps_by_its_status(cls: type[IdnodeError]) -> None:
    status, message = outcome(_instance(cls))
    expected = {401: -1, 403: -3}.get(cls.status, -4 if cls.status >= 500 else -2)
    assert status == expected
    assert message


def test_subclasses_keep_the_words_snms_uses() -> None:
    class AlreadyThere(HandleAlreadyExists):
        """A narrower kind of the same condition."""

    assert outcome(AlreadyThere("handle 88.999.1/X already exists")) == (-2, "标识已存在")


def test_only_a_fault_of_the_node_leaves_http_200() -> None:
    assert error_answer(InternalError("boom")).status_code == 500
    busy = error_answer(ServiceUnavailable("database down"))
    assert busy.status_code == 503
    assert busy.headers["Retry-After"] == "5"
    assert error_answer(HandleAlreadyExists("exists")).status_code == 200
