"""Offline limits and risk rules applied at capture (issue 7, "Offline limits", "Risk rules").

Offline limits follow what Square's and Stripe Terminal's offline modes enforce per merchant: a
largest single payment, a largest total held offline, a largest number held offline, and a
longest time a payment may wait (24 h by default). A capture over a limit is refused with a
reason the cashier can read; a stored payment older than ``max_age_s`` is reported as expired
and never forwarded.

Risk rules produce :class:`Alert` events for the console and the log. Hard rules refuse the
capture (Luhn failure, expired card, blocked BIN); soft rules ask the cashier, and the capture
goes through once the cashier confirms it (a duplicate swipe, velocity on one card, a chip card
swiped -- ISO/IEC 7813 service code first digit 2 or 6 means "use the chip"). Nothing is dropped
silently.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import Any

from posbridge.protocols.cards import luhn_valid
from posbridge.protocols.errors import CaptureRefused, ConfigError
from posbridge.protocols.types import MaskedCard

DAY_S = 24 * 3600.0


class AlertKind(enum.StrEnum):
    """Why the queue raised an alert."""

    DUPLICATE = "duplicate"
    VELOCITY = "velocity"
    CHIP_SWIPED = "chip_swiped"
    EXPIRED_CARD = "expired_card"
    LUHN = "luhn"
    BIN_BLOCKED = "bin_blocked"
    OFFLINE_LIMIT = "offline_limit"
    EXPIRED_OFFLINE = "expired_offline"


CONFIRMABLE: frozenset[AlertKind] = frozenset(
    {AlertKind.DUPLICATE, AlertKind.VELOCITY, AlertKind.CHIP_SWIPED}
)
"""Alerts the cashier may override by confirming the capture (``confirm=`` on capture)."""


@dataclass(frozen=True)
class Alert:
    """A risk or limit event for the console and the log (card only in masked form)."""

    kind: AlertKind
    message: str
    key: str | None = None
    card: MaskedCard | None = None
    amount: int | None = None
    at: float = field(default_factory=time.time)

    @property
    def needs_confirmation(self) -> bool:
        """True when the cashier can let the capture through by confirming it."""
        return self.kind in CONFIRMABLE

    def to_json(self) -> dict[str, Any]:
        """The alert as a JSON-ready dict."""
        return {
            "alert": self.kind.value,
            "message": self.message,
            "key": self.key,
            "card": self.card.to_json() if self.card else None,
            "amount": self.amount,
            "at": self.at,
            "needs_confirmation": self.needs_confirmation,
        }


class ConfirmationRequired(CaptureRefused):
    """A soft risk rule fired: ask the cashier, then capture again with ``confirm=[alert kind]``."""


@dataclass(frozen=True)
class OfflineLimits:
    """Per-merchant limits on payments held before the processor has answered them.

    Amounts are in minor units of the queue's currency; ``max_age_s`` in seconds.
    """

    max_transaction_amount: int = 50_000
    max_total_amount: int = 1_000_000
    max_count: int = 1_000
    max_age_s: float = DAY_S

    def __post_init__(self) -> None:
        for name in ("max_transaction_amount", "max_total_amount", "max_count", "max_age_s"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"offline limit {name} must be positive", key=name)


@dataclass(frozen=True)
class RiskRules:
    """Risk rule settings: windows in seconds, counts, and the BIN block list (6-digit prefixes)."""

    duplicate_window_s: float = 120.0
    velocity_window_s: float = 600.0
    velocity_max: int = 5
    blocked_bins: frozenset[str] = frozenset()


def format_amount(amount: int, currency: str) -> str:
    """``1250, "USD"`` -> ``"12.50 USD"`` (two minor digits; a display helper only)."""
    return f"{amount // 100}.{amount % 100:02d} {currency}"


def offline_limit_refusal(
    limits: OfflineLimits, amount: int, currency: str, pending_count: int, pending_total: int
) -> str | None:
    """Why this capture would break an offline limit (a sentence for the cashier), or ``None``."""
    if amount > limits.max_transaction_amount:
        return (
            f"over the offline limit per payment ({format_amount(amount, currency)} > "
            f"{format_amount(limits.max_transaction_amount, currency)}); take another payment method"
        )
    if pending_total + amount > limits.max_total_amount:
        return (
            f"offline total would reach {format_amount(pending_total + amount, currency)}, over the "
            f"{format_amount(limits.max_total_amount, currency)} limit; wait for the connection to return"
        )
    if pending_count + 1 > limits.max_count:
        return (
            f"{pending_count} payments already held offline (limit {limits.max_count}); "
            "wait for the connection"
        )
    return None


def card_expired(expiry: str | None, now: float) -> bool:
    """True when a YYMM expiry is before the month of ``now`` (cards are valid through their month)."""
    if not expiry or len(expiry) != 4 or not expiry.isdigit():
        return False
    moment = time.gmtime(now)
    year, month = 2000 + int(expiry[:2]), int(expiry[2:])
    return (year, month) < (moment.tm_year, moment.tm_mon)


def hard_rule_alert(
    rules: RiskRules, pan: str, masked: MaskedCard, amount: int, key: str, now: float
) -> Alert | None:
    """The first hard rule a clear PAN breaks (Luhn, expired card, blocked BIN), else ``None``."""
    if not luhn_valid(pan):
        return Alert(
            AlertKind.LUHN,
            "card number fails the check digit: re-enter or swipe again",
            key,
            masked,
            amount,
            now,
        )
    if card_expired(masked.expiry, now):
        return Alert(AlertKind.EXPIRED_CARD, "card expired: ask for another card", key, masked, amount, now)
    return bin_block_alert(rules, masked, amount, key, now)


def bin_block_alert(rules: RiskRules, masked: MaskedCard, amount: int, key: str, now: float) -> Alert | None:
    """An alert when the card's BIN (first six digits) is on the block list."""
    if masked.first6[:6] in rules.blocked_bins:
        return Alert(
            AlertKind.BIN_BLOCKED,
            "card range blocked by the merchant: ask for another card",
            key,
            masked,
            amount,
            now,
        )
    return None


def chip_swiped_alert(masked: MaskedCard, source: str, amount: int, key: str, now: float) -> Alert | None:
    """An alert when a chip card (service code 2xx or 6xx, ISO/IEC 7813) was swiped instead of dipped."""
    if source == "swipe" and masked.service_code and masked.service_code[:1] in {"2", "6"}:
        return Alert(
            AlertKind.CHIP_SWIPED,
            "chip card swiped: insert the chip (confirm to accept the swipe)",
            key,
            masked,
            amount,
            now,
        )
    return None
