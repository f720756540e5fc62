"""The node's Ed25519 key: it signs every report so the top-level node can tell it is ours."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


class NodeKeyUnreadable(Exception):
    """The key file exists but holds no Ed25519 private key (never shows its content)."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: not an Ed25519 private key in PEM ({reason})")


@dataclass(frozen=True)
class NodeKey:
    """The private key (kept in memory, never logged) and what others may know of it."""

    private: Ed25519PrivateKey

    @property
    def public_pem(self) -> str:
        return (
            self.private.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    @property
    def key_id(self) -> str:
        """First 16 hex digits of SHA-256 over the raw public key: names the key in headers."""
        raw = self.private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return hashlib.sha256(raw).hexdigest()[:16]

    def signature(self, body: bytes) -> str:
        """``X-Idnode-Signature`` value: ``ed25519 <base64 signature over the body bytes>``."""
        return "ed25519 " + base64.b64encode(self.private.sign(body)).decode()

    def __repr__(self) -> str:  # a key printed by accident shows only its id
        return f"NodeKey(key_id={self.key_id!r})"


def load_or_create(path: str | Path) -> NodeKey:
    """The key at ``path``, created (mode 0600) when absent.

    Several worker processes may start at once: the new key is written to a private temporary
    file and linked into place, which fails if another process got there first, so every
    process ends up with the one key on disk.
    """
    path = Path(path)
    if not path.exists():
        _create(path)
    try:
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise NodeKeyUnreadable(path, type(exc).__name__) from None
    if not isinstance(loaded, Ed25519PrivateKey):
        raise NodeKeyUnreadable(path, type(loaded).__name__)
    return NodeKey(loaded)


def _create(path: Path) -> None:
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(pem)
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        temporary.unlink()
