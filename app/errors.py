"""Errors of the node's own domain (credentials, enterprises, requests).

Like the Handle protocol errors they derive from ``resolver.errors.IdnodeError`` and carry
their HTTP status and Handle ``responseCode`` as class attributes; how a door renders them
(bodies, headers) is decided once per door, e.g. in ``app/api/errors.py``.
"""

from __future__ import annotations

from resolver.errors import IdnodeError


class NodeError(IdnodeError):
    """Base of the node's own errors."""

    response_code = 4


class DatabaseUnusable(NodeError):
    """The configured database cannot be opened or written; the message says what to do.
    (Raised by commands before the node serves; over HTTP it would be the node unavailable.)"""

    status = 503
    response_code = 2


class AuthenticationRequired(NodeError):
    """The operation needs credentials and none were sent."""

    status = 401
    response_code = 402


class AuthenticationFailed(NodeError):
    """Credentials were sent but are wrong, revoked or malformed."""

    status = 401
    response_code = 402


class MetricsOff(NodeError):
    """``GET /metrics`` on a node started with ``IDNODE_METRICS=false``."""

    status = 404
    response_code = 100


class PermissionDenied(NodeError):
    """The caller is known but may not do this."""

    status = 403
    response_code = 401


class EnterpriseNotFound(NodeError):
    """No enterprise holds the named prefix."""

    status = 404
    response_code = 100


class PrefixTaken(NodeError):
    """The enterprise prefix asked for is already allocated."""

    status = 409
    response_code = 101


class InvalidRequest(NodeError):
    """The request is malformed (JSON syntax, query parameters, fields)."""

    status = 400
    response_code = 4


class InvalidFields(InvalidRequest):
    """Fields of a typed JSON body break its schema (HTTP 422; Handle API paths say 400)."""

    status = 422
    name = "InvalidRequest"


class RequestTooLarge(NodeError):
    """The request body exceeds the configured limit."""

    status = 413
    response_code = 4


class GrantNotFound(NodeError):
    """No grant with that id was made by the caller (or it was revoked)."""

    status = 404
    response_code = 100


class ReaderTokenNotFound(NodeError):
    """The caller issued no active reader token with that id."""

    status = 404
    response_code = 100


class TemplateNotFound(NodeError):
    """No template with this id (or version) exists that the caller may use."""

    status = 404
    response_code = 100


class InvalidTemplate(NodeError):
    """A template definition sent to the node is malformed or breaks an earlier version."""

    status = 422
    response_code = 202


class TemplateViolation(NodeError):
    """Attributes do not satisfy their template; ``fields`` names every failing one."""

    status = 422
    response_code = 202

    def __init__(self, fields: list[dict[str, str]], message: str | None = None) -> None:
        names = ", ".join(f["name"] for f in fields)
        super().__init__(message or f"the attributes do not satisfy the template: {names}")
        self.fields = fields


class InvalidHardwareId(InvalidRequest):
    """A device's hardware id does not fit its declared kind (MAC, IMEI, DevEUI, serial)."""


class DeviceNotFound(NodeError):
    """No device with this hardware id is registered under the prefix."""

    status = 404
    response_code = 100


class ProvisioningKeyNotFound(NodeError):
    """The enterprise has no provisioning key of that name."""

    status = 404
    response_code = 100


class ApplicationAlreadyMapped(NodeError):
    """The LoRaWAN application is already mapped to a prefix."""

    status = 409
    response_code = 101


class BatchRejected(NodeError):
    """An all-or-nothing batch had rejected items, so none was written; ``results`` holds
    the rejected items' results."""

    status = 422
    response_code = 202

    def __init__(self, message: str, results: list[dict[str, object]]) -> None:
        super().__init__(message)
        self.results = results


class ServiceUnavailable(NodeError):
    """The node cannot take the request now (a dependency is down, a queue is full); the
    same request later may well succeed."""

    status = 503
    response_code = 3  # Handle SERVER_TOO_BUSY: clients retry
    retry_after = 5


class IngestQueueFull(ServiceUnavailable):
    """Too many device-platform pushes wait to be applied; the platform retries."""

    retry_after = 1
