"""Magnetic-stripe track codecs and card parsing (ISO/IEC 7811-2 §7, ISO/IEC 7813 §10-11).

Character sets (ISO/IEC 7811-2 §7.4):

- Track 1, :attr:`TrackFormat.ALPHA`: 6 data bits (character code = ASCII - 0x20, least significant
  bit first) + 1 odd-parity bit; start sentinel ``%``, end sentinel ``?``; at most 79 characters
  including both sentinels and the LRC.
- Tracks 2 and 3, :attr:`TrackFormat.BCD`: 4 data bits (ASCII - 0x30, least significant bit first)
  + 1 odd-parity bit; start sentinel ``;``, end sentinel ``?``; at most 40 (Track 2) or 107
  (Track 3) characters including sentinels and LRC.

The longitudinal redundancy check (LRC) character follows the end sentinel: each of its data bits
is the XOR of that bit over every character from the start sentinel through the end sentinel; its
parity bit is odd parity over the LRC's own data bits (§7.6).

Format code B (ISO/IEC 7813 §10.2 Track 1, §11.2 Track 2) gives PAN, name (Track 1), expiry YYMM,
a three-digit service code (§10.2.1.6, meaning of each digit in :func:`describe_service_code`) and
discretionary data.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from posbridge.protocols.cards import luhn_valid, mask_pan, validate_pan
from posbridge.protocols.errors import ChecksumError, TrackError
from posbridge.protocols.types import Card, Direction, Track, TrackFormat, is_valid_expiry


@dataclass(frozen=True)
class CharacterSet:
    """One ISO/IEC 7811-2 character set as a declaration: bit width, ASCII offset, sentinels, length."""

    format: TrackFormat
    data_bits: int
    ascii_offset: int
    start_sentinel: str
    end_sentinel: str
    max_characters: int  # including start sentinel, end sentinel and LRC

    @property
    def bits_per_character(self) -> int:
        """Data bits plus the odd-parity bit."""
        return self.data_bits + 1

    @property
    def max_text_length(self) -> int:
        """Characters allowed strictly between the sentinels."""
        return self.max_characters - 3

    def code(self, char: str) -> int:
        """The character code of ``char`` (raises :class:`TrackError` if not in this set)."""
        value = ord(char) - self.ascii_offset
        if not 0 <= value < 1 << self.data_bits:
            raise TrackError(
                f"character {char!r} is not in the {self.format} character set", format=self.format
            )
        return value

    def char(self, code: int) -> str:
        """The character for a code."""
        return chr(code + self.ascii_offset)


ALPHA = CharacterSet(TrackFormat.ALPHA, 6, 0x20, "%", "?", 79)
BCD = CharacterSet(TrackFormat.BCD, 4, 0x30, ";", "?", 107)
TRACK2_MAX_CHARACTERS = 40
CHARACTER_SETS: dict[TrackFormat, CharacterSet] = {TrackFormat.ALPHA: ALPHA, TrackFormat.BCD: BCD}

#: Fewest characters between the sentinels that a decoded track may hold (shorter is treated as noise).
MIN_TEXT_LENGTH = 1


_ODD_PARITY = tuple(1 - (bin(code).count("1") & 1) for code in range(64))


def _odd_parity_bit(code: int, data_bits: int) -> int:
    return _ODD_PARITY[code & ((1 << data_bits) - 1)]


def character_bits(code: int, charset: CharacterSet) -> list[int]:
    """Bits of one character as recorded: data bits least significant first, then odd parity."""
    bits = [(code >> i) & 1 for i in range(charset.data_bits)]
    bits.append(_odd_parity_bit(code, charset.data_bits))
    return bits


def lrc_code(codes: Sequence[int], charset: CharacterSet) -> int:
    """The LRC data bits: XOR of the codes from start sentinel through end sentinel (§7.6)."""
    value = 0
    for code in codes:
        value ^= code
    return value & ((1 << charset.data_bits) - 1)


def encode_track(text: str, fmt: TrackFormat) -> list[int]:
    """Encode track text (the characters strictly between the sentinels) to recorded bits.

    Returns one int (0 or 1) per bit: start sentinel, text, end sentinel, LRC, each character
    least significant bit first with its odd-parity bit last. Clocking zeros are not included.
    Raises :class:`TrackError` for characters outside the set, sentinels inside the text, or
    text longer than the track allows.
    """
    charset = CHARACTER_SETS[TrackFormat(fmt)]
    if len(text) > charset.max_text_length:
        raise TrackError(
            f"{charset.format} track text is {len(text)} characters, at most {charset.max_text_length} fit",
            length=len(text),
        )
    for sentinel in {charset.start_sentinel, charset.end_sentinel}:
        if sentinel in text:
            raise TrackError(f"track text must not contain the sentinel {sentinel!r}", format=charset.format)
    codes = [charset.code(char) for char in charset.start_sentinel + text + charset.end_sentinel]
    codes.append(lrc_code(codes, charset))
    bits: list[int] = []
    for code in codes:
        bits.extend(character_bits(code, charset))
    return bits


def _track_number(charset: CharacterSet, total_characters: int) -> int:
    if charset.format is TrackFormat.ALPHA:
        return 1
    return 2 if total_characters <= TRACK2_MAX_CHARACTERS else 3


def _decode_from(bits: Sequence[int], start: int, charset: CharacterSet, min_trailing_zeros: int) -> Track:
    """Decode one character set from a start-sentinel candidate at ``bits[start]``."""
    width = charset.bits_per_character
    sentinel_code = charset.code(charset.start_sentinel)
    end_code = charset.code(charset.end_sentinel)
    codes: list[int] = []
    position = start
    limit = start + charset.max_characters * width
    while True:
        if position + width > len(bits) or position >= limit:
            raise TrackError("no end sentinel", format=charset.format, bit_offset=position)
        chunk = bits[position : position + width]
        code = 0
        for i in range(charset.data_bits):
            code |= (chunk[i] & 1) << i
        if chunk[charset.data_bits] != _odd_parity_bit(code, charset.data_bits):
            raise ChecksumError(
                "character parity error", format=charset.format, character=len(codes), bit_offset=position
            )
        if not codes and code != sentinel_code:
            raise TrackError("no start sentinel", format=charset.format, bit_offset=position)
        codes.append(code)
        position += width
        if code == end_code:
            break
    if position + width > len(bits):
        raise TrackError("no LRC after the end sentinel", format=charset.format, bit_offset=position)
    chunk = bits[position : position + width]
    lrc = 0
    for i in range(charset.data_bits):
        lrc |= (chunk[i] & 1) << i
    if lrc != lrc_code(codes, charset) or chunk[charset.data_bits] != _odd_parity_bit(lrc, charset.data_bits):
        raise ChecksumError("LRC mismatch", format=charset.format, bit_offset=position)
    end = position + width
    trailing = bits[end : end + min_trailing_zeros]
    if len(trailing) < min_trailing_zeros or any(trailing):
        raise TrackError("the LRC is not followed by clocking zeros", format=charset.format, bit_offset=end)
    text = "".join(charset.char(code) for code in codes[1:-1])
    if len(text) < MIN_TEXT_LENGTH:
        raise TrackError("empty track", format=charset.format, bit_offset=end)
    if sentinel_code in codes[1:-1] and charset.start_sentinel != charset.end_sentinel:
        raise TrackError("start sentinel inside the track text", format=charset.format, bit_offset=end)
    return Track(
        number=_track_number(charset, len(codes) + 1),
        format=charset.format,
        text=text,
        raw_bits=bytes(bits[start:end]),
    )


def start_sentinel_candidates(bits: Sequence[int], charset: CharacterSet) -> list[int]:
    """Every offset where the start sentinel's bit pattern (with parity) occurs."""
    pattern = bytes(character_bits(charset.code(charset.start_sentinel), charset))
    stream = bytes(bit & 1 for bit in bits)
    found: list[int] = []
    position = stream.find(pattern)
    while position >= 0:
        found.append(position)
        position = stream.find(pattern, position + 1)
    return found


