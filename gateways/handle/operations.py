"""What the node answers to each Handle protocol request, through the same services as HTTP.

Reads go through the node's resolver (cache, delegation, upstream) and the one read rule
(``can_read_restricted``); writes through ``app.registry.identifiers.handles`` (authorisation, value
rules, history with the actor, outbox events, cache invalidation). A login is kept on the
:class:`Session` of its TCP connection, as the CAICT SDK expects.
"""

from __future__ import annotations

import base64
import logging
import secrets
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from urllib.parse import quote

from app.auth import (
    ADMIN_SUFFIX,
    ANONYMOUS,
    Principal,
    authenticate,
    claimed,
    enterprise_holding,
)
from app.errors import AuthenticationFailed
from app.node import Node
from app.registry.access import public_keys
from app.registry.identifiers import handles as service
from app.registry.identifiers import history
from app.storage.database import AsyncSession
from app.storage.invalidation import evict_touched
from resolver.cache import Entry
from resolver.errors import HandleNotFound, IdnodeError, ValuesNotFound
from resolver.handle_protocol import bodies
from resolver.handle_protocol.body import Site, encode_site
from resolver.handle_protocol.message import (
    FLAG_PUBLIC_ONLY,
    FLAG_REQUEST_DIGEST,
    HEADER_SIZE,
    OC_ADD_VALUE,
    OC_CHALLENGE_RESPONSE,
    OC_CREATE,
    OC_DELETE,
    OC_GET_SITE,
    OC_LOGIN,
    OC_LOGIN_ID_SYSTEM,
    OC_MODIFY_VALUE,
    OC_REMOVE_VALUE,
    OC_RESOLUTION,
    RC_AUTHEN_TIMEOUT,
    RC_AUTHENTICATION_FAILED,
    RC_AUTHENTICATION_NEEDED,
    RC_ERROR,
    RC_LOGIN_FIRST,
    RC_OPERATION_NOT_SUPPORTED,
    RC_SUCCESS,
    Message,
    request_digest,
)
from resolver.identifier import Handle, parse_handle
from resolver.stats import HIT, perf_counter
from resolver.values import parse_values

log = logging.getLogger("gateways.handle")
Handler = Callable[["Message", "Session"], Awaitable["tuple[int, bytes] | Message"]]
ANSWER_LIFETIME = 3600  # seconds an answer's expiration lies ahead (the SDK refuses past ones)
READY_LIFETIME = 600  # seconds a ready answer is reused (its expiration stays well ahead)
MAX_READY = 10_000
_OPCODE_FLAGS_LENGTH = struct.Struct(">i4xI8xI")  # header: opcode, flags, body length
CHANNEL = "handle"
TOKEN_USER = "TOKEN"  # noqa: S105 - a user name: log in with a bearer token as the password
# Codes of the node's errors the CAICT SDK does not know, as codes it does: "not logged in"
# is its LOGIN_FIRST; "not responsible" (301) would make it throw "unknown response code".
WIRE_CODES = {402: RC_LOGIN_FIRST, 301: RC_ERROR}


@dataclass(frozen=True)
class Challenge:
    """A key login (2001) waiting for its answer (200) on the same connection."""

    request: Message
    handle: Handle
    index: int
    nonce: bytes
    session_id: int


@dataclass
class Session:
    """What the node remembers about one TCP connection (UDP: one per datagram)."""

    principal: Principal = ANONYMOUS
    identity: str | None = None  # the admin handle that logged in
    address: str | None = None  # the client's IP address (failed logins are throttled by it)
    challenge: Challenge | None = None
    session_id: int = 0  # of the request being answered (the answer's envelope echoes it)


