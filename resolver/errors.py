"""The node's one error model, and the errors of the Handle protocol.

Every error the node raises on purpose derives from ``IdnodeError`` and carries, as class
attributes, how each door answers it: ``status`` (HTTP, MQTT ``statusCode``),
``response_code`` (the Handle ``responseCode``) and ``name`` (a stable name for ``"error"``
fields and logs). A subclass inherits its parent's answer unless it says otherwise, so a new
error is never a 500 by accident. The doors (``app/api/errors.py``, the MQTT replies, later
protocols) read these attributes and nothing else; see docs/architecture.md.
"""

from __future__ import annotations

from typing import ClassVar


class IdnodeError(Exception):
    """Base of every error the node raises on purpose (never a 500)."""

    status: ClassVar[int] = 400
    response_code: ClassVar[int] = 2
    name: ClassVar[str] = "IdnodeError"  # the class name unless a class says otherwise
    retry_after: ClassVar[int | None] = None  # seconds, for errors a client should retry

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            cls.name = cls.__name__

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ResolverError(IdnodeError):
    """Base of every error this package raises."""


class InvalidHandle(ResolverError):
    """The text is not a well-formed identifier (``prefix/suffix``)."""

    status = 400
    response_code = 102


class InvalidValue(ResolverError):
    """A handle value (or the list of them) breaks the value rules."""

    status = 400
    response_code = 202


class HandleNotFound(ResolverError):
    """No record exists for the identifier."""

    status = 404
    response_code = 100

    @classmethod
    def of(cls, handle: str) -> HandleNotFound:
        return cls(f"handle {handle} not found")


class HandleAlreadyExists(ResolverError):
    """Creating refused because a record exists (``overwrite=false``)."""

    status = 409
    response_code = 101


class ValuesNotFound(ResolverError):
    """The record exists but no value matches what was asked for."""

    status = 400
    response_code = 200


class ValueAlreadyExists(ResolverError):
    """Adding a value refused because its index is taken (``overwrite=false``)."""

    status = 409
    response_code = 201


class NotResponsible(ResolverError):
    """This node does not hold the identifier's prefix and cannot resolve it elsewhere."""

    status = 400
    response_code = 301
