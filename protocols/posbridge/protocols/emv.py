"""EMV chip data: BER-TLV, data object lists, card data, APDUs and status words.

Specs: EMV 4.4 Book 3 Annex B (BER-TLV coding of data objects), §5.4 (rules for using a data
object list), §6.5 (the commands SELECT, GET PROCESSING OPTIONS, READ RECORD, GENERATE AC and
their status words), Annex A (data element dictionary: names and formats n, cn, b, an, ans);
ISO/IEC 7816-4 §5.2 (BER-TLV tag and length fields, padding) and §5.1 (APDUs).

Parsing policy (every rule explicit):

* tags of any number of bytes up to :data:`MAX_TAG_BYTES` (``1F`` low bits announce subsequent
  bytes, bit 8 of each subsequent byte says another follows); bit 6 of the first byte marks a
  constructed object, whose value is parsed as nested objects;
* lengths in short form or long form with 1 to :data:`MAX_LENGTH_BYTES` subsequent bytes; the
  indefinite form ``80`` is rejected; a long form that could have been shorter (``81 05``) is
  accepted and flagged ``minimal_length=False`` unless ``strict_lengths=True``, which rejects it;
* ``00`` bytes before, between and after objects are padding and skipped (Book 3 Annex B1);
  ``FF`` is not a valid tag start in EMV and is rejected unless ``ff_padding=True``, which skips it
  as ISO/IEC 7816-4 allows;
* duplicates are kept in order; :func:`duplicate_primitives` reports a primitive tag that occurs
  twice (a card error when it happens in the records, Book 3 §7.5); ``61`` templates may repeat;
* every object keeps the byte offset of its tag and value in the parsed buffer, and every
  :class:`TlvError` names the offset where parsing stopped.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from posbridge.protocols.cards import mask_pan, redact_pans
from posbridge.protocols.errors import TlvError, TrackError
from posbridge.protocols.magstripe import card_from_tracks
from posbridge.protocols.types import Card, ChipRead, Track, TrackFormat, is_valid_expiry

MAX_TAG_BYTES = 4
MAX_LENGTH_BYTES = 4
MAX_DEPTH = 16


class CardDataError(TlvError):
    """The card's data breaks an EMV rule (a primitive tag twice, a missing PAN): a card error."""


# --------------------------------------------------------------------------- dictionary


class DataFormat(enum.StrEnum):
    """EMV data element formats (Book 3 §4.3)."""

    N = "n"  # numeric BCD, right-justified, leading zeros
    CN = "cn"  # compressed numeric BCD, left-justified, trailing F
    B = "b"  # binary
    AN = "an"  # alphanumeric
    ANS = "ans"  # alphanumeric special
    TEMPLATE = "template"  # constructed


@dataclass(frozen=True)
class TagInfo:
    """A data element of the EMV dictionary: its name, format and whether it is card data."""

    name: str
    format: DataFormat
    sensitive: bool = False