def decode_track_bits(
    bits: Sequence[int],
    fmt: TrackFormat | None = None,
    *,
    min_trailing_zeros: int = 0,
    allow_reverse: bool = True,
) -> Track:
    """Find and validate one track in a recovered bit stream.

    ``bits`` (0/1 values in the order they were read) may hold clocking zeros or noise around the
    track. Every start-sentinel candidate is tried, for both character sets unless ``fmt`` is
    given, and, if ``allow_reverse``, for the reversed stream too (a card swiped backwards); the
    first candidate whose every character parity, end sentinel, LRC and LRC parity check, and which
    is followed by ``min_trailing_zeros`` zero bits, is returned. ``Track.direction`` tells whether
    the stream was reversed; ``raw_bits`` is in recorded (card) order.

    Raises the error of the candidate that got furthest: :class:`ChecksumError` for a parity or
    LRC failure, :class:`TrackError` for a missing sentinel, LRC or clocking zeros.
    """
    formats = [TrackFormat(fmt)] if fmt is not None else [TrackFormat.ALPHA, TrackFormat.BCD]
    streams: list[tuple[Direction, Sequence[int]]] = [(Direction.FORWARD, bits)]
    if allow_reverse:
        streams.append((Direction.REVERSE, list(reversed(bits))))
    furthest: TrackError | ChecksumError | None = None
    for direction, stream in streams:
        for track_format in formats:
            charset = CHARACTER_SETS[track_format]
            for start in start_sentinel_candidates(stream, charset):
                try:
                    track = _decode_from(stream, start, charset, min_trailing_zeros)
                except (ChecksumError, TrackError) as error:
                    progress = error.context.get("bit_offset", 0) - start
                    if furthest is None or progress > furthest.context.get("progress", -1):
                        furthest = type(error)(error.message, **{**error.context, "progress": progress})
                    continue
                if direction is Direction.REVERSE:
                    track = Track(track.number, track.format, track.text, direction, track.raw_bits)
                return track
    if furthest is not None:
        raise type(furthest)(f"no valid track: {furthest.message}", **furthest.context)
    raise TrackError("no start sentinel in the bit stream", length=len(bits))


