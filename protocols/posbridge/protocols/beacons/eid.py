"""Eddystone-EID ephemeral identifiers and their resolution (google/eddystone eid-computation.md).

A beacon and its trusted resolver share a 128-bit AES identity key, a rotation exponent K (0-15)
and the beacon's 32-bit seconds counter. The temporary key is AES-128(identity key,
``00*11 || FF || 00 00 || counter[31:16]``); the EID is the first 8 bytes of AES-128(temporary key,
``00*11 || K || counter with its K low bits cleared``), so it changes every 2**K seconds and
nobody without the identity key can link two of them. :class:`EidResolver` maps a sighted EID back
to the stable id of a registered beacon, accepting the neighbouring rotation periods for clock
drift (the spec asks resolvers to tolerate it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from posbridge.protocols.errors import KeyMaterialError
from posbridge.protocols.types import BeaconId

MAX_ROTATION_EXPONENT = 15
_COUNTER_MASK = 0xFFFFFFFF


def _aes128_block(key: bytes, block: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return encryptor.update(block) + encryptor.finalize()


def _check(identity_key: bytes, rotation_exponent: int) -> None:
    if len(identity_key) != 16:
        raise KeyMaterialError(
            f"EID identity key must be 16 bytes, got {len(identity_key)}", field="identity_key"
        )
    if not 0 <= rotation_exponent <= MAX_ROTATION_EXPONENT:
        raise KeyMaterialError(
            f"EID rotation exponent must be 0-{MAX_ROTATION_EXPONENT}, got {rotation_exponent}",
            field="rotation_exponent",
        )


def temporary_key(identity_key: bytes, beacon_time: int) -> bytes:
    """The 16-byte temporary key for a beacon time counter (seconds; valid for 65536 s)."""
    counter = beacon_time & _COUNTER_MASK
    block = bytes(11) + b"\xff" + bytes(2) + (counter >> 16).to_bytes(2, "big")
    return _aes128_block(identity_key, block)


def compute_eid(identity_key: bytes, rotation_exponent: int, beacon_time: int) -> bytes:
    """The 8-byte EID a beacon broadcasts at ``beacon_time`` (its seconds counter)."""
    _check(identity_key, rotation_exponent)
    counter = beacon_time & _COUNTER_MASK
    quantised = (counter >> rotation_exponent) << rotation_exponent
    block = bytes(11) + bytes((rotation_exponent,)) + quantised.to_bytes(4, "big")
    return _aes128_block(temporary_key(identity_key, counter), block)[:8]


@dataclass(frozen=True)
class EidRegistration:
    """What a resolver keeps about one EID beacon.

    ``epoch`` is the time (on the clock advertisements are stamped with, seconds) at which the
    beacon's counter read 0: ``beacon_time = t - epoch``. The identity key stays out of ``repr``.
    """

    identity_key: bytes = field(repr=False)
    rotation_exponent: int
    epoch: float = 0.0

    def __post_init__(self) -> None:
        _check(self.identity_key, self.rotation_exponent)

    @property
    def beacon_id(self) -> BeaconId:
        """The beacon's stable id: ``eddystone-eid:<hex of the EID it sent at counter 0>``."""
        return BeaconId(f"eddystone-eid:{compute_eid(self.identity_key, self.rotation_exponent, 0).hex()}")

    def beacon_time(self, t: float) -> int:
        """The beacon's counter at time ``t``."""
        return int(t - self.epoch)

    def eid_at(self, t: float) -> bytes:
        """The EID the beacon sends at time ``t``."""
        return compute_eid(self.identity_key, self.rotation_exponent, self.beacon_time(t))


class EidResolver:
    """Maps sighted EIDs to registered beacons' stable ids.

    Keeps a table of each registration's EIDs for the current rotation period and its two
    neighbours, rebuilt only when time moves into another period; a lookup is one dict access.
    """

    def __init__(self, registrations: Iterable[EidRegistration], tolerance_periods: int = 1) -> None:
        self._registrations = tuple(registrations)
        self._stable_ids = tuple(registration.beacon_id for registration in self._registrations)
        self._tolerance = tolerance_periods
        self._table: dict[bytes, BeaconId] = {}
        self._valid_from = 1.0
        self._valid_until = 0.0

    def __len__(self) -> int:
        return len(self._registrations)

    def _rebuild(self, t: float) -> None:
        table: dict[bytes, BeaconId] = {}
        valid_from, valid_until = float("-inf"), float("inf")
        for registration, stable_id in zip(self._registrations, self._stable_ids, strict=True):
            period = 1 << registration.rotation_exponent
            window = registration.beacon_time(t) >> registration.rotation_exponent
            for offset in range(-self._tolerance, self._tolerance + 1):
                counter = (window + offset) * period
                if counter >= 0:
                    eid = compute_eid(registration.identity_key, registration.rotation_exponent, counter)
                    table[eid] = stable_id
            start = registration.epoch + window * period
            valid_from = max(valid_from, start)
            valid_until = min(valid_until, start + period)
        self._table, self._valid_from, self._valid_until = table, valid_from, valid_until

    def resolve(self, eid: bytes, t: float) -> BeaconId | None:
        """The stable id of the registered beacon that sends ``eid`` around time ``t``, else None."""
        if not self._registrations:
            return None
        if not self._valid_from <= t < self._valid_until:
            self._rebuild(t)
        return self._table.get(eid)