_DICTIONARY: dict[str, tuple[str, DataFormat] | tuple[str, DataFormat, bool]] = {
    "42": ("Issuer Identification Number", DataFormat.N),
    "4F": ("Application Identifier (AID) - card", DataFormat.B),
    "50": ("Application Label", DataFormat.ANS),
    "56": ("Track 1 Data", DataFormat.ANS, True),
    "57": ("Track 2 Equivalent Data", DataFormat.B, True),
    "5A": ("Application Primary Account Number (PAN)", DataFormat.CN, True),
    "5F20": ("Cardholder Name", DataFormat.ANS, True),
    "5F24": ("Application Expiration Date", DataFormat.N),
    "5F25": ("Application Effective Date", DataFormat.N),
    "5F28": ("Issuer Country Code", DataFormat.N),
    "5F2A": ("Transaction Currency Code", DataFormat.N),
    "5F2D": ("Language Preference", DataFormat.AN),
    "5F30": ("Service Code", DataFormat.N),
    "5F34": ("Application PAN Sequence Number", DataFormat.N),
    "5F36": ("Transaction Currency Exponent", DataFormat.N),
    "5F50": ("Issuer URL", DataFormat.ANS),
    "61": ("Application Template", DataFormat.TEMPLATE),
    "6F": ("File Control Information (FCI) Template", DataFormat.TEMPLATE),
    "70": ("READ RECORD Response Message Template", DataFormat.TEMPLATE),
    "71": ("Issuer Script Template 1", DataFormat.TEMPLATE),
    "72": ("Issuer Script Template 2", DataFormat.TEMPLATE),
    "73": ("Directory Discretionary Template", DataFormat.TEMPLATE),
    "77": ("Response Message Template Format 2", DataFormat.TEMPLATE),
    "80": ("Response Message Template Format 1", DataFormat.B),
    "82": ("Application Interchange Profile", DataFormat.B),
    "83": ("Command Template", DataFormat.B),
    "84": ("Dedicated File (DF) Name", DataFormat.B),
    "87": ("Application Priority Indicator", DataFormat.B),
    "88": ("Short File Identifier (SFI)", DataFormat.B),
    "8A": ("Authorisation Response Code", DataFormat.AN),
    "8C": ("Card Risk Management Data Object List 1 (CDOL1)", DataFormat.B),
    "8D": ("Card Risk Management Data Object List 2 (CDOL2)", DataFormat.B),
    "8E": ("Cardholder Verification Method (CVM) List", DataFormat.B),
    "8F": ("Certification Authority Public Key Index", DataFormat.B),
    "90": ("Issuer Public Key Certificate", DataFormat.B),
    "91": ("Issuer Authentication Data", DataFormat.B),
    "92": ("Issuer Public Key Remainder", DataFormat.B),
    "93": ("Signed Static Application Data", DataFormat.B),
    "94": ("Application File Locator (AFL)", DataFormat.B),
    "95": ("Terminal Verification Results", DataFormat.B),
    "9A": ("Transaction Date", DataFormat.N),
    "9B": ("Transaction Status Information", DataFormat.B),
    "9C": ("Transaction Type", DataFormat.N),
    "9D": ("Directory Definition File (DDF) Name", DataFormat.B),
    "9F01": ("Acquirer Identifier", DataFormat.N),
    "9F02": ("Amount, Authorised (Numeric)", DataFormat.N),
    "9F03": ("Amount, Other (Numeric)", DataFormat.N),
    "9F06": ("Application Identifier (AID) - terminal", DataFormat.B),
    "9F07": ("Application Usage Control", DataFormat.B),
    "9F08": ("Application Version Number", DataFormat.B),
    "9F09": ("Application Version Number - terminal", DataFormat.B),
    "9F0D": ("Issuer Action Code - Default", DataFormat.B),
    "9F0E": ("Issuer Action Code - Denial", DataFormat.B),
    "9F0F": ("Issuer Action Code - Online", DataFormat.B),
    "9F10": ("Issuer Application Data", DataFormat.B),
    "9F11": ("Issuer Code Table Index", DataFormat.N),
    "9F12": ("Application Preferred Name", DataFormat.ANS),
    "9F1A": ("Terminal Country Code", DataFormat.N),
    "9F1F": ("Track 1 Discretionary Data", DataFormat.ANS, True),
    "9F20": ("Track 2 Discretionary Data", DataFormat.CN, True),
    "9F6B": ("Track 2 Data (contactless)", DataFormat.B, True),
    "9F21": ("Transaction Time", DataFormat.N),
    "9F26": ("Application Cryptogram", DataFormat.B),
    "9F27": ("Cryptogram Information Data", DataFormat.B),
    "9F32": ("Issuer Public Key Exponent", DataFormat.B),
    "9F33": ("Terminal Capabilities", DataFormat.B),
    "9F34": ("Cardholder Verification Method (CVM) Results", DataFormat.B),
    "9F35": ("Terminal Type", DataFormat.N),
    "9F36": ("Application Transaction Counter (ATC)", DataFormat.B),
    "9F37": ("Unpredictable Number", DataFormat.B),
    "9F38": ("Processing Options Data Object List (PDOL)", DataFormat.B),
    "9F40": ("Additional Terminal Capabilities", DataFormat.B),
    "9F42": ("Application Currency Code", DataFormat.N),
    "9F44": ("Application Currency Exponent", DataFormat.N),
    "9F45": ("Data Authentication Code", DataFormat.B),
    "9F46": ("ICC Public Key Certificate", DataFormat.B),
    "9F47": ("ICC Public Key Exponent", DataFormat.B),
    "9F48": ("ICC Public Key Remainder", DataFormat.B),
    "9F49": ("Dynamic Data Authentication Data Object List (DDOL)", DataFormat.B),
    "9F4A": ("Static Data Authentication Tag List", DataFormat.B),
    "9F4B": ("Signed Dynamic Application Data", DataFormat.B),
    "9F4C": ("ICC Dynamic Number", DataFormat.B),
    "9F4D": ("Log Entry", DataFormat.B),
    "9F4E": ("Merchant Name and Location", DataFormat.ANS),
    "9F66": ("Terminal Transaction Qualifiers", DataFormat.B),
    "9F6E": ("Form Factor Indicator", DataFormat.B),
    "A5": ("File Control Information (FCI) Proprietary Template", DataFormat.TEMPLATE),
    "BF0C": ("File Control Information (FCI) Issuer Discretionary Data", DataFormat.TEMPLATE),
}

TAGS: dict[bytes, TagInfo] = {bytes.fromhex(tag): TagInfo(*entry) for tag, entry in _DICTIONARY.items()}
"""The EMV data elements posbridge knows, by tag bytes."""


def tag_info(tag: bytes) -> TagInfo:
    """The dictionary entry of ``tag``; unknown tags are binary (templates if constructed)."""
    known = TAGS.get(tag)
    if known is not None:
        return known
    if tag and tag[0] & 0x20:
        return TagInfo("Unknown template", DataFormat.TEMPLATE)
    return TagInfo("Unknown", DataFormat.B)


# --------------------------------------------------------------------------- BER-TLV


