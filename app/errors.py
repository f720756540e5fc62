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


class TooManyAttempts(NodeError):
    """Too many failed authentication attempts from this address or with these credentials
    (``app/throttle.py``): refused, unchecked, until the window ends."""

    status = 429
    response_code = 3  # Handle SERVER_TOO_BUSY: clients retry later
    retry_after = 60  # the throttling window, app.throttle.WINDOW


class LoginFailed(NodeError):
    """A login (SNMS ``/identity/token``) named an unknown user or the wrong password; the
    answer does not say which."""

    status = 400
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


class IdempotencyKeyReused(NodeError):
    """An idempotency key sent again with a different request. 422, as the IETF draft on the
    Idempotency-Key header asks: the key is well-formed but cannot apply to this payload."""

    status = 422


class RequestTooLarge(NodeError):
    """The request body exceeds the configured limit."""

    status = 413
    response_code = 4


class UsernameTaken(NodeError):
    """An SNMS username is unique on the node and this one is in use."""

    status = 409
    response_code = 101


class SnmsUserNotFound(NodeError):
    """The enterprise has no SNMS user of that name."""

    status = 404
    response_code = 100


class RequestTimeout(NodeError):
    """The request body did not arrive within the configured time."""

    status = 408
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
        named = "; ".join(f"{f.get('name', '')} {f.get('message', '')}".strip() for f in fields)
        super().__init__(message or f"the attributes do not satisfy the template: {named}")
        self.fields = fields


class InvalidHardwareId(InvalidRequest):
    """A device's hardware id does not fit its declared kind (MAC, IMEI, DevEUI, serial)."""


class DeviceNotFound(NodeError):
    """No device with this hardware id is registered under the prefix."""

    status = 404
    response_code = 100


class PublicKeyNotFound(NodeError):
    """The enterprise has no public key at that index (or no admin record at all)."""

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


class SecretUnreadable(NodeError):
    """A secret stored encrypted (``app/vault.py``) cannot be opened with this node's key: the
    key file was replaced. The operator configures the secret again; retrying will not help."""

    status = 503
    response_code = 3


class IngestQueueFull(ServiceUnavailable):
    """Too many device-platform pushes wait to be applied; the platform retries."""

    retry_after = 1


class DatabaseUnavailable(ServiceUnavailable):
    """The database cannot be reached or cannot take the work now (stopped, restarting,
    refusing connections, locked or unwritable); raised by the storage layer in place of the
    driver's error."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or f"the database is unavailable; retry in {self.retry_after} s")