_TRACK1_B = re.compile(r"^B(?P<pan>\d{1,19})\^(?P<name>[^^]{0,26})\^(?P<rest>.*)$", re.DOTALL)
_TRACK2_B = re.compile(r"^(?P<pan>\d{1,19})=(?P<rest>[0-9:;<=>?]*)\Z")


@dataclass(frozen=True)
class _Fields:
    pan: str
    name: str | None
    expiry: str | None
    service_code: str | None
    discretionary: str | None


_FIELD_SEPARATORS = ("^", "=")
_SERVICE_CODE = re.compile(r"[0-9]{3}")


def _split_rest(rest: str, track: Track) -> tuple[str | None, str | None, str]:
    """Expiry YYMM, service code and discretionary data after the PAN (and name) separator.

    A field that is absent is empty or replaced by a field separator (ISO/IEC 7813 §10.2, §11.2).
    A field that is present must be well formed, else :class:`TrackError` (the track is malformed
    even though its parity and LRC check out): the expiry 4 digits YYMM with month 01-12, the
    service code 3 digits.
    """
    expiry: str | None = None
    service_code: str | None = None
    number = track.number or (1 if track.format is TrackFormat.ALPHA else 2)
    if rest.startswith(_FIELD_SEPARATORS):
        rest = rest[1:]
    elif rest:
        if not is_valid_expiry(rest[:4]):
            raise TrackError(
                f"Track {number}: the expiry field is not YYMM with month 01-12", field="expiry", track=number
            )
        expiry = rest[:4]
        rest = rest[4:]
    if rest.startswith(_FIELD_SEPARATORS):
        rest = rest[1:]
    elif rest:
        if _SERVICE_CODE.fullmatch(rest[:3]) is None:
            raise TrackError(
                f"Track {number}: the service code field is not three digits",
                field="service_code",
                track=number,
            )
        service_code, rest = rest[:3], rest[3:]
    return expiry, service_code, rest


def _format_b_match(track: Track) -> re.Match[str] | None:
    """The match of a format code B track's layout (PAN, name, the rest), ``None`` if it is not one."""
    pattern = _TRACK1_B if track.format is TrackFormat.ALPHA else _TRACK2_B
    return pattern.match(track.text)


def _parse_format_b(track: Track) -> _Fields | None:
    """The fields of a format code B track, ``None`` if it is not one, :class:`TrackError` if malformed."""
    match = _format_b_match(track)
    return None if match is None else _format_b_fields(match, track)


def _format_b_fields(match: re.Match[str], track: Track) -> _Fields:
    """The fields of ``track`` laid out as ``match`` found; :class:`TrackError` if one is malformed."""
    expiry, service_code, discretionary = _split_rest(match.group("rest"), track)
    name = match.groupdict().get("name")
    return _Fields(
        pan=match.group("pan"),
        name=name.strip() if name is not None else None,
        expiry=expiry,
        service_code=service_code,
        discretionary=discretionary or None,
    )