@dataclass(frozen=True)
class Tlv:
    """One BER-TLV data object.

    ``value`` is the raw value bytes (for a constructed object, the encoded children, padding
    included); ``children`` holds the parsed nested objects of a constructed one. ``offset`` is
    the byte offset of the tag and ``value_offset`` of the value in the parsed buffer;
    ``minimal_length`` is False when the length field used more bytes than needed.
    """

    tag: bytes
    value: bytes = field(repr=False)
    children: tuple[Tlv, ...] = ()
    offset: int = 0
    value_offset: int = 0
    minimal_length: bool = True

    @property
    def constructed(self) -> bool:
        """Bit 6 of the first tag byte: the value is a sequence of data objects."""
        return bool(self.tag[0] & 0x20)

    @property
    def tag_hex(self) -> str:
        """The tag in upper-case hex (``"9F02"``)."""
        return self.tag.hex().upper()

    @property
    def info(self) -> TagInfo:
        """Dictionary name and format of this tag."""
        return tag_info(self.tag)

    def encode(self) -> bytes:
        """Minimal BER-TLV encoding (constructed objects re-encode their children)."""
        if self.constructed and self.children:
            return build_tlv(self.tag, b"".join(child.encode() for child in self.children))
        return build_tlv(self.tag, self.value)

    def __repr__(self) -> str:
        kind = f"{len(self.children)} children" if self.constructed else f"{len(self.value)} bytes"
        return f"Tlv({self.tag_hex}, {kind}, offset={self.offset})"


def _read_tag(data: bytes, offset: int) -> tuple[bytes, int]:
    start = offset
    if offset >= len(data):
        raise TlvError("data ends where a tag should start", offset=offset)
    first = data[offset]
    offset += 1
    if first & 0x1F == 0x1F:
        while True:
            if offset >= len(data):
                raise TlvError("data ends inside a multi-byte tag", offset=start)
            if offset - start >= MAX_TAG_BYTES:
                raise TlvError(f"tag longer than {MAX_TAG_BYTES} bytes", offset=start)
            byte = data[offset]
            offset += 1
            if not byte & 0x80:
                break
    return bytes(data[start:offset]), offset


def _read_length(data: bytes, offset: int, strict: bool) -> tuple[int, int, bool]:
    if offset >= len(data):
        raise TlvError("data ends where a length should start", offset=offset)
    first = data[offset]
    if first < 0x80:
        return first, offset + 1, True
    count = first & 0x7F
    if count == 0:
        raise TlvError("indefinite length (0x80) is not allowed in EMV", offset=offset)
    if count > MAX_LENGTH_BYTES:
        raise TlvError(f"long-form length of {count} bytes (at most {MAX_LENGTH_BYTES})", offset=offset)
    if offset + 1 + count > len(data):
        raise TlvError("data ends inside a long-form length", offset=offset)
    length = int.from_bytes(data[offset + 1 : offset + 1 + count], "big")
    minimal = length >= 0x80 and (count == 1 or length >= 1 << (8 * (count - 1)))
    if strict and not minimal:
        raise TlvError("non-minimal length encoding", offset=offset, length=length)
    return length, offset + 1 + count, minimal


def _parse(
    data: bytes, start: int, end: int, depth: int, ff_padding: bool, strict_lengths: bool
) -> tuple[Tlv, ...]:
    if depth > MAX_DEPTH:
        raise TlvError(f"templates nested deeper than {MAX_DEPTH}", offset=start)
    objects: list[Tlv] = []
    offset = start
    while offset < end:
        byte = data[offset]
        if byte == 0x00:
            offset += 1
            continue
        if byte == 0xFF:
            if ff_padding:
                offset += 1
                continue
            raise TlvError("byte FF where a tag should start (FF padding not enabled)", offset=offset)
        tag_offset = offset
        tag, offset = _read_tag(data[:end], offset)
        length, offset, minimal = _read_length(data[:end], offset, strict_lengths)
        if offset + length > end:
            raise TlvError(
                f"value of tag {tag.hex().upper()} runs past the end of its data",
                offset=tag_offset,
                tag=tag.hex().upper(),
                length=length,
            )
        value = bytes(data[offset : offset + length])
        children: tuple[Tlv, ...] = ()
        if tag[0] & 0x20:
            children = _parse(data, offset, offset + length, depth + 1, ff_padding, strict_lengths)
        objects.append(Tlv(tag, value, children, tag_offset, offset, minimal))
        offset += length
    return tuple(objects)


def parse_tlv(data: bytes, *, ff_padding: bool = False, strict_lengths: bool = False) -> tuple[Tlv, ...]:
    """Parse concatenated BER-TLV objects (with ``00`` padding anywhere between them).

    Returns the top-level objects in order, duplicates kept. Raises :class:`TlvError` with the
    ``offset`` of the problem for truncated tags, lengths or values, an indefinite length, ``FF``
    (unless ``ff_padding``) and non-minimal lengths (only if ``strict_lengths``).
    """
    raw = bytes(data)
    return _parse(raw, 0, len(raw), 0, ff_padding, strict_lengths)


def encode_length(length: int) -> bytes:
    """The minimal BER length field for ``length`` (0 to 2**32 - 1)."""
    if length < 0 or length >= 1 << (8 * MAX_LENGTH_BYTES):
        raise TlvError(f"length {length} cannot be encoded", length=length)
    if length < 0x80:
        return bytes([length])
    size = (length.bit_length() + 7) // 8
    return bytes([0x80 | size]) + length.to_bytes(size, "big")


def _check_tag(tag: bytes) -> None:
    try:
        parsed, end = _read_tag(tag, 0)
    except TlvError as error:
        raise TlvError(f"not a valid tag: {tag.hex().upper()}", tag=tag.hex().upper()) from error
    if end != len(tag) or parsed[0] in (0x00, 0xFF):
        raise TlvError(f"not a valid tag: {tag.hex().upper()}", tag=tag.hex().upper())