class Operations:
    """Answers requests for one node process."""

    def __init__(self, node: Node, site: Site) -> None:
        self._node = node
        self._prefix = node.settings.node_prefix
        # Answers to anonymous unfiltered resolutions by request body: (cache entry they were
        # built from, cache key, prefix, packed answer, when built).
        self._ready: dict[bytes, tuple[Entry, str, str, bytes, float]] = {}
        self._site = encode_site(site)
        self._handlers: dict[int, Handler] = {
            OC_RESOLUTION: self._resolve,
            OC_GET_SITE: self._get_site,
            OC_LOGIN: self._login,
            OC_LOGIN_ID_SYSTEM: self._key_login,
            OC_CHALLENGE_RESPONSE: self._challenge_answer,
            OC_CREATE: self._create,
            OC_DELETE: self._delete,
            OC_ADD_VALUE: self._add,
            OC_REMOVE_VALUE: self._remove,
            OC_MODIFY_VALUE: self._modify,
        }

    async def answer(self, request: Message, session: Session) -> Message:
        """The response to ``request``: same opcode (2001 for a key login's steps), a code the
        SDK knows, a future expiry. A key challenge sets ``session.session_id``."""
        handler = self._handlers.get(request.opcode)
        try:
            if handler is None:
                code, body = (
                    RC_OPERATION_NOT_SUPPORTED,
                    bodies.pack_error(f"opcode {request.opcode} is not supported by this node"),
                )
            else:
                result = await handler(request, session)
                if isinstance(result, Message):
                    return result
                code, body = result
        except IdnodeError as exc:
            code = WIRE_CODES.get(exc.response_code, exc.response_code)
            body = bodies.pack_error(exc.message)
        except Exception:
            log.exception("gateways.handle.unexpected_error", extra={"opcode": request.opcode})
            code, body = RC_ERROR, bodies.pack_error("internal error; the operation was not done")
        return reply(request, code, body)

    # --- reads ---

    def ready_answer(self, message: bytes, session: Session) -> bytes | None:
        """The packed answer to an anonymous, unfiltered resolution whose identifier is fresh
        in the cache, ready to write (the hot path: no decoding, no task); else None."""
        opcode, flags, length = _OPCODE_FLAGS_LENGTH.unpack_from(message)
        if opcode != OC_RESOLUTION or flags & FLAG_REQUEST_DIGEST:
            return None
        if not (flags & FLAG_PUBLIC_ONLY or session.principal.is_anonymous):
            return None
        ready = self._ready.get(message[HEADER_SIZE : HEADER_SIZE + length])
        if ready is None:
            return None
        entry, key, prefix, packed, built = ready
        resolver = self._node.resolver
        started = perf_counter()
        if started - built > READY_LIFETIME or resolver.cache.fresh(key) is not entry:
            return None
        if resolver.stats is not None:
            resolver.stats.observe(HIT, started, prefix)
        return packed

    def _keep_ready(self, request: Message, entry: Entry, handle: Handle, body: bytes) -> None:
        if len(self._ready) >= MAX_READY:
            del self._ready[next(iter(self._ready))]  # the oldest
        packed = reply(request, RC_SUCCESS, body).pack()
        self._ready[request.body] = (entry, str(handle), handle.prefix, packed, perf_counter())

    async def _get_site(self, request: Message, session: Session) -> tuple[int, bytes]:
        return RC_SUCCESS, self._site

    async def _resolve(self, request: Message, session: Session) -> tuple[int, bytes]:
        query = bodies.Query.read(request.body)
        handle = parse_handle(query.handle)
        resolver = self._node.resolver
        entry = await resolver.resolve(handle, hops=request.recursion)
        public_only = session.principal.is_anonymous or request.has(FLAG_PUBLIC_ONLY)
        privileged = not public_only and await self._may_read_restricted(session, handle)
        record = history.visible(entry.record(), privileged=privileged)
        if query.indexes or query.types:
            # Over the Handle protocol a type also asks for its dotted sub-types (``URL`` for
            # ``URL.mobile``), as CAICT's SDK expects; case does not matter (type_matches).
            families = [t if t.endswith(".") else t + "." for t in query.types]
            record = record.select(families, query.indexes)
            if not record.values:
                raise ValuesNotFound(f"no value of {handle} matches the filters")
        body = bodies.pack_records(str(handle), record.values)
        if public_only and not (
            query.indexes or query.types or request.recursion or request.has(FLAG_REQUEST_DIGEST)
        ):
            self._keep_ready(request, entry, handle, body)
        return RC_SUCCESS, body

    async def _may_read_restricted(self, session: Session, handle: Handle) -> bool:
        async with self._node.database.read_session() as db:
            return await service.can_read_restricted(db, session.principal, handle)

    # --- logins ---

    async def _login(self, request: Message, session: Session) -> tuple[int, bytes]:
        """Password login, checked exactly as the same credentials over HTTP: user
        ``<prefix>/ADMIN`` (or ``300:<prefix>/ADMIN``) with the enterprise secret (HTTP Basic),
        or user ``TOKEN`` with a bearer token (a reader token, an enterprise's token, the
        operator's) as the password. Failures count towards the same throttle as HTTP's."""
        query = bodies.Query.read(request.body)
        if len(query.types) != 1 or not query.types[0]:
            return RC_AUTHENTICATION_FAILED, bodies.pack_error("send the password as one type")
        user, password = query.handle, query.types[0]
        if user.upper() == TOKEN_USER:
            header = f"Bearer {password}"
        else:
            header = (
                "Basic " + base64.b64encode(f"{quote(user, safe='')}:{password}".encode()).decode()
            )
        attempts, credential = self._node.attempts, claimed(header)
        attempts.check(CHANNEL, address=session.address, credential=credential)
        try:
            async with self._node.database.read_session() as db:
                principal = await authenticate(db, header, operator_token=self._node.operator_token)
        except AuthenticationFailed as exc:
            attempts.failed(
                CHANNEL, address=session.address, credential=credential, reason=exc.message
            )
            return RC_AUTHENTICATION_FAILED, bodies.pack_error(exc.message)
        session.principal, session.identity = principal, user.rpartition(":")[2]
        return RC_SUCCESS, bodies.pack_login_answer(session.identity)

    async def _key_login(self, request: Message, session: Session) -> Message:
        """Key login, step 1: a challenge (402, opcode 2001) with the request's digest and a
        nonce, under a new session id the answer must carry."""
        name, index = bodies.read_key_login(request.body)
        session.session_id = secrets.randbelow(2**31 - 2) + 1
        nonce = secrets.token_bytes(16)
        session.challenge = Challenge(request, parse_handle(name), index, nonce, session.session_id)
        return Message(
            OC_LOGIN_ID_SYSTEM,
            request_digest(request) + bodies.pack_challenge(nonce),
            response_code=RC_AUTHENTICATION_NEEDED,
            flags=FLAG_REQUEST_DIGEST,
            expiration=int(time.time()) + ANSWER_LIFETIME,
        )

    async def _challenge_answer(self, request: Message, session: Session) -> Message:
        """Key login, step 2: the signature over nonce and digest, checked against the
        HS_PUBKEY at the named index; success logs the connection in as that enterprise."""
        answer = bodies.ChallengeAnswer.read(request.body)
        challenge, session.challenge = session.challenge, None
        if (
            challenge is None
            or challenge.session_id != session.session_id
            or (answer.handle, answer.index) != (str(challenge.handle), challenge.index)
        ):
            return _key_login_reply(request, RC_AUTHEN_TIMEOUT, "no key login is waiting for this")
        principal = await self._key_holder(challenge, answer)
        if principal is None:
            log.info("auth.failed", extra={"channel": CHANNEL, "reason": "key login"})
            return _key_login_reply(
                challenge.request,
                RC_AUTHENTICATION_FAILED,
                f"the signature does not verify with the key at {answer.index}:{answer.handle}",
            )
        session.principal, session.identity = principal, str(challenge.handle)
        return reply(challenge.request, RC_SUCCESS, b"")

    async def _key_holder(
        self, challenge: Challenge, answer: bodies.ChallengeAnswer
    ) -> Principal | None:
        """The enterprise whose ``<prefix>/ADMIN`` key made the signature, or None."""
        handle = challenge.handle
        if handle.suffix != ADMIN_SUFFIX or not self._node.resolver.is_local(handle):
            return None
        try:
            record = (await self._node.resolver.lookup(handle)).record()
        except HandleNotFound:
            return None
        value = next((v for v in record.values if v.index == challenge.index), None)
        key = public_keys.key_of(value) if value is not None else None
        signed = challenge.nonce + request_digest(challenge.request)[1:]
        if key is None or not public_keys.verifies(key, answer.hash_id, answer.signature, signed):
            return None
        async with self._node.database.read_session() as db:
            return await enterprise_holding(db, handle.prefix)

    # --- writes ---

    async def _create(self, request: Message, session: Session) -> tuple[int, bytes]:
        name, raw = bodies.read_values_request(request.body)
        handle, values = parse_handle(name), parse_values(raw)
        async with self._writing() as db:
            _, created = await service.put_record(
                db,
                handle,
                values,
                principal=session.principal,
                node_prefix=self._prefix,
                overwrite=False,
                conform=True,
            )
        self._node.activity.registrations[CHANNEL] += created
        return RC_SUCCESS, b""

    async def _add(self, request: Message, session: Session) -> tuple[int, bytes]:
        return await self._change(request, session, overwrite=False)

    async def _modify(self, request: Message, session: Session) -> tuple[int, bytes]:
        return await self._change(request, session, overwrite=True)

    async def _change(
        self, request: Message, session: Session, *, overwrite: bool
    ) -> tuple[int, bytes]:
        name, raw = bodies.read_values_request(request.body)
        handle, values = parse_handle(name), parse_values(raw)
        indexes = [v.index for v in values]
        async with self._writing() as db:
            await service.put_record(
                db,
                handle,
                values,
                principal=session.principal,
                node_prefix=self._prefix,
                indexes=indexes,
                overwrite=overwrite,
                existing_only=overwrite,
                conform=True,
            )
        return RC_SUCCESS, b""

    async def _remove(self, request: Message, session: Session) -> tuple[int, bytes]:
        name, indexes = bodies.read_remove_request(request.body)
        handle = parse_handle(name)
        if not indexes:
            raise ValuesNotFound("name at least one index to remove")
        async with self._writing() as db:
            await service.delete_record(
                db,
                handle,
                principal=session.principal,
                node_prefix=self._prefix,
                indexes=indexes,
                conform=True,
            )
        return RC_SUCCESS, b""

    async def _delete(self, request: Message, session: Session) -> tuple[int, bytes]:
        handle = parse_handle(bodies.read_handle(request.body))
        async with self._writing() as db:
            await service.delete_record(
                db, handle, principal=session.principal, node_prefix=self._prefix
            )
        return RC_SUCCESS, b""

    @asynccontextmanager
    async def _writing(self) -> AsyncIterator[AsyncSession]:
        """One write: committed when the block ends, then evicted from this process's cache
        (other processes learn of it through the database)."""
        async with self._node.database.write_session() as db:
            yield db
            await db.commit()
            evict_touched(db, self._node.resolver.cache)


def _key_login_reply(request: Message, code: int, message: str) -> Message:
    """A refused key login, under the opcode the SDK waits for (2001)."""
    return reply(replace(request, opcode=OC_LOGIN_ID_SYSTEM), code, bodies.pack_error(message))


def reply(request: Message, code: int, body: bytes) -> Message:
    """A response to ``request``: its opcode, the digest first when it asked for one."""
    flags = request.flags & FLAG_REQUEST_DIGEST
    if flags:
        body = request_digest(request) + body
    return Message(
        request.opcode,
        body,
        response_code=code,
        flags=flags,
        expiration=int(time.time()) + ANSWER_LIFETIME,
    )
