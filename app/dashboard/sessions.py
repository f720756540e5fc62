"""Operator sessions of the dashboard: a signed, expiring cookie.

The cookie holds no secret, only that the operator logged in and when; its signature (with
the node's dashboard secret) makes it unforgeable and ``max_age`` makes it expire. Logging
out clears it in the browser.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from itsdangerous import BadSignature, TimestampSigner, URLSafeTimedSerializer

__all__ = ["COOKIE", "Sessions"]

COOKIE = "idnode_dashboard"
_SALT = "idnode.dashboard.session"


class Sessions:
    """Issues and checks dashboard session cookies lasting ``ttl`` seconds."""

    def __init__(self, secret: str, ttl: int, *, clock: Callable[[], float] = time.time) -> None:
        class Signer(TimestampSigner):
            def get_timestamp(self) -> int:
                return int(clock())

        self._signer = URLSafeTimedSerializer(secret, salt=_SALT, signer=Signer)
        self.ttl = ttl

    def issue(self) -> str:
        return self._signer.dumps({"role": "operator"})

    def valid(self, cookie: str | None) -> bool:
        """True for a cookie this node signed less than ``ttl`` seconds ago."""
        if not cookie:
            return False
        try:
            payload = self._signer.loads(cookie, max_age=self.ttl)
        except BadSignature:  # SignatureExpired is one too
            return False
        return isinstance(payload, dict) and payload.get("role") == "operator"