def build_tlv(tag: bytes | str, value: bytes | Iterable[Tlv] = b"") -> bytes:
    """Encode one object: ``tag`` (bytes or hex) with ``value`` bytes or child objects."""
    tag_bytes = bytes.fromhex(tag) if isinstance(tag, str) else bytes(tag)
    _check_tag(tag_bytes)
    body = bytes(value) if isinstance(value, bytes | bytearray) else b"".join(t.encode() for t in value)
    return tag_bytes + encode_length(len(body)) + body


def iter_tlv(objects: Iterable[Tlv]) -> Iterator[Tlv]:
    """Every object, depth first in byte order (templates before their children)."""
    for item in objects:
        yield item
        yield from iter_tlv(item.children)


def find_tlv(objects: Iterable[Tlv], tag: bytes | str) -> Tlv | None:
    """The first object with ``tag`` at any depth, or None."""
    wanted = bytes.fromhex(tag) if isinstance(tag, str) else tag
    return next((item for item in iter_tlv(objects) if item.tag == wanted), None)


def duplicate_primitives(objects: Iterable[Tlv]) -> list[bytes]:
    """Primitive tags that occur more than once (in first-seen order); templates may repeat."""
    seen: set[bytes] = set()
    duplicates: list[bytes] = []
    for item in iter_tlv(objects):
        if item.constructed:
            continue
        if item.tag in seen and item.tag not in duplicates:
            duplicates.append(item.tag)
        seen.add(item.tag)
    return duplicates


# --------------------------------------------------------------------------- values


def bcd_digits(value: bytes) -> str:
    """The hex nibbles of ``value`` as text (``b"\\x12\\x3F"`` -> ``"123F"``)."""
    return value.hex().upper()


def numeric_value(value: bytes) -> int:
    """Format n (BCD, right-justified): the number; :class:`TlvError` on a non-decimal nibble."""
    digits = value.hex()
    if not digits.isdigit() and digits:
        raise TlvError("numeric (n) data holds a non-decimal nibble", length=len(value))
    return int(digits) if digits else 0


def compressed_numeric(value: bytes) -> str:
    """Format cn (BCD, left-justified, F-padded): the digits without the padding."""
    digits = value.hex().upper().rstrip("F")
    if not digits.isdigit():
        raise TlvError("compressed numeric (cn) data holds a non-decimal nibble", length=len(value))
    return digits


class Cryptogram(enum.StrEnum):
    """The type of application cryptogram, from bits 8-7 of 9F27 (Book 3 §6.5.5.4)."""

    AAC = "AAC"
    TC = "TC"
    ARQC = "ARQC"
    RFU = "RFU"


def cryptogram_type(cid: bytes) -> Cryptogram:
    """Decode the Cryptogram Information Data (9F27)."""
    if len(cid) != 1:
        raise TlvError("9F27 must be one byte", tag="9F27", length=len(cid))
    return (Cryptogram.AAC, Cryptogram.TC, Cryptogram.ARQC, Cryptogram.RFU)[cid[0] >> 6]


TVR_BITS: tuple[tuple[int, int, str], ...] = (
    (0, 0x80, "Offline data authentication was not performed"),
    (0, 0x40, "SDA failed"),
    (0, 0x20, "ICC data missing"),
    (0, 0x10, "Card appears on terminal exception file"),
    (0, 0x08, "DDA failed"),
    (0, 0x04, "CDA failed"),
    (0, 0x02, "SDA selected"),
    (1, 0x80, "ICC and terminal have different application versions"),
    (1, 0x40, "Expired application"),
    (1, 0x20, "Application not yet effective"),
    (1, 0x10, "Requested service not allowed for card product"),
    (1, 0x08, "New card"),
    (2, 0x80, "Cardholder verification was not successful"),
    (2, 0x40, "Unrecognised CVM"),
    (2, 0x20, "PIN Try Limit exceeded"),
    (2, 0x10, "PIN entry required and PIN pad not present or not working"),
    (2, 0x08, "PIN entry required, PIN pad present, but PIN was not entered"),
    (2, 0x04, "Online PIN entered"),
    (3, 0x80, "Transaction exceeds floor limit"),
    (3, 0x40, "Lower consecutive offline limit exceeded"),
    (3, 0x20, "Upper consecutive offline limit exceeded"),
    (3, 0x10, "Transaction selected randomly for online processing"),
    (3, 0x08, "Merchant forced transaction online"),
    (4, 0x80, "Default TDOL used"),
    (4, 0x40, "Issuer authentication failed"),
    (4, 0x20, "Script processing failed before final GENERATE AC"),
    (4, 0x10, "Script processing failed after final GENERATE AC"),
)
"""Terminal Verification Results (95) bits: (byte index, mask, meaning), Book 3 Annex C5."""


def tvr_flags(tvr: bytes) -> list[str]:
    """The meanings of the bits set in a 5-byte TVR (95)."""
    if len(tvr) != 5:
        raise TlvError("95 (TVR) must be 5 bytes", tag="95", length=len(tvr))
    return [meaning for index, mask, meaning in TVR_BITS if tvr[index] & mask]


