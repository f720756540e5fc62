"""Who is calling: the operator, an enterprise, a reader token, or anyone.

Handle clients authenticate with HTTP Basic ``300:<prefix>/ADMIN`` (user percent-encoded) and
the enterprise secret; everything else may send ``Bearer <token>``. A reader token (issued by
an enterprise for a regulator or a customer) may only read.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from dataclasses import dataclass, field
from urllib.parse import unquote

from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import AuthenticationFailed
from app.security import digest
from app.storage import enterprises as repo
from app.throttle import token_credential
from resolver.errors import InvalidHandle
from resolver.identifier import parse_handle

ADMIN_SUFFIX = "ADMIN"
# Handle clients percent-encode the user (300%3A88.999.1/ADMIN); people typing it may not.
_UNENCODED_USER = re.compile(r"(\d+:[^:]+/ADMIN):(.*)", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller (or the anonymous one)."""

    kind: str  # anonymous | operator | enterprise | reader
    enterprise_id: int | None = None
    prefixes: frozenset[str] = field(default_factory=frozenset)
    active: bool = True
    reader_id: str | None = None

    @property
    def is_reader(self) -> bool:
        return self.kind == "reader"

    @property
    def actor(self) -> str:
        """Who this is in an identifier's history."""
        if self.kind == "enterprise" and self.prefixes:
            return f"enterprise:{min(self.prefixes)}"
        if self.kind == "reader":
            return f"reader:{self.reader_id}"
        return self.kind

    @property
    def is_operator(self) -> bool:
        return self.kind == "operator"

    @property
    def is_anonymous(self) -> bool:
        return self.kind == "anonymous"

    def owns(self, prefix: str) -> bool:
        return prefix in self.prefixes


ANONYMOUS = Principal("anonymous")
OPERATOR = Principal("operator")


async def authenticate(
    session: AsyncSession, authorization: str | None, *, operator_token: str | None
) -> Principal:
    """The caller named by an ``Authorization`` header; anonymous when there is none."""
    if not authorization:
        return ANONYMOUS
    scheme, _, credentials = authorization.strip().partition(" ")
    credentials = credentials.strip()
    if scheme.lower() == "bearer" and credentials:
        return await _bearer(session, credentials, operator_token)
    if scheme.lower() == "basic" and credentials:
        return await _basic(session, credentials)
    raise AuthenticationFailed(
        "unsupported Authorization header; send Basic 300:<prefix>/ADMIN with the enterprise "
        "secret, or Bearer <token>"
    )


async def _bearer(session: AsyncSession, token: str, operator_token: str | None) -> Principal:
    if operator_token is not None and hmac.compare_digest(token.encode(), operator_token.encode()):
        return OPERATOR
    credential = await repo.active_credential(session, digest(token))
    if credential is None or credential.kind not in {"operator", "token", "reader"}:
        raise AuthenticationFailed("the bearer token is not valid (unknown or revoked)")
    if credential.kind == "operator":
        return OPERATOR
    if credential.kind == "reader":
        reader_id = await repo.reader_of(session, credential.id)
        if reader_id is None:
            raise AuthenticationFailed("the bearer token is not valid (unknown or revoked)")
        return Principal("reader", reader_id=reader_id)
    assert credential.enterprise_id is not None
    return await enterprise_principal(session, credential.enterprise_id)


def claimed(authorization: str) -> str:
    """Who an ``Authorization`` header claims to be, for throttling failed attempts: the
    Basic user, or a digest of anything else (never the secret itself)."""
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() == "basic":
        try:
            return "basic:" + _user_and_secret(credentials.strip())[0][:200]
        except AuthenticationFailed:
            pass
    return token_credential(authorization)


def _user_and_secret(encoded: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(encoded, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise AuthenticationFailed("Basic credentials are not valid base64 of user:secret") from exc
    plain = _UNENCODED_USER.fullmatch(decoded)  # curl -u '300:88.999.1/ADMIN:secret'
    if plain:
        return plain.group(1), plain.group(2)
    user, sep, secret = decoded.partition(":")
    if not sep:
        raise AuthenticationFailed("Basic credentials must be user:secret")
    return unquote(user), secret


async def _basic(session: AsyncSession, encoded: str) -> Principal:
    user, secret = _user_and_secret(encoded)
    _, _, admin = user.rpartition(":")  # drop the index: 300:88.999.1/ADMIN -> 88.999.1/ADMIN
    try:
        handle = parse_handle(admin)
    except InvalidHandle as exc:
        raise AuthenticationFailed(f"user {user!r} is not <index>:<prefix>/ADMIN") from exc
    if handle.suffix != ADMIN_SUFFIX:
        raise AuthenticationFailed(f"user {user!r} is not <index>:<prefix>/ADMIN")
    credential = await repo.active_credential(session, digest(secret))
    if credential is None or credential.kind != "secret" or credential.enterprise_id is None:
        raise AuthenticationFailed(f"wrong secret for {user}")
    principal = await enterprise_principal(session, credential.enterprise_id)
    if not principal.owns(handle.prefix):
        raise AuthenticationFailed(f"wrong secret for {user}")
    return principal


async def enterprise_holding(session: AsyncSession, prefix: str) -> Principal | None:
    """The enterprise holding ``prefix`` as a caller (after it proved itself another way,
    e.g. a Handle protocol key login)."""
    enterprise = await repo.owner_of(session, prefix)
    return None if enterprise is None else await enterprise_principal(session, enterprise.id)


async def enterprise_principal(session: AsyncSession, enterprise_id: int) -> Principal:
    """The enterprise as a caller, with its prefixes and whether it is active."""
    enterprise = await repo.enterprise(session, enterprise_id)
    assert enterprise is not None
    prefixes = await repo.prefixes_of(session, enterprise_id)
    return Principal(
        "enterprise",
        enterprise_id=enterprise_id,
        prefixes=frozenset(prefixes),
        active=enterprise.status == "active",
    )
