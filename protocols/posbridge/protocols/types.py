"""Core value types shared by every layer (DESIGN.md, "Core types").

All are frozen dataclasses. Types that can hold clear card data (:class:`Track`, :class:`Card`,
:class:`ChipRead`) keep it out of ``repr`` so that logging one never leaks a PAN; what leaves
the edge is :class:`MaskedCard` (PCI DSS 3.4.1: first six and last four digits).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from posbridge.protocols.cards import card_brand, mask_pan
from posbridge.protocols.errors import TrackError


class TrackFormat(enum.StrEnum):
    """Character encoding of a magnetic track (ISO/IEC 7811-2 §7)."""

    ALPHA = "alpha"  # 6 data bits + odd parity, Track 1
    BCD = "bcd"  # 4 data bits + odd parity, Tracks 2 and 3


class Direction(enum.StrEnum):
    """Direction the card moved through the head relative to the track's recorded order."""

    FORWARD = "forward"
    REVERSE = "reverse"


@dataclass(frozen=True)
class Track:
    """One decoded magnetic track.

    ``text`` holds the characters strictly between the start and end sentinels; ``raw_bits``
    holds the recovered bit stream (one 0/1 byte per bit, in recorded order) from the first
    one-bit of the start sentinel through the LRC character. Both are kept out of ``repr``.
    ``number`` is the ISO track number (1, 2 or 3) when it can be told from the format and
    length, else 0.
    """

    number: int
    format: TrackFormat
    text: str = field(repr=False)
    direction: Direction = Direction.FORWARD
    raw_bits: bytes = field(default=b"", repr=False)
    lrc_ok: bool = True


@dataclass(frozen=True)
class MaskedCard:
    """What may leave the edge: first six and last four digits, brand and expiry (PCI DSS 3.4.1)."""

    first6: str
    last4: str
    pan_length: int
    brand: str
    expiry: str | None = None  # YYMM
    service_code: str | None = None

    @classmethod
    def from_pan(cls, pan: str, expiry: str | None = None, service_code: str | None = None) -> MaskedCard:
        """Mask a clear PAN."""
        masked = mask_pan(pan)
        head = masked.split("*", 1)[0]
        tail = masked.rsplit("*", 1)[-1] if "*" in masked else ""
        return cls(
            first6=head,
            last4=tail,
            pan_length=len(pan),
            brand=card_brand(pan),
            expiry=expiry,
            service_code=service_code,
        )

    @property
    def masked_pan(self) -> str:
        """The PAN as ``411111******1111``."""
        hidden = max(self.pan_length - len(self.first6) - len(self.last4), 0)
        return self.first6 + "*" * hidden + self.last4

    def to_json(self) -> dict[str, Any]:
        """The masked card as a JSON-ready dict (the ``"card"`` object of every ``--json`` output)."""
        return {
            "pan": self.masked_pan,
            "brand": self.brand,
            "expiry": self.expiry,
            "service_code": self.service_code,
        }

    def __str__(self) -> str:
        expiry = f" exp {self.expiry[2:]}/{self.expiry[:2]}" if self.expiry and len(self.expiry) == 4 else ""
        return f"{self.brand.upper()} {self.masked_pan}{expiry}"


_EXPIRY = re.compile(r"[0-9]{2}(?:0[1-9]|1[0-2])")


def is_valid_expiry(expiry: object) -> TypeGuard[str]:
    """Whether ``expiry`` is an expiry date: text YYMM with month 01-12 (ISO/IEC 7813 §10.2, §11.2)."""
    return isinstance(expiry, str) and _EXPIRY.fullmatch(expiry) is not None


def validate_expiry(expiry: object) -> str:
    """Return ``expiry`` if :func:`is_valid_expiry`, else raise :class:`TrackError` (field ``"expiry"``).

    The message never quotes the value.
    """
    if not is_valid_expiry(expiry):
        raise TrackError("an expiry date must be 4 digits YYMM with month 01-12", field="expiry")
    return expiry


@dataclass(frozen=True)
class Card:
    """Cardholder data parsed from tracks or EMV data (ISO/IEC 7813 format code B).

    ``expiry`` is YYMM with month 01-12 or ``None``; anything else raises :class:`TrackError`
    (see :func:`validate_expiry`). Every field that is card data is kept out of ``repr``.
    """

    pan: str = field(repr=False)
    expiry: str | None = field(default=None, repr=False)
    service_code: str | None = field(default=None, repr=False)
    name: str | None = field(default=None, repr=False)
    discretionary: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.expiry is not None:
            validate_expiry(self.expiry)

    @property
    def masked(self) -> MaskedCard:
        """The masked form that may be shown and stored in clear."""
        return MaskedCard.from_pan(self.pan, self.expiry, self.service_code)

    def __repr__(self) -> str:
        return f"Card({self.masked})"


