"""Errors of the node's own domain (credentials, enterprises, requests).

Like the Handle protocol errors in ``resolver.errors`` they know nothing of HTTP; the map in
``app/api/errors.py`` decides status codes and bodies.
"""

from __future__ import annotations


class NodeError(Exception):
    """Base of the node's own errors."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class DatabaseUnusable(NodeError):
    """The configured database cannot be opened or written; the message says what to do."""


class AuthenticationRequired(NodeError):
    """The operation needs credentials and none were sent."""


class AuthenticationFailed(NodeError):
    """Credentials were sent but are wrong, revoked or malformed."""


class MetricsOff(NodeError):
    """``GET /metrics`` on a node started with ``IDNODE_METRICS=false``."""


class PermissionDenied(NodeError):
    """The caller is known but may not do this."""


class EnterpriseNotFound(NodeError):
    """No enterprise holds the named prefix."""


class PrefixTaken(NodeError):
    """The enterprise prefix asked for is already allocated."""


class InvalidRequest(NodeError):
    """The request is malformed (JSON syntax, query parameters, fields)."""


class RequestTooLarge(NodeError):
    """The request body exceeds the configured limit."""


class GrantNotFound(NodeError):
    """No grant with that id was made by the caller (or it was revoked)."""


class ReaderTokenNotFound(NodeError):
    """The caller issued no active reader token with that id."""


class TemplateNotFound(NodeError):
    """No template with this id (or version) exists that the caller may use."""


class InvalidTemplate(NodeError):
    """A template definition sent to the node is malformed or breaks an earlier version."""


class TemplateViolation(NodeError):
    """Attributes do not satisfy their template; ``fields`` names every failing one."""

    def __init__(self, fields: list[dict[str, str]], message: str | None = None) -> None:
        names = ", ".join(f["name"] for f in fields)
        super().__init__(message or f"the attributes do not satisfy the template: {names}")
        self.fields = fields


class InvalidHardwareId(InvalidRequest):
    """A device's hardware id does not fit its declared kind (MAC, IMEI, DevEUI, serial)."""


class DeviceNotFound(NodeError):
    """No device with this hardware id is registered under the prefix."""


class ProvisioningKeyNotFound(NodeError):
    """The enterprise has no provisioning key of that name."""


class ApplicationAlreadyMapped(NodeError):
    """The LoRaWAN application is already mapped to a prefix."""


class BatchRejected(NodeError):
    """An all-or-nothing batch had rejected items, so none was written; ``results`` holds
    the rejected items' results."""

    def __init__(self, message: str, results: list[dict[str, object]]) -> None:
        super().__init__(message)
        self.results = results
