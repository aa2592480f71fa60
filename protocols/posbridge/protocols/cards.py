"""Primary account numbers: Luhn (ISO/IEC 7812-1 Annex B), brand by BIN range, masking, redaction.

PCI DSS 3.4.1 allows a PAN to be displayed with at most the first six and last four digits;
:func:`mask_pan` produces exactly that. :func:`redact_pans` scrubs any Luhn-valid 12–19 digit
run from free text (log lines, exception messages) as a last line of defence.
:func:`generate_test_pan` makes Luhn-valid numbers in test ranges for tests, demos and rigs.
"""

from __future__ import annotations

import random
import re

from posbridge.protocols.errors import TrackError

PAN_MIN_DIGITS = 12
PAN_MAX_DIGITS = 19

_BRAND_RANGES: tuple[tuple[str, int, int, int], ...] = (
    # (brand, low, high, prefix length) — ranges from the networks' published BIN tables
    ("amex", 34, 34, 2),
    ("amex", 37, 37, 2),
    ("diners", 300, 305, 3),
    ("diners", 36, 36, 2),
    ("diners", 38, 39, 2),
    ("discover", 6011, 6011, 4),
    ("discover", 644, 649, 3),
    ("discover", 65, 65, 2),
    ("jcb", 3528, 3589, 4),
    ("mastercard", 51, 55, 2),
    ("mastercard", 2221, 2720, 4),
    ("maestro", 50, 50, 2),
    ("maestro", 56, 58, 2),
    ("maestro", 67, 67, 2),
    ("unionpay", 62, 62, 2),
    ("visa", 4, 4, 1),
)


_DOUBLED_DIGIT = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)


def luhn_check_digit(payload: str) -> str:
    """Return the Luhn check digit for ``payload`` (digits without the check digit)."""
    digits = [ord(char) - 48 for char in payload]
    doubled = sum(_DOUBLED_DIGIT[digit] for digit in digits[-1::-2])
    total = doubled + sum(digits[-2::-2])
    return str((10 - total % 10) % 10)


def luhn_valid(pan: str) -> bool:
    """True when ``pan`` is all digits, at least two long, and passes the Luhn check."""
    if len(pan) < 2 or not pan.isdigit():
        return False
    return luhn_check_digit(pan[:-1]) == pan[-1]


def _brand_table() -> dict[str, str]:
    """Every prefix of the BIN ranges mapped to its brand (a longer prefix wins)."""
    table: dict[str, str] = {}
    for brand, low, high, _length in sorted(_BRAND_RANGES, key=lambda entry: entry[3]):
        for prefix in range(low, high + 1):
            table[str(prefix)] = brand
    return table


_BRAND_BY_PREFIX = _brand_table()
_PREFIX_LENGTHS = sorted({length for *_, length in _BRAND_RANGES}, reverse=True)


def card_brand(pan: str) -> str:
    """The card network for a PAN by its leading digits, or ``"unknown"``."""
    for length in _PREFIX_LENGTHS:
        brand = _BRAND_BY_PREFIX.get(pan[:length]) if len(pan) >= length else None
        if brand is not None:
            return brand
    return "unknown"


def mask_pan(pan: str) -> str:
    """First six and last four digits, the rest as ``*`` (PCI DSS 3.4.1).

    PANs shorter than 13 digits keep fewer digits visible so that at least three stay hidden.
    """
    visible_head, visible_tail = 6, 4
    while len(pan) - visible_head - visible_tail < 3 and visible_head > 0:
        visible_head -= 1
        if len(pan) - visible_head - visible_tail < 3 and visible_tail > 0:
            visible_tail -= 1
    hidden = len(pan) - visible_head - visible_tail
    return pan[:visible_head] + "*" * hidden + (pan[len(pan) - visible_tail :] if visible_tail else "")


def validate_pan(pan: str) -> str:
    """Return ``pan`` if it is 12–19 digits, else raise :class:`TrackError` (without the digits)."""
    if not pan.isdigit() or not PAN_MIN_DIGITS <= len(pan) <= PAN_MAX_DIGITS:
        raise TrackError(f"a PAN must be {PAN_MIN_DIGITS}-{PAN_MAX_DIGITS} digits, got {len(pan)} characters")
    return pan


_DIGIT_RUN = re.compile(r"(?<!\d)\d{12,19}(?!\d)")


def redact_pans(text: str) -> str:
    """Replace every Luhn-valid 12–19 digit run in ``text`` with its masked form."""

    def _mask(match: re.Match[str]) -> str:
        digits = match.group(0)
        return mask_pan(digits) if luhn_valid(digits) else digits

    return _DIGIT_RUN.sub(_mask, text)


TEST_BIN_PREFIXES: tuple[str, ...] = ("400000", "411111", "510510", "555555", "378282", "601111")


def generate_test_pan(rng: random.Random | None = None, prefix: str | None = None, length: int = 16) -> str:
    """A Luhn-valid PAN under a well-known test prefix (never a real account)."""
    rng = rng or random.Random()
    prefix = prefix if prefix is not None else rng.choice(TEST_BIN_PREFIXES)
    if prefix.startswith(("34", "37")) and length == 16:
        length = 15
    body = prefix + "".join(rng.choice("0123456789") for _ in range(length - len(prefix) - 1))
    return body + luhn_check_digit(body)
