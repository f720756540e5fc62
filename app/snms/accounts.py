"""SNMS logins: the users an enterprise makes for its integrations, and their 24 h tokens.

A user logs in with its password in plain text (``/identity/token``) or as
``sha256hex(sha256hex(password) + "yyyy-MM-dd")`` (``/identity/token/v1``). The second form
means the node must know ``sha256hex(password)``, which is as good as the password for that
login, so it is kept sealed with the node key (``app/vault.py``) next to the salted scrypt hash
the plain login checks: a copy of the database without the key file logs nobody in.
``<prefix>/ADMIN`` logs in with the enterprise secret, whose
SHA-256 the node keeps anyway.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import ADMIN_SUFFIX, Principal, authenticate, enterprise_principal
from app.errors import (
    AuthenticationFailed,
    EnterpriseNotFound,
    InvalidRequest,
    LoginFailed,
    SnmsUserNotFound,
    UsernameTaken,
)
from app.registry import clock
from app.security import digest, new_token
from app.storage import enterprises as enterprise_repo
from app.storage import snms as repo
from app.storage.models import SnmsUser
from app.throttle import AttemptLimiter
from app.vault import Vault
from resolver.errors import InvalidHandle
from resolver.identifier import parse_handle, parse_prefix
from resolver.text import problem

TOKEN_LIFETIME = timedelta(hours=24)
# The calendar day a client salts /identity/token/v1 with is China's (no daylight saving).
CHINA = timezone(timedelta(hours=8), "Asia/Shanghai")
DATE_SKEW = timedelta(days=1)  # yesterday and tomorrow in China are accepted too
MAX_USERNAME = 50
PASSWORD_LENGTH = (12, 64)
# scrypt: 16 MiB and ~50 ms per check; see hash_password.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
WRONG_PASSWORD = "用户名/密码错误！"  # noqa: S105 - the message, not a password


def hash_password(plain: str) -> str:
    """A salted scrypt hash (stdlib ``hashlib.scrypt``): slow enough that a stolen table is
    not a list of passwords, with no extra dependency."""
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(plain.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    return "$".join(["scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(key)])


def password_matches(stored: str, plain: str) -> bool:
    _, n, r, p, salt, key = stored.split("$")
    found = hashlib.scrypt(
        plain.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p)
    )
    return hmac.compare_digest(found, base64.b64decode(key))


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def sha256hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def salted_by_date(password_sha256: str, now: datetime) -> set[str]:
    """What ``/identity/token/v1`` accepts for a password whose SHA-256 hex is given: the
    hash salted with China's date today, yesterday or tomorrow."""
    today = now.astimezone(CHINA).date()
    days = (today - DATE_SKEW, today, today + DATE_SKEW)
    return {sha256hex(password_sha256 + day.isoformat()) for day in days}


# --- users of an enterprise (the API lets the enterprise itself and the operator in) ---


async def create_user(
    session: AsyncSession, prefix: str, *, username: str, password: str, vault: Vault
) -> SnmsUser:
    enterprise_id = await _enterprise_of(session, prefix)
    _check_username(username)
    _check_password(password)
    plain = await asyncio.to_thread(hash_password, password)
    user = await repo.add_user(
        session,
        enterprise_id=enterprise_id,
        username=username,
        password_hash=plain,
        password_sha256=vault.seal(sha256hex(password), belongs_to=sealed_under(username)),
        now=clock.now(),
    )
    if user is None:
        raise UsernameTaken(f"the SNMS username {username!r} is taken")
    return user


async def users(session: AsyncSession, prefix: str) -> list[SnmsUser]:
    return await repo.users_of(session, await _enterprise_of(session, prefix))


async def set_disabled(
    session: AsyncSession, prefix: str, username: str, *, disabled: bool
) -> SnmsUser:
    """Disable a user (its tokens stop working at once) or enable it again."""
    user = await _user_of(session, prefix, username)
    await repo.set_disabled(session, user.id, clock.now() if disabled else None)
    if disabled:
        await repo.end_sessions(session, user.id)
    await session.refresh(user)
    return user


async def delete_user(session: AsyncSession, prefix: str, username: str) -> None:
    user = await _user_of(session, prefix, username)
    await repo.remove_user(session, user.id)


async def _enterprise_of(session: AsyncSession, prefix: str) -> int:
    try:
        name = parse_prefix(prefix)
    except InvalidHandle as exc:
        raise EnterpriseNotFound(f"no enterprise holds prefix {prefix!r}") from exc
    enterprise = await enterprise_repo.owner_of(session, name)
    if enterprise is None:
        raise EnterpriseNotFound(f"no enterprise holds prefix {name}")
    return enterprise.id