@dataclass(frozen=True)
class Swipe:
    """A card swipe: the tracks decoded from one pass of a card past the head.

    ``started_at`` and ``ended_at`` are seconds since the start of the audio stream;
    ``quality`` is 0–1 (the decoder's confidence); ``channel`` is the audio channel.
    """

    tracks: tuple[Track, ...]
    started_at: float
    ended_at: float
    quality: float = 1.0
    channel: int = 0


@dataclass(frozen=True)
class EncryptedCardData:
    """Track data encrypted at the edge with DUKPT (ANSI X9.24): what the host may hold."""

    ksn: bytes
    ciphertext: bytes
    masked: MaskedCard
    scheme: str = "aes128"  # "aes128" | "tdes"


@dataclass(frozen=True)
class ChipRead:
    """The outcome of an EMV chip read through a powered audio-jack reader.

    ``tlv`` is the concatenated BER-TLV data the reader sent (EMV Book 3, Annex B); ``card``
    comes from tags 57 / 5A / 5F24 / 5F20; ``cryptogram`` is the 9F27 type (AAC, TC, ARQC).
    """

    tlv: bytes = field(repr=False)
    card: Card
    cryptogram: str | None = None
    amount: int | None = None  # minor units, from 9F02
    currency: str | None = None  # ISO 4217 numeric code from 5F2A

    @property
    def masked(self) -> MaskedCard:
        """The masked card."""
        return self.card.masked


@dataclass(frozen=True)
class Advertisement:
    """One BLE advertisement as bleak reports it (``AdvertisementData`` plus device fields).

    ``manufacturer_data`` is keyed by company id without the id bytes; ``service_data`` by
    128-bit UUID string. ``t`` is seconds (monotonic or the recording's own clock).
    """

    t: float
    address: str
    rssi: int
    name: str | None = None
    tx_power: int | None = None
    manufacturer_data: dict[int, bytes] = field(default_factory=dict)
    service_data: dict[str, bytes] = field(default_factory=dict)
    service_uuids: tuple[str, ...] = ()


@dataclass(frozen=True)
class BeaconId:
    """A beacon identity in canonical text form.

    ``ibeacon:<uuid lower-case>:<major>:<minor>``, ``eddystone-uid:<namespace hex>:<instance hex>``,
    ``altbeacon:<id1 hex>:<id2>:<id3>``, ``eddystone-eid:<eid hex>``.
    """

    value: str

    @property
    def scheme(self) -> str:
        """The beacon format: ``ibeacon``, ``eddystone-uid``, ``altbeacon`` or ``eddystone-eid``."""
        return self.value.split(":", 1)[0]

    def __str__(self) -> str:
        return self.value


class Zone(enum.StrEnum):
    """How near a checked-in customer is."""

    COUNTER = "counter"
    SHOP = "shop"
    GONE = "gone"


@dataclass(frozen=True)
class PresenceEvent:
    """A check-in or check-out transition; the only presence data posbridge keeps."""

    t: float
    beacon: BeaconId
    customer: str | None
    zone: Zone
    distance_m: float | None

    @property
    def event(self) -> str:
        """``check_in`` or ``check_out``."""
        raise NotImplementedError


@dataclass(frozen=True)
class CheckIn(PresenceEvent):
    """A registered beacon arrived at the counter."""

    @property
    def event(self) -> str:
        return "check_in"


@dataclass(frozen=True)
class CheckOut(PresenceEvent):
    """A checked-in beacon left, or was not seen for the check-out timeout."""

    @property
    def event(self) -> str:
        return "check_out"


class TransactionState(enum.StrEnum):
    """Lifecycle of a transaction in the queue."""

    CAPTURED = "captured"
    FORWARDING = "forwarding"
    APPROVED = "approved"
    DECLINED = "declined"
    FAILED = "failed"
    SETTLED = "settled"
    REFUSED = "refused"


@dataclass(frozen=True)
class Transaction:
    """A payment as the queue holds it: card data only in masked form.

    ``amount`` is in minor units of ``currency`` (ISO 4217 alpha code); ``key`` is the
    idempotency key created at capture and reused end to end.
    """

    key: str
    amount: int
    currency: str
    card: MaskedCard | None
    customer: str | None
    lane: str
    state: TransactionState
    created_at: float
    updated_at: float
    source: str = "swipe"  # swipe | chip | keyed | dongle | checkin
    reason: str | None = None
    processor_ref: str | None = None
