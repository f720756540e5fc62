"""The one error model: every error the node raises on purpose answers as its class says, on
every door, and none of them is a 500."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

import app
import gateways
import resolver
from app import errors as node
from app.api import errors as http_errors
from gateways.mqtt import protocol
from resolver.errors import IdnodeError, NotResponsible
from resolver.upstream import UpstreamUnavailable

# The one error that is a 500 by design: what a client is told of a fault in the node itself.
FAULTS = {http_errors.InternalError}


def _all_errors() -> list[type[IdnodeError]]:
    for package in (app, resolver, gateways):
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            importlib.import_module(module.name)
    found: list[type[IdnodeError]] = []
    todo = [IdnodeError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return [cls for cls in found if cls not in FAULTS]


def _instance(cls: type[IdnodeError]) -> IdnodeError:
    if issubclass(cls, node.TemplateViolation):
        return cls([{"name": "quantity", "error": "must be a number"}])
    if issubclass(cls, node.BatchRejected):
        return cls("1 of 1 items were rejected", [])
    return cls("what went wrong")


ERRORS = _all_errors()


def test_the_walk_finds_the_errors_of_every_layer() -> None:
    names = {cls.__name__ for cls in ERRORS}
    assert {"HandleNotFound", "PermissionDenied", "UpstreamUnavailable"} <= names
    assert "MalformedMessage" in names  # gateways' own
    assert len(ERRORS) > 30


@pytest.mark.parametrize("cls", ERRORS, ids=lambda cls: cls.__name__)
async def test_no_error_is_a_500_over_http(cls: type[IdnodeError]) -> None:
    application = FastAPI()
    http_errors.install(application)

    @application.get("/api/v1/raise")
    @application.get("/api/handles/{handle:path}")
    async def raise_it() -> None:
        raise _instance(cls)

    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://idnode.test") as client:
        plain = await client.get("/api/v1/raise")
        handle = await client.get("/api/handles/88.999.1/X")
    assert plain.status_code == handle.status_code == cls.status
    assert plain.status_code < 500 or plain.status_code in (502, 503, 504, 508)
    assert plain.json()["error"] == cls.name
    assert plain.json()["detail"]
    assert handle.json()["responseCode"] == cls.response_code
    if cls.retry_after is not None:
        assert plain.headers["retry-after"] == str(cls.retry_after)


@pytest.mark.parametrize("cls", ERRORS, ids=lambda cls: cls.__name__)
def test_no_error_is_an_internal_error_over_mqtt(cls: type[IdnodeError]) -> None:
    reply: dict[str, Any] = protocol.rejected("r1", _instance(cls))
    assert reply["statusCode"] != 500
    assert reply["errorCode"] != "InternalError"
    assert reply["errorMessage"]


def test_a_subclass_answers_as_its_parent_unless_it_says_otherwise() -> None:
    class ExpiredGrant(node.GrantNotFound):
        """Declared here only: a new error nobody added to any map."""

    assert (ExpiredGrant.status, ExpiredGrant.response_code) == (404, 100)
    assert ExpiredGrant.name == "ExpiredGrant"
    assert protocol.rejected(None, ExpiredGrant("gone"))["statusCode"] == 404
    assert (
        protocol.rejected(None, UpstreamUnavailable("down"))["errorCode"]
        == (protocol.rejected(None, NotResponsible("elsewhere"))["errorCode"])
    )


def test_something_that_is_not_a_domain_error_is_an_internal_error_over_mqtt() -> None:
    reply = protocol.rejected("r1", KeyError("secret internals"))
    assert (reply["statusCode"], reply["errorCode"]) == (500, "InternalError")
    assert "secret" not in reply["errorMessage"]
