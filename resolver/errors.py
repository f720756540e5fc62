"""Errors of the Handle protocol, each carrying its Handle ``responseCode``.

They know nothing of HTTP: ``app`` maps them to status codes in one place.
"""

from __future__ import annotations


class ResolverError(Exception):
    """Base of every error this package raises."""

    response_code: int = 2

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidHandle(ResolverError):
    """The text is not a well-formed identifier (``prefix/suffix``)."""

    response_code = 102


class InvalidValue(ResolverError):
    """A handle value (or the list of them) breaks the value rules."""

    response_code = 202


class HandleNotFound(ResolverError):
    """No record exists for the identifier."""

    response_code = 100

    @classmethod
    def of(cls, handle: str) -> HandleNotFound:
        return cls(f"handle {handle} not found")


class HandleAlreadyExists(ResolverError):
    """Creating refused because a record exists (``overwrite=false``)."""

    response_code = 101


class ValuesNotFound(ResolverError):
    """The record exists but no value matches what was asked for."""

    response_code = 200


class ValueAlreadyExists(ResolverError):
    """Adding a value refused because its index is taken (``overwrite=false``)."""

    response_code = 201


class NotResponsible(ResolverError):
    """This node does not hold the identifier's prefix and cannot resolve it elsewhere."""

    response_code = 301
