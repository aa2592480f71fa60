"""Card data at rest: AES-GCM under a per-record data key wrapped by a device key.

PCI DSS v4.0 3.5.1 (PAN unreadable where stored), 3.3.1/3.3.2 (sensitive authentication data
not retained after authorization) and 3.6/3.7 (key management). Each record gets a fresh 256-bit
data key; the record is sealed with AES-256-GCM (NIST SP 800-38D) with the idempotency key as
associated data, and the data key is wrapped with the device key by AES Key Wrap (RFC 3394).
Destroying the wrapped data key makes the sealed record unrecoverable, which is how the queue
discards card data once the processor has answered.

The device key lives in a file (mode 0600) beside the queue database, or comes from the
``POSBRIDGE_DEVICE_KEY`` environment variable (64 hex digits). In a fleet the lanes and the store
forwarder share it so the forwarder can open what the lanes publish.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap
from posbridge.protocols.errors import IntegrityError, KeyMaterialError

DEVICE_KEY_ENV = "POSBRIDGE_DEVICE_KEY"
KEY_BYTES = 32
NONCE_BYTES = 12
_SHA256_BLOCK_BYTES = 64


@dataclass(frozen=True)
class SealedRecord:
    """A sealed payload: ``nonce`` (12 bytes), ``ciphertext`` (payload + 16-byte tag), ``wrapped_key``
    (the 32-byte data key wrapped by RFC 3394, 40 bytes)."""

    nonce: bytes
    ciphertext: bytes = field(repr=False)
    wrapped_key: bytes = field(repr=False)

    def to_hex(self) -> dict[str, str]:
        """The record as a fleet message carries it: ``{"nonce", "ciphertext", "wrapped_key"}`` in hex."""
        return {
            "nonce": self.nonce.hex(),
            "ciphertext": self.ciphertext.hex(),
            "wrapped_key": self.wrapped_key.hex(),
        }

    @classmethod
    def from_hex(cls, parts: Mapping[str, str]) -> SealedRecord:
        """A record from the hex form of :meth:`to_hex`."""
        return cls(
            bytes.fromhex(parts["nonce"]),
            bytes.fromhex(parts["ciphertext"]),
            bytes.fromhex(parts["wrapped_key"]),
        )


def _read_key_text(path: Path) -> str:
    """The text of a device key file; a file that is not ASCII is a :class:`KeyMaterialError`."""
    try:
        return path.read_text(encoding="ascii")
    except UnicodeDecodeError:
        raise KeyMaterialError(f"device key file {path} is not 64 hex digits") from None


class DeviceKey:
    """The key-encrypting key of one lane (or of a fleet): wraps data keys, fingerprints PANs."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise KeyMaterialError(f"a device key must be {KEY_BYTES} bytes, got {len(key)}", length=len(key))
        self._key = key
        fingerprint_key = hmac.new(key, b"posbridge card fingerprint", hashlib.sha256).digest()
        block = fingerprint_key.ljust(_SHA256_BLOCK_BYTES, b"\0")
        self._fingerprint_inner = hashlib.sha256(bytes(byte ^ 0x36 for byte in block))
        self._fingerprint_outer = hashlib.sha256(bytes(byte ^ 0x5C for byte in block))

    def __repr__(self) -> str:
        return "DeviceKey(<hidden>)"

    @classmethod
    def generate(cls) -> DeviceKey:
        """A fresh random device key."""
        return cls(secrets.token_bytes(KEY_BYTES))

    @classmethod
    def from_hex(cls, text: str) -> DeviceKey:
        """A device key from 64 hex digits."""
        try:
            return cls(bytes.fromhex(text.strip()))
        except ValueError:
            raise KeyMaterialError("a device key must be 64 hex digits") from None

    @classmethod
    def load_or_create(cls, path: Path) -> DeviceKey:
        """``$POSBRIDGE_DEVICE_KEY`` if set, else the key in ``path`` (created with mode 0600 if missing)."""
        from_env = os.environ.get(DEVICE_KEY_ENV)
        if from_env:
            return cls.from_hex(from_env)
        try:
            return cls.from_hex(_read_key_text(path))
        except FileNotFoundError:
            pass
        key = cls.generate()
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return cls.from_hex(_read_key_text(path))
        try:
            os.write(descriptor, key._key.hex().encode("ascii"))
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        return key

    def seal(self, payload: bytes, associated_data: bytes) -> SealedRecord:
        """Seal ``payload`` under a new data key bound to ``associated_data`` (the idempotency key)."""
        material = os.urandom(KEY_BYTES + NONCE_BYTES)
        data_key, nonce = material[:KEY_BYTES], material[KEY_BYTES:]
        ciphertext = AESGCM(data_key).encrypt(nonce, payload, associated_data)
        return SealedRecord(nonce, ciphertext, aes_key_wrap(self._key, data_key))

    def open(self, record: SealedRecord, associated_data: bytes) -> bytes:
        """The payload of a sealed record; :class:`IntegrityError` if it fails to authenticate."""
        try:
            data_key = aes_key_unwrap(self._key, record.wrapped_key)
            return AESGCM(data_key).decrypt(record.nonce, record.ciphertext, associated_data)
        except (InvalidUnwrap, InvalidTag, ValueError) as error:
            raise IntegrityError("a sealed card record failed to authenticate (wrong device key?)") from error

    def open_secret(self, record: SealedRecord, key: str) -> dict[str, Any]:
        """The JSON object the queue sealed for transaction ``key`` (card data or account token)."""
        secret: dict[str, Any] = json.loads(self.open(record, key.encode()))
        return secret

    def fingerprint(self, pan: str) -> str:
        """A keyed HMAC-SHA-256 of a PAN (PCI DSS 3.5.1.1): matches the same card without storing it.

        HMAC as RFC 2104 defines it, from the key's inner and outer SHA-256 states computed once
        (the digest of :func:`hmac.digest`, without setting up the key on every capture).
        """
        inner = self._fingerprint_inner.copy()
        inner.update(pan.encode("ascii"))
        outer = self._fingerprint_outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()[:32]