def describe_value(item: Tlv, reveal: bool = False) -> str:
    """A short human-readable rendering of a primitive object's value.

    Card data (PAN, track, name) is masked unless ``reveal``; a card-data object that does not
    parse is hidden whole; unknown formats show as hex with any PAN-like digit run masked.
    """
    tag, value = item.tag_hex, item.value
    try:
        if tag == "57":
            card = track2_equivalent_card(value)
            pan = card.pan if reveal else mask_pan(card.pan)
            return f"PAN {pan} exp {card.expiry} service {card.service_code}"
        if tag == "5A":
            pan = compressed_numeric(value)
            return pan if reveal else mask_pan(pan)
        if tag == "9F27":
            return f"{value.hex().upper()} ({cryptogram_type(value)})"
        if tag == "95":
            flags = tvr_flags(value)
            return value.hex().upper() + (" (" + "; ".join(flags) + ")" if flags else "")
        if tag in ("5F24", "5F25", "9A") and len(value) == 3:
            digits = value.hex()
            return f"20{digits[0:2]}-{digits[2:4]}-{digits[4:6]}"
        info = item.info
        if info.sensitive and not reveal:
            return f"<{len(value)} bytes hidden>"
        if info.format is DataFormat.N:
            return str(numeric_value(value))
        if info.format is DataFormat.CN:
            return compressed_numeric(value)
        if info.format in (DataFormat.AN, DataFormat.ANS):
            return value.decode("latin-1").rstrip()
    except TlvError:
        if item.info.sensitive and not reveal:
            return f"<{len(value)} bytes hidden>"
    return value.hex().upper() if reveal else redact_pans(value.hex().upper())


# --------------------------------------------------------------------------- DOL


@dataclass(frozen=True)
class DolEntry:
    """One entry of a data object list: the tag wanted and the length the card expects."""

    tag: bytes
    length: int


def parse_dol(data: bytes) -> tuple[DolEntry, ...]:
    """Parse a DOL (PDOL 9F38, CDOL1 8C, CDOL2 8D, DDOL 9F49): tag and length pairs (Book 3 §5.4)."""
    raw = bytes(data)
    entries: list[DolEntry] = []
    offset = 0
    while offset < len(raw):
        if raw[offset] in (0x00, 0xFF):
            raise TlvError("byte 00 or FF where a DOL tag should start", offset=offset)
        tag, offset = _read_tag(raw, offset)
        length, offset, _ = _read_length(raw, offset, False)
        entries.append(DolEntry(tag, length))
    return tuple(entries)


def build_dol(entries: Iterable[DolEntry]) -> bytes:
    """Encode a DOL from its entries."""
    out = bytearray()
    for entry in entries:
        _check_tag(entry.tag)
        out += entry.tag + encode_length(entry.length)
    return bytes(out)


def fit_dol_value(tag: bytes, value: bytes | None, length: int) -> bytes:
    """``value`` cut or padded to ``length`` by EMV's rules for its format (Book 3 §5.4).

    Numeric (n): truncate on the left, pad ``00`` on the left. Compressed numeric (cn): truncate
    on the right, pad ``FF`` on the right. Anything else: truncate on the right, pad ``00`` on the
    right. An absent value, or a constructed tag, is ``length`` bytes of ``00``.
    """
    if value is None or tag[0] & 0x20 or length == 0:
        return bytes(length)
    fmt = tag_info(tag).format
    if fmt is DataFormat.N:
        return value[-length:] if len(value) >= length else bytes(length - len(value)) + value
    if len(value) >= length:
        return value[:length]
    pad = b"\xff" if fmt is DataFormat.CN else b"\x00"
    return value + pad * (length - len(value))


def build_dol_data(dol: bytes | Iterable[DolEntry], sources: Mapping[bytes, bytes]) -> bytes:
    """The data a DOL asks for, from ``sources`` (tag -> value), by :func:`fit_dol_value`."""
    entries = parse_dol(dol) if isinstance(dol, bytes | bytearray) else tuple(dol)
    return b"".join(fit_dol_value(entry.tag, sources.get(entry.tag), entry.length) for entry in entries)


def split_dol_data(dol: bytes | Iterable[DolEntry], data: bytes) -> list[Tlv]:
    """Cut the data sent for a DOL back into objects (one per entry); :class:`TlvError` if short."""
    entries = parse_dol(dol) if isinstance(dol, bytes | bytearray) else tuple(dol)
    objects: list[Tlv] = []
    offset = 0
    for entry in entries:
        if offset + entry.length > len(data):
            raise TlvError("DOL data shorter than its list", offset=offset, tag=entry.tag.hex().upper())
        objects.append(Tlv(entry.tag, bytes(data[offset : offset + entry.length]), (), offset, offset))
        offset += entry.length
    if offset != len(data):
        raise TlvError("DOL data longer than its list", offset=offset)
    return objects


# --------------------------------------------------------------------------- APDUs


@dataclass(frozen=True)
class CommandApdu:
    """An ISO/IEC 7816-4 command APDU (short form): ``le`` None means no Le byte (0 means 256)."""

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    le: int | None = None

    def encode(self) -> bytes:
        """The APDU bytes: header, Lc and data if any, Le if any."""
        if len(self.data) > 255:
            raise TlvError("command data over 255 bytes (short APDU)", length=len(self.data))
        out = bytes([self.cla, self.ins, self.p1, self.p2])
        if self.data:
            out += bytes([len(self.data)]) + self.data
        if self.le is not None:
            out += bytes([self.le & 0xFF])
        return out

    @property
    def name(self) -> str:
        """The command's name (``"READ RECORD"``) or its INS in hex."""
        return _COMMAND_NAMES.get((self.cla & 0xF0, self.ins), f"INS {self.ins:02X}")


