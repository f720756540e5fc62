"""Secrets and tokens: generated with ``secrets``, stored only as SHA-256 digests.

They are 192+ random bits, so a fast digest is enough (no password stretching needed), and
looking a credential up by its digest takes one indexed query.
"""

from __future__ import annotations

import hashlib
import secrets

TOKEN_PREFIX = "idn_"  # noqa: S105 - a marker, not a secret
# Shortest operator token (IDNODE_ADMIN_TOKEN) `idnode serve` starts without a warning: 32
# random URL-safe characters are 192 bits, as the node's own tokens.
MIN_OPERATOR_TOKEN_CHARS = 32


def new_secret() -> str:
    """The secret a Handle client sends with Basic ``300:<prefix>/ADMIN``."""
    return secrets.token_urlsafe(24)


def new_token() -> str:
    """A bearer token for the node's APIs."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
