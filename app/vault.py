"""Secrets the node must read back (NB-IoT push tokens: OneNET signs with the token itself, so
a digest will not do), encrypted at rest with a key derived from the node key.

AES-256-GCM (``cryptography``) under a key derived by HKDF-SHA256 from the node's Ed25519
private key (IDNODE_NODE_KEY_FILE), a fresh 96-bit nonce per value, and the row the value
belongs to as associated data, so a sealed value copied to another row does not open. Stored
as ``v1.<base64url(nonce + ciphertext)>``. A database copied without the key file holds no
usable token; losing the key file means configuring the platforms again.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.errors import SecretUnreadable
from app.reporting.keys import NodeKey, load_or_create

VERSION = "v1."
_INFO = b"idnode vault v1: secrets at rest"
_NONCE_BYTES = 12


def vault_key(node_key: NodeKey) -> bytes:
    """The 256-bit encryption key derived from the node key (never stored)."""
    raw = node_key.private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(raw)


class Vault:
    """Seals and opens secrets with the node key at ``key_file`` (read on first use)."""

    def __init__(self, key_file: str | Path) -> None:
        self._key_file = Path(key_file)
        self._cipher: AESGCM | None = None

    def _aead(self) -> AESGCM:
        if self._cipher is None:
            self._cipher = AESGCM(vault_key(load_or_create(self._key_file)))
        return self._cipher

    def seal(self, secret: str, *, belongs_to: str) -> str:
        """``secret`` encrypted for storage in the row named ``belongs_to``."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead().encrypt(nonce, secret.encode(), belongs_to.encode())
        return VERSION + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, stored: str, *, belongs_to: str) -> str:
        """The secret sealed in ``stored``; ``SecretUnreadable`` when this node key cannot
        open it (another key file, or the value was altered or moved)."""
        try:
            if not stored.startswith(VERSION):
                raise ValueError("not a sealed value")
            blob = base64.urlsafe_b64decode(stored[len(VERSION) :])
            plain = self._aead().decrypt(
                blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], belongs_to.encode()
            )
            return plain.decode()
        except (InvalidTag, ValueError, binascii.Error) as exc:
            raise SecretUnreadable(
                f"the stored secret of {belongs_to} cannot be opened with the node key "
                f"{self._key_file} (was IDNODE_NODE_KEY_FILE replaced?); configure it again"
            ) from exc