_COMMAND_NAMES = {
    (0x00, 0xA4): "SELECT",
    (0x80, 0xA8): "GET PROCESSING OPTIONS",
    (0x00, 0xB2): "READ RECORD",
    (0x80, 0xAE): "GENERATE AC",
    (0x00, 0x88): "INTERNAL AUTHENTICATE",
    (0x80, 0xCA): "GET DATA",
    (0x00, 0xC0): "GET RESPONSE",
}


def parse_command_apdu(raw: bytes) -> CommandApdu:
    """Parse a short command APDU (cases 1-4, ISO/IEC 7816-4 §5.1)."""
    data = bytes(raw)
    if len(data) < 4:
        raise TlvError("command APDU shorter than its 4-byte header", length=len(data), offset=len(data))
    cla, ins, p1, p2 = data[:4]
    body = data[4:]
    if not body:
        return CommandApdu(cla, ins, p1, p2)
    if len(body) == 1:
        return CommandApdu(cla, ins, p1, p2, b"", body[0])
    lc = body[0]
    if lc == 0 or len(body) not in (1 + lc, 2 + lc):
        raise TlvError("command APDU length byte does not match its data", offset=4, length=lc)
    le = body[1 + lc] if len(body) == 2 + lc else None
    return CommandApdu(cla, ins, p1, p2, body[1 : 1 + lc], le)


def select(name: bytes) -> CommandApdu:
    """SELECT by DF name / AID, first occurrence (Book 1 §11.3)."""
    return CommandApdu(0x00, 0xA4, 0x04, 0x00, bytes(name), 0)


def get_processing_options(pdol_data: bytes = b"") -> CommandApdu:
    """GET PROCESSING OPTIONS with the PDOL data in a command template 83 (Book 3 §6.5.8)."""
    return CommandApdu(0x80, 0xA8, 0x00, 0x00, build_tlv(b"\x83", pdol_data), 0)


def read_record(record: int, sfi: int) -> CommandApdu:
    """READ RECORD ``record`` of short file ``sfi`` (Book 3 §6.5.11)."""
    if not 1 <= sfi <= 30 or not 1 <= record <= 255:
        raise TlvError("READ RECORD needs SFI 1-30 and record 1-255", sfi=sfi, record=record)
    return CommandApdu(0x00, 0xB2, record, (sfi << 3) | 0x04, b"", 0)


_AC_P1 = {Cryptogram.AAC: 0x00, Cryptogram.TC: 0x40, Cryptogram.ARQC: 0x80}


def generate_ac(kind: Cryptogram | str, cdol_data: bytes, cda: bool = False) -> CommandApdu:
    """GENERATE AC asking for an AAC, TC or ARQC (Book 3 §6.5.5)."""
    try:
        p1 = _AC_P1[Cryptogram(kind)]
    except (KeyError, ValueError):
        raise TlvError(f"GENERATE AC cannot ask for {kind!r}") from None
    return CommandApdu(0x80, 0xAE, p1 | (0x10 if cda else 0), 0x00, bytes(cdol_data), 0)


@dataclass(frozen=True)
class ResponseApdu:
    """A response APDU: data and the status word ``SW1 SW2``."""

    data: bytes
    sw: int

    @property
    def ok(self) -> bool:
        """True for 9000 (and 61xx, more data available)."""
        return self.sw == 0x9000 or self.sw >> 8 == 0x61

    @property
    def status(self) -> str:
        """The status word's meaning."""
        return status_text(self.sw)

    def encode(self) -> bytes:
        return self.data + self.sw.to_bytes(2, "big")


def parse_response_apdu(raw: bytes) -> ResponseApdu:
    """Split a response APDU into data and status word."""
    data = bytes(raw)
    if len(data) < 2:
        raise TlvError("response APDU shorter than its status word", length=len(data), offset=len(data))
    return ResponseApdu(data[:-2], int.from_bytes(data[-2:], "big"))


_STATUS_WORDS = {
    0x9000: "normal processing",
    0x6283: "selected file invalidated",
    0x6700: "wrong length",
    0x6981: "command incompatible with file structure",
    0x6982: "security status not satisfied",
    0x6983: "authentication method blocked",
    0x6984: "referenced data invalidated",
    0x6985: "conditions of use not satisfied",
    0x6986: "command not allowed",
    0x6A81: "function not supported",
    0x6A82: "file or application not found",
    0x6A83: "record not found",
    0x6A86: "incorrect P1 P2",
    0x6A88: "referenced data not found",
    0x6D00: "instruction code not supported",
    0x6E00: "class not supported",
    0x6F00: "no precise diagnosis",
}


def status_text(sw: int) -> str:
    """What a status word means (ISO/IEC 7816-4 §5.1.3, Book 3 Annex F)."""
    if sw in _STATUS_WORDS:
        return _STATUS_WORDS[sw]
    high, low = sw >> 8, sw & 0xFF
    if high == 0x61:
        return f"{low} more bytes available"
    if high == 0x6C:
        return f"wrong Le, exact length is {low}"
    if sw & 0xFFF0 == 0x63C0:
        return f"verification failed, {low & 0x0F} tries left"
    return f"status {sw:04X}"


