"""What a capture carries into the queue, from each source (issue 7, "What feeds it").

A :class:`CaptureRequest` is built from a card swipe (ISO/IEC 7813 Track 2), an EMV chip read
(Track 2 equivalent data, tag 57), keyed entry, a dongle's DUKPT payload (ANSI X9.24, kept
encrypted as it arrived) or a checked-in customer (pay by check-in: the customer's account token
at the processor instead of card data). Clear card data lives only in memory here and is sealed
by the queue before it touches the disk.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii
from typing import Any, Protocol

from posbridge.protocols.cards import validate_pan
from posbridge.protocols.errors import CaptureRefused, ParseError
from posbridge.protocols.magstripe import card_from_tracks
from posbridge.protocols.types import Card, ChipRead, EncryptedCardData, MaskedCard, Swipe, Track, TrackFormat

SOURCES = ("swipe", "chip", "keyed", "dongle", "checkin")


def json_text(value: object) -> str:
    """``value`` as JSON text, exactly what :func:`json.dumps` gives for it.

    Captures write a few fixed-shape JSON texts; composing them from this is what
    ``json.dumps(..., separators=(",", ":"))`` gives, without the encoder's set-up per call for
    the usual values (a string, ``None`` or an ``int``). Anything else goes through
    :func:`json.dumps` itself.
    """
    if value is None:
        return "null"
    if isinstance(value, str):
        return encode_basestring_ascii(value)
    if type(value) is int:
        return int.__repr__(value)
    return json.dumps(value, separators=(",", ":"))


def _masked_card(value: Any) -> MaskedCard:
    """A :class:`MaskedCard` from its JSON object; :class:`TypeError` unless every field has its type."""
    masked = MaskedCard(**value)
    texts = (masked.first6, masked.last4, masked.brand)
    optional_texts = (masked.expiry, masked.service_code)
    if (
        not all(isinstance(text, str) for text in texts)
        or not all(text is None or isinstance(text, str) for text in optional_texts)
        or isinstance(masked.pan_length, bool)
        or not isinstance(masked.pan_length, int)
    ):
        raise TypeError("a masked card has text fields and an integer pan_length")
    return masked


class AccountHolder(Protocol):
    """A customer as the registry of :mod:`posbridge.host.customers` describes one."""

    @property
    def id(self) -> str: ...

    @property
    def account_token(self) -> str | None: ...


#: The largest amount a capture may carry, in minor units (a signed 64-bit SQLite INTEGER).
MAX_AMOUNT = 2**63 - 1


def card_from_track2(text: str) -> Card:
    """A :class:`Card` from Track 2 text between the sentinels: ``PAN=YYMM<service code><discretionary>``.

    Parsed by :func:`posbridge.protocols.magstripe.card_from_tracks` (ISO/IEC 7813 format B);
    :class:`TrackError` if malformed or the PAN fails the Luhn check.
    """
    return card_from_tracks([Track(number=2, format=TrackFormat.BCD, text=text)])


@dataclass(frozen=True)
class CaptureRequest:
    """One payment to capture. ``amount`` is in minor units of ``currency`` (ISO 4217 alpha).

    Exactly one of ``card`` (clear, sealed at rest), ``encrypted`` (DUKPT, stored as is) or
    ``account_token`` (pay by check-in) is set. ``key`` is the idempotency key; ``None`` lets the
    queue create one. ``confirm`` lists the soft risk alerts the cashier has confirmed.
    """

    amount: int
    currency: str
    source: str
    card: Card | None = None
    track2: str | None = field(default=None, repr=False)
    encrypted: EncryptedCardData | None = None
    customer: str | None = None
    account_token: str | None = field(default=None, repr=False)
    key: str | None = None
    confirm: frozenset[str] = frozenset()
    masked: MaskedCard | None = field(init=False, repr=False, compare=False)
    """The masked card, if the capture carries a card (set from ``card`` or ``encrypted``)."""

    def __post_init__(self) -> None:
        if isinstance(self.amount, bool) or not isinstance(self.amount, int) or self.amount <= 0:
            raise ParseError("amount must be a positive whole number of minor units", field="amount")
        if self.amount > MAX_AMOUNT:
            raise ParseError(f"amount must be at most {MAX_AMOUNT} minor units", field="amount")
        if not (len(self.currency) == 3 and self.currency.isalpha() and self.currency.isupper()):
            raise ParseError("currency must be an ISO 4217 code such as USD", field="currency")
        if self.source not in SOURCES:
            raise ParseError(f"source must be one of {', '.join(SOURCES)}", field="source")
        if (self.card is not None) + (self.encrypted is not None) + (self.account_token is not None) != 1:
            raise ParseError("a capture needs exactly one of card data, a DUKPT payload or an account token")
        if self.key is not None and not (0 < len(self.key) <= 128 and self.key.isprintable()):
            raise ParseError("an idempotency key must be 1-128 printable characters", field="key")
        masked = self.card.masked if self.card is not None else None
        if self.encrypted is not None:
            masked = self.encrypted.masked
        object.__setattr__(self, "masked", masked)

    @classmethod
    def build(
        cls,
        amount: int,
        currency: str,
        source: Card | Swipe | ChipRead | EncryptedCardData | AccountHolder,
        *,
        key: str | None = None,
        confirm: Iterable[str] = (),
        keyed: bool = False,
    ) -> CaptureRequest:
        """A request from any capture source object (what :meth:`TransactionQueue.capture` accepts)."""
        confirmed = frozenset(confirm)
        if isinstance(source, Swipe):
            track2 = next((t.text for t in source.tracks if t.number == 2), None)
            return cls(
                amount,
                currency,
                "swipe",
                card=card_from_tracks(source.tracks),
                track2=track2,
                key=key,
                confirm=confirmed,
            )
        if isinstance(source, ChipRead):
            return cls(amount, currency, "chip", card=source.card, key=key, confirm=confirmed)
        if isinstance(source, EncryptedCardData):
            return cls(amount, currency, "dongle", encrypted=source, key=key, confirm=confirmed)
        if isinstance(source, Card):
            return cls(
                amount, currency, "keyed" if keyed else "swipe", card=source, key=key, confirm=confirmed
            )
        if source.account_token is None:
            reason = f"customer {source.id} has no account for pay by check-in; take another payment method"
            raise CaptureRefused(reason, reason=reason, kind="no_account")
        return cls(
            amount,
            currency,
            "checkin",
            customer=source.id,
            account_token=source.account_token,
            key=key,
            confirm=confirmed,
        )

    @classmethod
    def from_json(cls, record: Mapping[str, Any], default_currency: str = "USD") -> CaptureRequest:
        """A request from one JSON-lines record of ``posbridge queue capture``.

        ``{"key", "amount", "currency", "track2"}`` for a swipe, ``"pan"`` + ``"expiry"`` (YYMM)
        for keyed entry, ``"ksn"`` + ``"ciphertext"`` (hex) + ``"masked"`` for a dongle payload,
        ``"customer"`` + ``"account_token"`` for pay by check-in; optional ``"source"`` and
        ``"confirm"`` (list of alert kinds).
        """
        if not isinstance(record, Mapping):
            raise ParseError("each line must be a JSON object")
        amount = record.get("amount")
        currency = record.get("currency", default_currency)
        key = record.get("key")
        confirm = record.get("confirm", [])
        if not isinstance(amount, int) or not isinstance(currency, str) or not isinstance(confirm, list):
            raise ParseError("amount must be an integer, currency a string, confirm a list")
        if key is not None and not isinstance(key, str):
            raise ParseError("key must be a string", field="key")
        common: dict[str, Any] = {"key": key, "confirm": frozenset(str(c) for c in confirm)}
        if "track2" in record:
            track2 = str(record["track2"]).strip(";?")
            source = str(record.get("source", "swipe"))
            return cls(amount, currency, source, card=card_from_track2(track2), track2=track2, **common)
        if "pan" in record:
            pan, expiry, service_code = str(record["pan"]), record.get("expiry"), record.get("service_code")
            validate_pan(pan)
            if service_code is not None and not isinstance(service_code, str):
                raise ParseError('service_code must be text such as "101"', field="service_code")
            card = Card(pan=pan, expiry=expiry, service_code=service_code)
            return cls(amount, currency, str(record.get("source", "keyed")), card=card, **common)
        if "ksn" in record:
            try:
                ksn, ciphertext = bytes.fromhex(record["ksn"]), bytes.fromhex(record["ciphertext"])
                masked = _masked_card(record["masked"])
            except (KeyError, TypeError, ValueError) as error:
                raise ParseError(
                    "a dongle payload needs hex ksn, hex ciphertext and a masked card"
                ) from error
            encrypted = EncryptedCardData(ksn, ciphertext, masked, str(record.get("scheme", "aes128")))
            return cls(amount, currency, "dongle", encrypted=encrypted, **common)
        if "account_token" in record:
            return cls(
                amount,
                currency,
                "checkin",
                customer=record.get("customer"),
                account_token=str(record["account_token"]),
                **common,
            )
        raise ParseError("a capture needs track2, pan + expiry, ksn + ciphertext, or account_token")

    def sealed_payload(self) -> bytes:
        """The secret part to seal at rest (clear card data or account token) as JSON bytes."""
        if self.card is not None:
            card = self.card
            text = (
                f'{{"pan":{json_text(card.pan)},"expiry":{json_text(card.expiry)},'
                f'"service_code":{json_text(card.service_code)}'
            )
            if self.track2:
                text += f',"track2":{json_text(self.track2)}'
            return (text + "}").encode("ascii")
        if self.account_token is not None:
            return f'{{"account_token":{json_text(self.account_token)}}}'.encode("ascii")
        return b"{}"
