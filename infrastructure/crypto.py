"""The deployment key and what is derived from it.

One secret (`HEADWATER_SECRET_KEY`, or a key generated once under `./var/`)
roots every other key: HKDF derives a separate sub-key for each purpose, so a
lookup hash can never be mistaken for a token digest or a wrapping key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

logger = logging.getLogger(__name__)

MIN_SECRET_LENGTH: Final = 32
NONCE_BYTES: Final = 12
KEY_FILE_NAME: Final = "secret.key"


class DeploymentKey:
    """The root secret of one deployment. Every machine of it shares it."""

    def __init__(self, secret: str) -> None:
        if len(secret) < MIN_SECRET_LENGTH:
            msg = (
                f"the deployment key is {len(secret)} characters; it needs at least "
                f"{MIN_SECRET_LENGTH}. Generate one with: "
                "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
            raise ValueError(msg)
        self._secret = secret.encode()

    def __repr__(self) -> str:
        return "DeploymentKey(<hidden>)"

    def derive(self, purpose: str) -> bytes:
        """A 256-bit key for one purpose only."""
        return HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=b"headwater deployment key",
            info=f"headwater/{purpose}".encode(),
        ).derive(self._secret)

    @classmethod
    def load_or_generate(cls, directory: Path) -> DeploymentKey:
        """Read the key kept in `directory`, generating it the first time.

        Several processes may start at once: the key is written to a private
        temporary file and linked into place, which fails for all but one, so
        every process ends up reading the same complete key.
        """
        path = directory / KEY_FILE_NAME
        if not path.exists():
            directory.mkdir(parents=True, exist_ok=True)
            temporary = (
                directory / f".{KEY_FILE_NAME}.{os.getpid()}.{secrets.token_hex(4)}"
            )
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as file:
                file.write(secrets.token_urlsafe(32))
                file.flush()
                os.fsync(file.fileno())
            try:
                os.link(temporary, path)
                logger.info("generated a deployment key at %s", path)
            except FileExistsError:
                pass
            finally:
                temporary.unlink()
        return cls(path.read_text().strip())


class HmacFingerprints:
    """Keyed hashes (HMAC-SHA256) under a key derived for lookups."""

    def __init__(self, key: DeploymentKey) -> None:
        self._key = key.derive("fingerprints")

    def of(self, purpose: str, value: str | bytes) -> str:
        data = value.encode() if isinstance(value, str) else value
        mac = hmac.new(self._key, purpose.encode() + b"\x00" + data, hashlib.sha256)
        return mac.hexdigest()


def seal(key: bytes, plaintext: bytes, *, context: bytes) -> bytes:
    """AES-256-GCM with a random nonce; `context` is bound as associated data."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, context)


def open_sealed(key: bytes, sealed: bytes, *, context: bytes) -> bytes:
    """The inverse of `seal`; raises `cryptography.exceptions.InvalidTag`."""
    return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], context)


def to_text(data: bytes) -> str:
    """URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def from_text(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