@dataclass(frozen=True)
class AflEntry:
    """One Application File Locator entry: records ``first``..``last`` of ``sfi``."""

    sfi: int
    first: int
    last: int
    offline_auth_records: int


def parse_afl(afl: bytes) -> tuple[AflEntry, ...]:
    """Parse an AFL (94) into its 4-byte entries (Book 3 §10.2)."""
    if len(afl) % 4:
        raise TlvError("AFL length is not a multiple of 4", tag="94", length=len(afl))
    entries = []
    for offset in range(0, len(afl), 4):
        sfi, first, last, auth = afl[offset] >> 3, afl[offset + 1], afl[offset + 2], afl[offset + 3]
        if not 1 <= sfi <= 30 or first == 0 or last < first:
            raise TlvError("malformed AFL entry", tag="94", offset=offset)
        entries.append(AflEntry(sfi, first, last, auth))
    return tuple(entries)


def parse_gpo_response(data: bytes) -> tuple[bytes, bytes]:
    """AIP and AFL from a GET PROCESSING OPTIONS response, format 1 (80) or 2 (77)."""
    objects = parse_tlv(data)
    if len(objects) != 1:
        raise TlvError("a GPO response must be one template", offset=0)
    top = objects[0]
    if top.tag == b"\x80":
        if len(top.value) < 2 or len(top.value) % 4 != 2:
            raise TlvError("format 1 GPO response must hold AIP (2) and AFL (4n) bytes", tag="80")
        return top.value[:2], top.value[2:]
    if top.tag == b"\x77":
        aip, afl = find_tlv(top.children, b"\x82"), find_tlv(top.children, b"\x94")
        if aip is None or afl is None:
            raise TlvError("format 2 GPO response lacks 82 (AIP) or 94 (AFL)", tag="77")
        return aip.value, afl.value
    raise TlvError(f"GPO response template {top.tag_hex} is neither 80 nor 77", tag=top.tag_hex)


@dataclass(frozen=True)
class GenerateAcResult:
    """The fields of a GENERATE AC response: CID (9F27), ATC (9F36), cryptogram (9F26), IAD (9F10)."""

    cid: bytes
    atc: bytes
    cryptogram: bytes = field(repr=False)
    issuer_application_data: bytes = b""

    @property
    def kind(self) -> Cryptogram:
        return cryptogram_type(self.cid)

    def objects(self) -> list[Tlv]:
        """The response as primitive objects (format 1 data spelled out with its tags)."""
        pairs = [(b"\x9f\x27", self.cid), (b"\x9f\x36", self.atc), (b"\x9f\x26", self.cryptogram)]
        if self.issuer_application_data:
            pairs.append((b"\x9f\x10", self.issuer_application_data))
        return [Tlv(tag, value) for tag, value in pairs]


def parse_generate_ac_response(data: bytes) -> GenerateAcResult:
    """Parse a GENERATE AC response in format 1 (80: CID, ATC, AC, IAD) or format 2 (77)."""
    objects = parse_tlv(data)
    if len(objects) != 1:
        raise TlvError("a GENERATE AC response must be one template", offset=0)
    top = objects[0]
    if top.tag == b"\x80":
        value = top.value
        if len(value) < 11:
            raise TlvError("format 1 GENERATE AC response shorter than 11 bytes", tag="80")
        return GenerateAcResult(value[:1], value[1:3], value[3:11], value[11:])
    if top.tag == b"\x77":
        parts = {tag: find_tlv(top.children, tag) for tag in (b"\x9f\x27", b"\x9f\x36", b"\x9f\x26")}
        if any(item is None for item in parts.values()):
            raise TlvError("format 2 GENERATE AC response lacks 9F27, 9F36 or 9F26", tag="77")
        iad = find_tlv(top.children, b"\x9f\x10")
        cid, atc, ac = (item.value for item in parts.values() if item is not None)
        return GenerateAcResult(cid, atc, ac, iad.value if iad else b"")
    raise TlvError(f"GENERATE AC response template {top.tag_hex} is neither 80 nor 77", tag=top.tag_hex)


# --------------------------------------------------------------------------- card data


def track2_equivalent_card(value: bytes) -> Card:
    """The card in Track 2 Equivalent Data (57): PAN ``D`` YYMM service code discretionary ``F``-pad.

    Parsed by the same ISO/IEC 7813 rules as a swiped Track 2, so a chip read and a swipe of
    one card give the same :class:`Card`.
    """
    digits = value.hex().upper()
    if digits.endswith("F"):
        digits = digits[:-1]
    if "D" not in digits or not digits.replace("D", "", 1).isdigit():
        raise TlvError("57 is not PAN D expiry service-code digits", tag="57", length=len(value))
    track = Track(number=2, format=TrackFormat.BCD, text=digits.replace("D", "="))
    try:
        return card_from_tracks([track])
    except TrackError as error:
        raise TlvError(f"57 holds no valid card: {error.message}", tag="57") from None


