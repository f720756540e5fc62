"""Failed authentication, limited per client address and per credential, on every door.

Each door (HTTP API, dashboard login, MQTT provisioning, NB-IoT pushes, later protocols) asks
:meth:`AttemptLimiter.check` before checking credentials and tells :meth:`AttemptLimiter.failed`
when they were wrong. Once an address or a credential has failed ``limit`` times within a
window (``WINDOW`` seconds, fixed from its first failure), every attempt with it is refused
with ``TooManyAttempts`` until the window ends, without checking it (so a correct guess is
not even confirmed).

The credential is what the caller claims to be (an enterprise's ``ADMIN`` user, a provisioning
key, a platform account) or, for a bare token, a digest of it. Memory is bounded: at most
``max_keys`` addresses and as many credentials (each at most ``MAX_CREDENTIAL_CHARS``, longer
ones as a digest) are remembered, the least recently failed forgotten first.
Logs: one ``auth.failed`` line when an address starts failing, one ``auth.throttled`` line when
an address or credential reaches its limit; never one per attempt.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from app.errors import TooManyAttempts

log = logging.getLogger("app.throttle")

WINDOW = 60.0  # seconds; TooManyAttempts.retry_after says the same to clients
MAX_KEYS = 10_000
MAX_CREDENTIAL_CHARS = 200


@dataclass
class _Window:
    started: float
    failures: int = 0


class _Counts:
    """Failures per key in fixed windows; the least recently failed keys forgotten first."""

    def __init__(self, limit: int, max_keys: int) -> None:
        self.limit = limit
        self._max_keys = max_keys
        self._windows: OrderedDict[str, _Window] = OrderedDict()

    def __len__(self) -> int:
        return len(self._windows)

    def blocked(self, key: str, now: float) -> bool:
        window = self._windows.get(key)
        return (
            window is not None and now - window.started < WINDOW and window.failures >= self.limit
        )

    def add(self, key: str, now: float) -> int:
        """Count a failure; the failures of ``key`` in its window so far."""
        window = self._windows.pop(key, None)
        if window is None or now - window.started >= WINDOW:
            window = _Window(now)
        window.failures += 1
        self._windows[key] = window
        if len(self._windows) > self._max_keys:
            self._windows.popitem(last=False)
        return window.failures


class AttemptLimiter:
    """Failed authentication attempts of one process, per client address and per credential."""

    def __init__(
        self,
        *,
        per_address: int,
        per_credential: int,
        max_keys: int = MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._addresses = _Counts(per_address, max_keys)
        self._credentials = _Counts(per_credential, max_keys)
        self._clock = clock

    @property
    def remembered(self) -> int:
        """Addresses and credentials whose failures are kept (bounded by ``max_keys`` each)."""
        return len(self._addresses) + len(self._credentials)

    def check(self, door: str, *, address: str | None, credential: str | None) -> None:
        """Raise ``TooManyAttempts`` when the address or the credential is being throttled."""
        now = self._clock()
        if address is not None and self._addresses.blocked(address, now):
            raise TooManyAttempts(
                f"too many failed attempts from {address}; try again in {WINDOW:g} s"
            )
        if credential is not None and self._credentials.blocked(_key(door, credential), now):
            raise TooManyAttempts(
                f"too many failed attempts with these credentials; try again in {WINDOW:g} s"
            )

    def failed(
        self, door: str, *, address: str | None, credential: str | None, reason: str
    ) -> None:
        """Count one failed attempt (logged once per burst, see the module)."""
        now = self._clock()
        where = {"door": door, "client": address}
        if address is not None:
            failures = self._addresses.add(address, now)
            if failures == 1:
                log.info("auth.failed", extra={**where, "reason": reason})
            if failures == self._addresses.limit:
                log.warning("auth.throttled", extra={**where, "failures": failures})
        if credential is not None:
            failures = self._credentials.add(_key(door, credential), now)
            if failures == self._credentials.limit:
                log.warning(
                    "auth.throttled",
                    extra={**where, "credential": credential[:64], "failures": failures},
                )


def token_credential(token: str) -> str:
    """A bare token as a credential: a digest, so no token is kept in memory or logged."""
    return "token:" + hashlib.sha256(token.encode()).hexdigest()[:16]


def _key(door: str, credential: str) -> str:
    # A credential is whatever a client sent: long ones are kept as a digest, so each of the
    # max_keys entries stays small.
    if len(credential) > MAX_CREDENTIAL_CHARS:
        credential = token_credential(credential)
    return f"{door}:{credential}"