def card_from_tracks(tracks: Sequence[Track]) -> Card:
    """Parse format code B tracks (ISO/IEC 7813) into a :class:`Card`.

    Track 2 (or 3 in the same layout) supplies PAN, expiry and service code when present; Track 1
    adds the name and fills what Track 2 lacks. If both carry a PAN they must agree. Raises
    :class:`TrackError` (never quoting card data) if no track is in format B, a format B track has
    an expiry or service code field that is present but malformed (not YYMM with month 01-12, not
    three digits), or the PAN is not a 12-19 digit Luhn-valid number.
    """
    parsed = [(track, fields) for track in tracks if (fields := _parse_format_b(track)) is not None]
    if not parsed:
        raise TrackError("no track in ISO/IEC 7813 format code B", tracks=len(tracks))
    parsed.sort(key=lambda item: 0 if item[0].format is TrackFormat.BCD else 1)
    pans = {fields.pan for _, fields in parsed}
    if len(pans) > 1:
        raise TrackError("the tracks carry different PANs", tracks=len(tracks))
    pan = validate_pan(parsed[0][1].pan)
    if not luhn_valid(pan):
        raise TrackError("the PAN fails the Luhn check", pan_length=len(pan))

    def first(attribute: str) -> str | None:
        for _, fields in parsed:
            value: str | None = getattr(fields, attribute)
            if value:
                return value
        return None

    return Card(
        pan=pan,
        expiry=first("expiry"),
        service_code=first("service_code"),
        name=first("name"),
        discretionary=first("discretionary"),
    )


_SERVICE_INTERCHANGE = {
    "1": "international interchange OK",
    "2": "international interchange, use IC (chip) where feasible",
    "5": "national interchange only except under bilateral agreement",
    "6": "national interchange only, use IC (chip) where feasible",
    "7": "no interchange except under bilateral agreement (closed loop)",
    "9": "test card",
}
_SERVICE_AUTHORIZATION = {
    "0": "normal authorization",
    "2": "contact issuer via online means",
    "4": "contact issuer via online means except under bilateral agreement",
}
_SERVICE_ALLOWED = {
    "0": "no restrictions, PIN required",
    "1": "no restrictions",
    "2": "goods and services only",
    "3": "ATM only, PIN required",
    "4": "cash only",
    "5": "goods and services only, PIN required",
    "6": "no restrictions, prompt for PIN if PED present",
    "7": "goods and services only, prompt for PIN if PED present",
}


def describe_service_code(code: str) -> dict[str, str]:
    """What each digit of a service code means (ISO/IEC 7813 §10.2.1.6).

    Returns ``{"interchange": .., "authorization": .., "services": ..}``; digits with no assigned
    meaning read ``"reserved"``. Raises :class:`TrackError` unless ``code`` is three digits.
    """
    if len(code) != 3 or not code.isdigit():
        raise TrackError("a service code is three digits", length=len(code))
    return {
        "interchange": _SERVICE_INTERCHANGE.get(code[0], "reserved"),
        "authorization": _SERVICE_AUTHORIZATION.get(code[1], "reserved"),
        "services": _SERVICE_ALLOWED.get(code[2], "reserved"),
    }


_PAN_OR_DATA_CHARACTER = re.compile(r"(?<!\d)\d{12,19}(?!\d)|[0-9A-Za-z]")
_NOT_SEPARATOR_OR_SPACE = re.compile(r"[^\^= ]")


def masked_track_text(track: Track) -> str:
    """Track text safe to show: PAN masked to first 6 + last 4, name and discretionary data hidden.

    For a format code B track the PAN is masked with :func:`mask_pan`, every name character and
    every discretionary-data character becomes ``*`` (discretionary data may hold a card
    verification value); expiry and service code stay readable. In a format code B track whose
    expiry or service code field is malformed (so the fields after the PAN cannot be told apart)
    the PAN is masked and every character after it but a field separator or space becomes ``*``.
    In any other track every run of 12-19 digits is masked like a PAN and every other letter or
    digit becomes ``*``; separators and spaces stay.
    """
    layout = _format_b_match(track)
    if layout is None:
        return _PAN_OR_DATA_CHARACTER.sub(
            lambda match: mask_pan(match.group(0)) if len(match.group(0)) > 1 else "*", track.text
        )
    text = track.text
    pan_start, pan_end = layout.span("pan")
    masked = text[:pan_start] + mask_pan(layout.group("pan"))
    try:
        fields = _format_b_fields(layout, track)
    except TrackError:
        return masked + _NOT_SEPARATOR_OR_SPACE.sub("*", text[pan_end:])
    shown_from = pan_end
    if track.format is TrackFormat.ALPHA:
        name_start, name_end = layout.span("name")
        masked += text[pan_end:name_start] + "*" * (name_end - name_start)
        shown_from = name_end
    tail_length = len(fields.discretionary or "")
    return masked + text[shown_from : len(text) - tail_length] + "*" * tail_length
