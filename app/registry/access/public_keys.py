"""Enterprise public keys: published as ``HS_PUBKEY`` values of ``<prefix>/ADMIN`` (index
301, 302, ...), used by Handle protocol clients to log in with the matching private key.

Keys are sent and kept as PEM (SubjectPublicKeyInfo). For logins, a key value may also hold
the Handle binary key form (as Handle tools write it). RSA and DSA keys log in with the CAICT
ID-SDK 2.0.3; EC keys are accepted and verified (ECDSA with SHA-256) but that SDK cannot sign
with them (it asks Java for ``SHA256withEC``, which does not exist).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, padding, rsa
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import ADMIN_SUFFIX
from app.errors import InvalidRequest, PublicKeyNotFound
from app.registry import clock
from app.storage import handles as repo
from resolver.handle_protocol.body import Reader
from resolver.handle_protocol.message import MalformedMessage
from resolver.values import HandleValue, value_json, values_from_stored

KEY_TYPE = "HS_PUBKEY"
FIRST_INDEX = 301
MAX_PEM = 16 * 1024
HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "SHA-256": hashes.SHA256,
    "SHA256": hashes.SHA256,
    "SHA1": hashes.SHA1,
    "SHA-1": hashes.SHA1,
}
PublicKey = rsa.RSAPublicKey | dsa.DSAPublicKey | ec.EllipticCurvePublicKey


@dataclass(frozen=True)
class PublishedKey:
    index: int
    pem: str
    algorithm: str

    def as_json(self) -> dict[str, object]:
        return {"index": self.index, "publicKey": self.pem, "algorithm": self.algorithm}


def parse_pem(pem: Any) -> PublicKey:
    """A PEM SubjectPublicKeyInfo that can verify logins (RSA, DSA, EC)."""
    if not isinstance(pem, str) or not pem.strip() or len(pem) > MAX_PEM:
        raise InvalidRequest("publicKey must be a PEM public key (-----BEGIN PUBLIC KEY-----)")
    try:
        key = serialization.load_pem_public_key(pem.strip().encode())
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise InvalidRequest(f"publicKey is not a PEM public key: {exc}") from exc
    if not isinstance(key, rsa.RSAPublicKey | dsa.DSAPublicKey | ec.EllipticCurvePublicKey):
        raise InvalidRequest("publicKey must be an RSA, DSA or EC key")
    return key


def _algorithm(key: PublicKey) -> str:
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA"
    return "DSA" if isinstance(key, dsa.DSAPublicKey) else "EC"


def _admin(prefix: str) -> str:
    return f"{prefix.upper()}/{ADMIN_SUFFIX}"


async def _locked(session: AsyncSession, prefix: str) -> list[dict[str, Any]]:
    stored = await repo.lock(session, _admin(prefix))
    if stored is None:
        raise PublicKeyNotFound(f"{_admin(prefix)} does not exist on this node")
    return stored


async def add_key(session: AsyncSession, prefix: str, pem: Any, *, actor: str) -> PublishedKey:
    """Publish ``pem`` on ``<prefix>/ADMIN`` at the next free index from 301."""
    key = parse_pem(pem)
    text = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    stored = await _locked(session, prefix)
    index = max([FIRST_INDEX - 1, *(v["index"] for v in stored if v["index"] > 300)]) + 1
    value = HandleValue(index=index, type=KEY_TYPE, format="string", value=text)
    stamped = {**value_json(value), "timestamp": clock.handle_timestamp(clock.now())}
    await repo.replace(
        session,
        handle=_admin(prefix),
        values=[*stored, stamped],
        now=clock.now(),
        actor=actor,
        before=stored,
    )
    return PublishedKey(index, text, _algorithm(key))


async def list_keys(session: AsyncSession, prefix: str) -> list[PublishedKey]:
    stored = (await repo.stored_many(session, [_admin(prefix)])).get(_admin(prefix), [])
    keys = []
    for v in values_from_stored(stored):
        if v.type == KEY_TYPE and v.format == "string":
            keys.append(PublishedKey(v.index, v.value, _algorithm(parse_pem(v.value))))
    return keys


async def revoke_key(session: AsyncSession, prefix: str, index: int, *, actor: str) -> None:
    stored = await _locked(session, prefix)
    kept = [v for v in stored if not (v["index"] == index and v["type"] == KEY_TYPE)]
    if len(kept) == len(stored):
        raise PublicKeyNotFound(f"{_admin(prefix)} has no public key at index {index}")
    await repo.replace(
        session, handle=_admin(prefix), values=kept, now=clock.now(), actor=actor, before=stored
    )


# --- verifying a login ---


def key_of(value: HandleValue) -> PublicKey | None:
    """The key an ``HS_PUBKEY`` value holds: PEM text, or the Handle binary key form."""
    if value.type != KEY_TYPE:
        return None
    if value.format == "string" and "BEGIN PUBLIC KEY" in str(value.value):
        try:
            return parse_pem(value.value)
        except InvalidRequest:
            return None
    if value.format == "base64":
        return _handle_binary_key(base64.b64decode(value.value))
    return None


def _handle_binary_key(data: bytes) -> PublicKey | None:
    """``str type, int2 flags`` then RSA (exponent, modulus) or DSA (q, p, g, y)."""
    reader = Reader(data)
    try:
        kind = reader.bytes_("key type")
        reader.int2("key flags")
        numbers = []
        while reader.left:
            numbers.append(int.from_bytes(reader.bytes_("key number"), "big"))
        if kind == b"RSA_PUB_KEY" and len(numbers) == 2:
            return rsa.RSAPublicNumbers(numbers[0], numbers[1]).public_key()
        if kind == b"DSA_PUB_KEY" and len(numbers) == 4:
            q, p, g, y = numbers
            return dsa.DSAPublicNumbers(y, dsa.DSAParameterNumbers(p, q, g)).public_key()
    except (MalformedMessage, ValueError):
        return None
    return None


def verifies(key: PublicKey, hash_id: str, signature: bytes, data: bytes) -> bool:
    """Whether ``signature`` over ``data`` was made with the private half of ``key``."""
    algorithm = HASHES.get(hash_id.upper())
    if algorithm is None:
        return False
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), algorithm())
        elif isinstance(key, dsa.DSAPublicKey):
            key.verify(signature, data, algorithm())
        else:
            key.verify(signature, data, ec.ECDSA(algorithm()))
    except (InvalidSignature, ValueError):
        return False
    return True