async def _user_of(session: AsyncSession, prefix: str, username: str) -> SnmsUser:
    enterprise_id = await _enterprise_of(session, prefix)
    user = await repo.user(session, username)
    if user is None or user.enterprise_id != enterprise_id:
        raise SnmsUserNotFound(f"prefix {prefix} has no SNMS user {username!r}")
    return user


def _check_username(username: str) -> None:
    wrong = problem(username)
    if wrong or not 0 < len(username) <= MAX_USERNAME or username != username.strip():
        raise InvalidRequest(
            f"username: {wrong or f'1 to {MAX_USERNAME} characters, no spaces at either end'}"
        )
    if username.upper().endswith("/" + ADMIN_SUFFIX):
        raise InvalidRequest("username: <prefix>/ADMIN logs in with the enterprise secret")


def _check_password(password: str) -> None:
    low, high = PASSWORD_LENGTH
    wrong = problem(password)
    if wrong or not low <= len(password) <= high:
        raise InvalidRequest(f"password: {wrong or f'{low} to {high} characters'}")


# --- logging in, and the callers behind SNMS tokens ---


def sealed_under(username: str) -> str:
    """The row name a user's SHA-256 is sealed under (a sealed value moved to another user
    does not open)."""
    return f"snms_users/{username}"


async def login(
    session: AsyncSession, username: str, password: str, *, hashed: bool, vault: Vault
) -> str:
    """A new token valid for 24 h, or :class:`LoginFailed` (the same for an unknown user and
    a wrong password)."""
    now = clock.now()
    found = await _credentials(session, username, vault)
    if found is None:
        raise LoginFailed(WRONG_PASSWORD)
    enterprise_id, user, sha256s = found
    if hashed:
        ok = any(password in salted_by_date(known, now) for known in sha256s)
    elif user is not None:
        ok = await asyncio.to_thread(password_matches, user.password_hash, password)
    else:
        ok = sha256hex(password) in sha256s
    if not ok:
        raise LoginFailed(WRONG_PASSWORD)
    token = new_token()
    await repo.add_session(
        session,
        token_hash=digest(token),
        enterprise_id=enterprise_id,
        user_id=user.id if user is not None else None,
        expires_at=now + TOKEN_LIFETIME,
        now=now,
    )
    return token


async def _credentials(
    session: AsyncSession, username: str, vault: Vault
) -> tuple[int, SnmsUser | None, list[str]] | None:
    """(enterprise, user or None for ADMIN, the SHA-256 hex of each password it may use)."""
    if username.upper().endswith("/" + ADMIN_SUFFIX):
        try:
            handle = parse_handle(username)
        except InvalidHandle:
            return None
        enterprise = await enterprise_repo.owner_of(session, handle.prefix)
        if enterprise is None:
            return None
        return enterprise.id, None, await repo.secret_hashes(session, enterprise.id)
    user = await repo.user(session, username)
    if user is None or user.disabled_at is not None:
        return None
    known = vault.open(user.password_sha256, belongs_to=sealed_under(user.username))
    return user.enterprise_id, user, [known]


@asynccontextmanager
async def login_guard(
    attempts: AttemptLimiter, username: str, client: str | None
) -> AsyncIterator[None]:
    """Where SNMS logins meet the node's failed-authentication limiter, per username and per
    client address: consulted before a password is checked (``TooManyAttempts``), and told of
    each :class:`LoginFailed` leaving this block."""
    credential = "snms:" + username
    attempts.check("snms", address=client, credential=credential)
    try:
        yield
    except LoginFailed as exc:
        attempts.failed("snms", address=client, credential=credential, reason=exc.message)
        raise


async def caller(
    session: AsyncSession, authorization: str | None, *, operator_token: str | None
) -> Principal:
    """The caller behind ``Authorization: Bearer <token>``: an SNMS login's token, or any
    token the node's own API accepts (an enterprise's, the operator's)."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() == "bearer" and token:
        enterprise_id = await repo.live_session(session, digest(token), clock.now())
        if enterprise_id is not None:
            return await enterprise_principal(session, enterprise_id)
    try:
        return await authenticate(session, authorization, operator_token=operator_token)
    except AuthenticationFailed as exc:
        raise AuthenticationFailed("the token is unknown or has expired; log in again") from exc