def _expiry_from_5f24(value: bytes) -> str:
    """The YYMM expiry of an Application Expiration Date (5F24, n6 YYMMDD, EMV Book 3 Annex A).

    :class:`CardDataError` (tag ``5F24``, never the value) unless it is 3 bytes of BCD digits
    with month 01-12.
    """
    digits = value.hex()
    if len(value) == 3 and is_valid_expiry(digits[:4]) and digits[4:].isdigit():
        return digits[:4]
    raise CardDataError("5F24 is not a date YYMMDD with month 01-12", tag="5F24", length=len(value))


def card_from_tlv(objects: Sequence[Tlv]) -> Card:
    """The card from 57 (preferred) or 5A + 5F24, with the name from 5F20 (Book 3 Annex A)."""
    track2 = find_tlv(objects, b"\x57")
    pan_object = find_tlv(objects, b"\x5a")
    expiry_object = find_tlv(objects, b"\x5f\x24")
    name_object = find_tlv(objects, b"\x5f\x20")
    name = name_object.value.decode("latin-1").strip() or None if name_object else None
    if track2 is not None:
        card = track2_equivalent_card(track2.value)
        if pan_object is not None and compressed_numeric(pan_object.value) != card.pan:
            raise CardDataError("5A and 57 carry different PANs", tag="5A")
        return dataclasses.replace(card, name=name)
    if pan_object is None:
        raise CardDataError("no PAN: neither 57 nor 5A present")
    pan = compressed_numeric(pan_object.value)
    expiry = _expiry_from_5f24(expiry_object.value) if expiry_object is not None else None
    service = find_tlv(objects, b"\x5f\x30")
    service_code = service.value.hex()[-3:] if service is not None else None
    track = Track(number=2, format=TrackFormat.BCD, text=f"{pan}={expiry or '='}{service_code or ''}")
    try:
        card = card_from_tracks([track])
    except TrackError as error:
        raise CardDataError(f"5A holds no valid card: {error.message}", tag="5A") from None
    return dataclasses.replace(card, name=name)


def chip_read_from_tlv(tlv: bytes) -> ChipRead:
    """A :class:`ChipRead` from the TLV bytes a reader sends (see :func:`transcript_tlv`).

    Raises :class:`CardDataError` when a primitive tag occurs twice inside the records (70).
    """
    objects = parse_tlv(tlv)
    records = [item for item in objects if item.tag == b"\x70"]
    duplicates = duplicate_primitives(records)
    if duplicates:
        names = ", ".join(tag.hex().upper() for tag in duplicates)
        raise CardDataError(f"card error: primitive tag {names} occurs twice in the records", tags=names)
    card = card_from_tlv(objects)
    cid = find_tlv(objects, b"\x9f\x27")
    amount = find_tlv(objects, b"\x9f\x02")
    currency = find_tlv(objects, b"\x5f\x2a")
    return ChipRead(
        tlv=bytes(tlv),
        card=card,
        cryptogram=str(cryptogram_type(cid.value)) if cid is not None else None,
        amount=numeric_value(amount.value) if amount is not None else None,
        currency=f"{numeric_value(currency.value):03d}" if currency is not None else None,
    )


@dataclass(frozen=True)
class ApduExchange:
    """One command sent to the card and the card's full response (data and status word)."""

    command: bytes
    response: bytes = field(repr=False)


TERMINAL_TEMPLATE = b"\xe0"
"""A private constructed tag posbridge uses to carry the terminal's DOL data beside the card's."""


def transcript_tlv(exchanges: Sequence[ApduExchange]) -> bytes:
    """The TLV bytes a reader sends for a transaction: the card's successful responses in order,
    and the terminal data it gave for PDOL/CDOL1 (split by the DOLs) in an ``E0`` template.
    """
    card_data = bytearray()
    terminal: list[Tlv] = []
    dols: dict[str, bytes] = {}
    first_generate_ac = True
    for exchange in exchanges:
        command = parse_command_apdu(exchange.command)
        response = parse_response_apdu(exchange.response)
        if not response.ok:
            continue
        if response.data:
            objects = parse_tlv(response.data)
            for tag, key in ((b"\x9f\x38", "pdol"), (b"\x8c", "cdol1")):
                found = find_tlv(objects, tag)
                if found is not None:
                    dols[key] = found.value
            card_data += response.data
        if command.name == "GET PROCESSING OPTIONS" and "pdol" in dols:
            template = parse_tlv(command.data)
            if template and template[0].tag == b"\x83":
                terminal += split_dol_data(dols["pdol"], template[0].value)
        if command.name == "GENERATE AC" and "cdol1" in dols and first_generate_ac:
            terminal += split_dol_data(dols["cdol1"], command.data)
            first_generate_ac = False
    if terminal:
        card_data += build_tlv(TERMINAL_TEMPLATE, _unique(terminal))
    return bytes(card_data)


def _unique(objects: Sequence[Tlv]) -> list[Tlv]:
    seen: set[bytes] = set()
    kept = []
    for item in objects:
        if item.tag not in seen:
            seen.add(item.tag)
            kept.append(item)
    return kept


def chip_read_from_transcript(exchanges: Sequence[ApduExchange]) -> ChipRead:
    """The :class:`ChipRead` of a transaction transcript (SELECT, GPO, READ RECORDs, GENERATE AC)."""
    return chip_read_from_tlv(transcript_tlv(exchanges))
