"""Derived Unique Key Per Transaction: ANSI X9.24-3-2017 (AES) and ANSI X9.24-1-2009 (TDES).

AES DUKPT (X9.24-3-2017 §6): a 12-byte KSN is an 8-byte initial key ID followed by a 32-bit
transaction counter that may hold at most 16 one-bits (§6.1). The initial key is derived from the
BDK with usage 0x8001 (§6.3.1), the transaction key by walking the counter's one-bits from the top
with usage 0x8000 (§6.3.2), and working keys with usages 0x1000 (PIN), 0x2000 (MAC generation),
0x3000 (data encryption) (§6.3.3, Table 2). Each derivation is AES-ECB of a 16-byte derivation data
block (§6.3.4, Table 3) under the parent key, one block per 128 bits of derived key. BDKs and
initial keys may be AES-128 or AES-256; working keys here are AES-128.

TDES DUKPT (X9.24-1-2009 Annex A): a 10-byte KSN ends in a 21-bit counter that may hold at most
10 one-bits (A.2). The IPEK is TDES of the KSN register under the BDK and under the BDK ⊕ C0C0…
(A.6); future keys come from the non-reversible key generation process (A.2, "NRKGP"); working
keys are variants of the transaction key (A.6: PIN, MAC request, data request).

Card data is encrypted with the data-encryption working key in CBC mode with a zero IV and
PKCS#7 padding (AES-128 for the ``aes128`` scheme, two-key TDES for ``tdes``), as an encrypting
reader would; :func:`decrypt_card_data` is the processor side, starting from the BDK.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from posbridge.protocols.errors import IntegrityError, KeyMaterialError, KsnExhaustedError, TrackError
from posbridge.protocols.types import EncryptedCardData, MaskedCard, Track, TrackFormat

AES_KSN_BYTES = 12
AES_INITIAL_KEY_ID_BYTES = 8
AES_COUNTER_BITS = 32
AES_MAX_COUNTER_ONE_BITS = 16
TDES_KSN_BYTES = 10
TDES_COUNTER_BITS = 21
TDES_MAX_COUNTER_ONE_BITS = 10


class KeyUsage(enum.IntEnum):
    """Key usage indicators of X9.24-3-2017 Table 2."""

    KEY_ENCRYPTION_KEY = 0x0002
    PIN_ENCRYPTION = 0x1000
    MAC_GENERATION = 0x2000
    MAC_VERIFICATION = 0x2001
    MAC_BOTH_WAYS = 0x2002
    DATA_ENCRYPTION_ENCRYPT = 0x3000
    DATA_ENCRYPTION_DECRYPT = 0x3001
    DATA_ENCRYPTION_BOTH_WAYS = 0x3002
    KEY_DERIVATION = 0x8000
    KEY_DERIVATION_INITIAL_KEY = 0x8001


class KeyType(enum.IntEnum):
    """Algorithm indicators of X9.24-3-2017 Table 3 (only the AES ones are derived here)."""

    AES128 = 0x0002
    AES192 = 0x0003
    AES256 = 0x0004

    @property
    def length_bytes(self) -> int:
        """Key length in bytes."""
        return {KeyType.AES128: 16, KeyType.AES192: 24, KeyType.AES256: 32}[self]

    @classmethod
    def for_key(cls, key: bytes, what: str) -> KeyType:
        """The AES key type of ``key`` by its length, or :class:`KeyMaterialError`."""
        for key_type in cls:
            if len(key) == key_type.length_bytes:
                return key_type
        raise KeyMaterialError(f"{what} must be 16, 24 or 32 bytes for AES, got {len(key)}", length=len(key))


def parse_hex(text: str, what: str, lengths: tuple[int, ...] | None = None) -> bytes:
    """Decode hex ``text`` (spaces allowed) to bytes of one of ``lengths``, else :class:`KeyMaterialError`."""
    cleaned = "".join(text.split())
    try:
        value = bytes.fromhex(cleaned)
    except ValueError:
        raise KeyMaterialError(f"{what} is not valid hex", field=what) from None
    if lengths is not None and len(value) not in lengths:
        names = [str(n) for n in lengths]
        expected = ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]
        raise KeyMaterialError(
            f"{what} must be {expected} bytes, got {len(value)}", field=what, length=len(value)
        )
    return value


def _aes_ecb_encrypt(key: bytes, block: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return encryptor.update(block) + encryptor.finalize()


def _three_key_form(key: bytes) -> bytes:
    return key + key[:8] if len(key) == 16 else key


def _tdes_ecb_encrypt(key: bytes, block: bytes) -> bytes:
    encryptor = Cipher(TripleDES(_three_key_form(key)), modes.ECB()).encryptor()
    return encryptor.update(block) + encryptor.finalize()


def _des_encrypt(key8: bytes, block: bytes) -> bytes:
    return _tdes_ecb_encrypt(key8 * 3, block)


def _xor(left: bytes, right: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(left, right, strict=True))


# --------------------------------------------------------------------------- AES DUKPT (X9.24-3)


@dataclass(frozen=True)
class AesKsn:
    """A 12-byte AES DUKPT key serial number: initial key ID (8 bytes) and counter (32 bits)."""

    initial_key_id: bytes
    counter: int

    def __post_init__(self) -> None:
        if len(self.initial_key_id) != AES_INITIAL_KEY_ID_BYTES:
            raise KeyMaterialError(
                f"an AES initial key ID must be 8 bytes, got {len(self.initial_key_id)}",
                length=len(self.initial_key_id),
            )
        if not 0 <= self.counter < 1 << AES_COUNTER_BITS:
            raise KsnExhaustedError("the AES DUKPT counter does not fit in 32 bits", counter=self.counter)

    @classmethod
    def from_bytes(cls, ksn: bytes) -> AesKsn:
        """Split a 12-byte KSN."""
        if len(ksn) != AES_KSN_BYTES:
            raise KeyMaterialError(f"an AES KSN must be 12 bytes, got {len(ksn)}", length=len(ksn))
        return cls(ksn[:AES_INITIAL_KEY_ID_BYTES], int.from_bytes(ksn[AES_INITIAL_KEY_ID_BYTES:], "big"))

    def to_bytes(self) -> bytes:
        """The 12-byte KSN."""
        return self.initial_key_id + self.counter.to_bytes(4, "big")

    def check_usable(self) -> None:
        """Raise :class:`KsnExhaustedError` unless the counter may key a transaction (1..2³²-1, ≤ 16 ones)."""
        if self.counter == 0:
            raise KsnExhaustedError("AES DUKPT counter 0 is the initial key and keys no transaction")
        if self.counter.bit_count() > AES_MAX_COUNTER_ONE_BITS:
            raise KsnExhaustedError("the AES DUKPT counter has more than 16 one-bits", counter=self.counter)

    def next(self) -> AesKsn:
        """The next usable KSN (X9.24-3 §6.5: skip counters with more than 16 one-bits)."""
        return AesKsn(
            self.initial_key_id, next_counter(self.counter, AES_COUNTER_BITS, AES_MAX_COUNTER_ONE_BITS)
        )


def next_counter(counter: int, counter_bits: int, max_one_bits: int) -> int:
    """The smallest counter above ``counter`` with at most ``max_one_bits`` one-bits.

    Adding the lowest set bit clears a run of ones, so a counter with too many ones jumps straight
    to the next valid one (X9.24-1 A.2 / X9.24-3 §6.5). Raises :class:`KsnExhaustedError` when no
    valid counter remains in ``counter_bits``.
    """
    candidate = counter + 1
    while candidate.bit_count() > max_one_bits:
        candidate += candidate & -candidate
    if candidate >= 1 << counter_bits:
        raise KsnExhaustedError("the DUKPT transaction counter is exhausted; load a new initial key")
    return candidate


def _derivation_data(usage: int, key_type: KeyType, tail: bytes) -> bytearray:
    length_bits = key_type.length_bytes * 8
    return bytearray(struct.pack(">BBHHH", 0x01, 0x01, usage, key_type, length_bits) + tail)


def _derive_aes_key(derivation_key: bytes, key_type: KeyType, data: bytearray) -> bytes:
    result = b""
    for block_counter in range(1, -(-key_type.length_bytes // 16) + 1):
        data[1] = block_counter
        result += _aes_ecb_encrypt(derivation_key, bytes(data))
    return result[: key_type.length_bytes]


def derive_aes_initial_key(bdk: bytes, initial_key_id: bytes) -> bytes:
    """The initial key (same length as the BDK) for ``initial_key_id`` (8 bytes) (X9.24-3 §6.3.1)."""
    key_type = KeyType.for_key(bdk, "the BDK")
    if len(initial_key_id) != AES_INITIAL_KEY_ID_BYTES:
        raise KeyMaterialError(
            f"an AES initial key ID must be 8 bytes, got {len(initial_key_id)}", length=len(initial_key_id)
        )
    data = _derivation_data(KeyUsage.KEY_DERIVATION_INITIAL_KEY, key_type, initial_key_id)
    return _derive_aes_key(bdk, key_type, data)


def derive_aes_transaction_key(initial_key: bytes, ksn: bytes) -> bytes:
    """The transaction (intermediate derivation) key for a 12-byte KSN (X9.24-3 §6.3.2)."""
    key_type = KeyType.for_key(initial_key, "the initial key")
    parsed = AesKsn.from_bytes(ksn)
    parsed.check_usable()
    tail_id = parsed.initial_key_id[4:]
    key = initial_key
    working_counter = 0
    for bit in range(AES_COUNTER_BITS - 1, -1, -1):
        mask = 1 << bit
        if parsed.counter & mask:
            working_counter |= mask
            data = _derivation_data(
                KeyUsage.KEY_DERIVATION, key_type, tail_id + working_counter.to_bytes(4, "big")
            )
            key = _derive_aes_key(key, key_type, data)
    return key


def derive_aes_working_key(
    transaction_key: bytes, ksn: bytes, usage: KeyUsage, key_type: KeyType = KeyType.AES128
) -> bytes:
    """A working key of ``usage`` from the transaction key; data ends in KSN bytes 4–11 (§6.3.3)."""
    KeyType.for_key(transaction_key, "the transaction key")
    parsed = AesKsn.from_bytes(ksn)
    data = _derivation_data(usage, key_type, parsed.initial_key_id[4:] + parsed.counter.to_bytes(4, "big"))
    return _derive_aes_key(transaction_key, key_type, data)


@dataclass(frozen=True)
class AesDukptKeys:
    """Every key a lab checks for one AES KSN (each 16 bytes, or 32 for an AES-256 initial key)."""

    initial_key: bytes = field(repr=False)
    transaction_key: bytes = field(repr=False)
    pin_key: bytes = field(repr=False)
    mac_key: bytes = field(repr=False)
    data_key: bytes = field(repr=False)


def aes_keys_for_ksn(bdk: bytes, ksn: bytes) -> AesDukptKeys:
    """Initial, transaction and working keys (PIN 0x1000, MAC 0x2000, data 0x3000) for a 12-byte KSN."""
    parsed = AesKsn.from_bytes(ksn)
    initial_key = derive_aes_initial_key(bdk, parsed.initial_key_id)
    transaction_key = derive_aes_transaction_key(initial_key, ksn)
    return AesDukptKeys(
        initial_key=initial_key,
        transaction_key=transaction_key,
        pin_key=derive_aes_working_key(transaction_key, ksn, KeyUsage.PIN_ENCRYPTION),
        mac_key=derive_aes_working_key(transaction_key, ksn, KeyUsage.MAC_GENERATION),
        data_key=derive_aes_working_key(transaction_key, ksn, KeyUsage.DATA_ENCRYPTION_ENCRYPT),
    )


# --------------------------------------------------------------------------- TDES DUKPT (X9.24-1)

_TDES_KEY_MASK = bytes.fromhex("C0C0C0C000000000C0C0C0C000000000")
_TDES_COUNTER_MASK = (1 << TDES_COUNTER_BITS) - 1
TDES_PIN_VARIANT = bytes.fromhex("00000000000000FF00000000000000FF")
TDES_MAC_REQUEST_VARIANT = bytes.fromhex("000000000000FF00000000000000FF00")
TDES_MAC_RESPONSE_VARIANT = bytes.fromhex("00000000FF00000000000000FF000000")
TDES_DATA_REQUEST_VARIANT = bytes.fromhex("0000000000FF00000000000000FF0000")


def _check_tdes_inputs(key: bytes, ksn: bytes, what: str) -> None:
    if len(key) != 16:
        raise KeyMaterialError(f"{what} must be 16 bytes (two-key TDES), got {len(key)}", length=len(key))
    if len(ksn) != TDES_KSN_BYTES:
        raise KeyMaterialError(f"a TDES KSN must be 10 bytes, got {len(ksn)}", length=len(ksn))


def tdes_counter(ksn: bytes) -> int:
    """The 21-bit transaction counter of a 10-byte KSN."""
    if len(ksn) != TDES_KSN_BYTES:
        raise KeyMaterialError(f"a TDES KSN must be 10 bytes, got {len(ksn)}", length=len(ksn))
    return int.from_bytes(ksn, "big") & _TDES_COUNTER_MASK


def tdes_ksn_with_counter(ksn: bytes, counter: int) -> bytes:
    """``ksn`` with its 21-bit counter replaced."""
    if not 0 <= counter <= _TDES_COUNTER_MASK:
        raise KsnExhaustedError("the TDES DUKPT counter does not fit in 21 bits", counter=counter)
    value = (int.from_bytes(ksn, "big") & ~_TDES_COUNTER_MASK) | counter
    return value.to_bytes(TDES_KSN_BYTES, "big")


def tdes_next_ksn(ksn: bytes) -> bytes:
    """The next usable TDES KSN (at most 10 one-bits in the counter, X9.24-1 A.2)."""
    counter = next_counter(tdes_counter(ksn), TDES_COUNTER_BITS, TDES_MAX_COUNTER_ONE_BITS)
    return tdes_ksn_with_counter(ksn, counter)


def derive_tdes_ipek(bdk: bytes, ksn: bytes) -> bytes:
    """The initial PIN encryption key for a 10-byte KSN (X9.24-1-2009 A.6)."""
    _check_tdes_inputs(bdk, ksn, "the BDK")
    register = tdes_ksn_with_counter(ksn, 0)[:8]
    return _tdes_ecb_encrypt(bdk, register) + _tdes_ecb_encrypt(_xor(bdk, _TDES_KEY_MASK), register)


def _non_reversible_key_generation(key: bytes, register: bytes) -> bytes:
    left, right = key[:8], key[8:]
    right_half = _xor(_des_encrypt(left, _xor(register, right)), right)
    masked = _xor(key, _TDES_KEY_MASK)
    left_half = _xor(_des_encrypt(masked[:8], _xor(register, masked[8:])), masked[8:])
    return left_half + right_half


def derive_tdes_transaction_key(ipek: bytes, ksn: bytes) -> bytes:
    """The current (future) key for a 10-byte KSN, walking the counter's one-bits (X9.24-1-2009 A.2)."""
    _check_tdes_inputs(ipek, ksn, "the IPEK")
    counter = tdes_counter(ksn)
    if counter.bit_count() > TDES_MAX_COUNTER_ONE_BITS:
        raise KsnExhaustedError("the TDES DUKPT counter has more than 10 one-bits", counter=counter)
    register = int.from_bytes(ksn[2:], "big") & ~_TDES_COUNTER_MASK
    key = ipek
    for bit in range(TDES_COUNTER_BITS - 1, -1, -1):
        mask = 1 << bit
        if counter & mask:
            register |= mask
            key = _non_reversible_key_generation(key, register.to_bytes(8, "big"))
    return key


@dataclass(frozen=True)
class TdesDukptKeys:
    """Every key a lab checks for one TDES KSN (each 16 bytes)."""

    ipek: bytes = field(repr=False)
    key: bytes = field(repr=False)
    pin_key: bytes = field(repr=False)
    mac_key: bytes = field(repr=False)
    data_key: bytes = field(repr=False)


def tdes_keys_for_ksn(bdk: bytes, ksn: bytes) -> TdesDukptKeys:
    """IPEK, current key and its PIN / MAC-request / data-request variants for a 10-byte KSN."""
    ipek = derive_tdes_ipek(bdk, ksn)
    key = derive_tdes_transaction_key(ipek, ksn)
    return TdesDukptKeys(
        ipek=ipek,
        key=key,
        pin_key=_xor(key, TDES_PIN_VARIANT),
        mac_key=_xor(key, TDES_MAC_REQUEST_VARIANT),
        data_key=_xor(key, TDES_DATA_REQUEST_VARIANT),
    )


def encrypt_tdes_pin_block(pin_key: bytes, clear_pin_block: bytes) -> bytes:
    """Encrypt an 8-byte clear PIN block (e.g. ISO 9564 format 0) under a TDES DUKPT PIN key (ECB)."""
    if len(pin_key) != 16 or len(clear_pin_block) != 8:
        raise KeyMaterialError(
            "a TDES PIN key is 16 bytes and a PIN block 8 bytes", length=len(clear_pin_block)
        )
    return _tdes_ecb_encrypt(pin_key, clear_pin_block)


def scheme_of_ksn(ksn: bytes) -> str:
    """``"tdes"`` for a 10-byte KSN (X9.24-1), ``"aes128"`` for a 12-byte one (X9.24-3)."""
    if len(ksn) == TDES_KSN_BYTES:
        return "tdes"
    if len(ksn) == AES_KSN_BYTES:
        return "aes128"
    raise KeyMaterialError(
        f"a KSN must be 10 bytes (TDES) or 12 bytes (AES), got {len(ksn)}", length=len(ksn)
    )


def derive_keys(bdk: bytes, ksn: bytes) -> AesDukptKeys | TdesDukptKeys:
    """Keys for a KSN: 10 bytes means TDES (X9.24-1), 12 bytes AES (X9.24-3)."""
    if scheme_of_ksn(ksn) == "tdes":
        return tdes_keys_for_ksn(bdk, ksn)
    return aes_keys_for_ksn(bdk, ksn)


# --------------------------------------------------------------------------- card data encryption


def _cbc(key: bytes, scheme: str, data: bytes, encrypt: bool) -> bytes:
    if scheme == "aes128":
        algorithm: algorithms.AES | TripleDES = algorithms.AES(key)
    elif scheme == "tdes":
        algorithm = TripleDES(_three_key_form(key))
    else:
        raise KeyMaterialError(f"unknown DUKPT scheme {scheme!r}", scheme=scheme)
    cipher = Cipher(algorithm, modes.CBC(bytes(algorithm.block_size // 8)))
    context = cipher.encryptor() if encrypt else cipher.decryptor()
    return context.update(data) + context.finalize()


def _data_key(initial_key: bytes, ksn: bytes) -> tuple[bytes, str]:
    if scheme_of_ksn(ksn) == "tdes":
        return _xor(derive_tdes_transaction_key(initial_key, ksn), TDES_DATA_REQUEST_VARIANT), "tdes"
    transaction_key = derive_aes_transaction_key(initial_key, ksn)
    return derive_aes_working_key(transaction_key, ksn, KeyUsage.DATA_ENCRYPTION_ENCRYPT), "aes128"


def encrypt_card_data(
    initial_key: bytes, ksn: bytes, plaintext: bytes, masked: MaskedCard
) -> EncryptedCardData:
    """Encrypt ``plaintext`` under the data key of ``ksn`` (device side).

    ``initial_key`` is the AES initial key (12-byte KSN) or the TDES IPEK (10-byte KSN); the
    caller must use each KSN once. CBC, zero IV, PKCS#7 padding.
    """
    data_key, scheme = _data_key(initial_key, ksn)
    padder = padding.PKCS7(128 if scheme == "aes128" else 64).padder()
    padded = padder.update(plaintext) + padder.finalize()
    return EncryptedCardData(
        ksn=ksn, ciphertext=_cbc(data_key, scheme, padded, True), masked=masked, scheme=scheme
    )


def initial_key_for_ksn(bdk: bytes, ksn: bytes) -> bytes:
    """The device's initial key (AES) or IPEK (TDES) for the device that produced ``ksn``."""
    if scheme_of_ksn(ksn) == "tdes":
        return derive_tdes_ipek(bdk, ksn)
    return derive_aes_initial_key(bdk, ksn[:AES_INITIAL_KEY_ID_BYTES])


def decrypt_card_data(bdk: bytes, data: EncryptedCardData) -> bytes:
    """Decrypt card data with the BDK (processor side); :class:`IntegrityError` if it does not unpad."""
    data_key, scheme = _data_key(initial_key_for_ksn(bdk, data.ksn), data.ksn)
    block_bits = 128 if scheme == "aes128" else 64
    if not data.ciphertext or len(data.ciphertext) % (block_bits // 8):
        raise IntegrityError(
            "DUKPT ciphertext is not a whole number of cipher blocks", length=len(data.ciphertext)
        )
    padded = _cbc(data_key, scheme, data.ciphertext, False)
    unpadder = padding.PKCS7(block_bits).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise IntegrityError("DUKPT ciphertext did not decrypt: wrong BDK or KSN, or corrupted") from None


# --------------------------------------------------------------------------- tracks as plaintext

_TRACK_FORMAT_CODES = {TrackFormat.ALPHA: "A", TrackFormat.BCD: "B"}


def pack_tracks(tracks: tuple[Track, ...]) -> bytes:
    """Serialize tracks for encryption: per track one line ``<number><A|B><text>``, joined by LF."""
    lines = []
    for track in tracks:
        if "\n" in track.text or not 0 <= track.number <= 9:
            raise TrackError("a track cannot be packed for encryption", number=track.number)
        lines.append(f"{track.number}{_TRACK_FORMAT_CODES[track.format]}{track.text}")
    return "\n".join(lines).encode("ascii", errors="strict")


def unpack_tracks(plaintext: bytes) -> tuple[Track, ...]:
    """The tracks of a decrypted :func:`pack_tracks` plaintext."""
    formats = {code: fmt for fmt, code in _TRACK_FORMAT_CODES.items()}
    try:
        text = plaintext.decode("ascii")
    except UnicodeDecodeError:
        raise TrackError("decrypted track data is not ASCII") from None
    tracks = []
    for line in text.split("\n") if text else []:
        if len(line) < 2 or not line[0].isdigit() or line[1] not in formats:
            raise TrackError("decrypted track data is not in packed-track form")
        tracks.append(Track(number=int(line[0]), format=formats[line[1]], text=line[2:]))
    return tuple(tracks)


def encrypt_tracks(
    initial_key: bytes, ksn: bytes, tracks: tuple[Track, ...], masked: MaskedCard
) -> EncryptedCardData:
    """Encrypt a swipe's tracks (device side); see :func:`encrypt_card_data`."""
    return encrypt_card_data(initial_key, ksn, pack_tracks(tracks), masked)


def decrypt_tracks(bdk: bytes, data: EncryptedCardData) -> tuple[Track, ...]:
    """Decrypt a swipe's tracks with the BDK (processor side)."""
    return unpack_tracks(decrypt_card_data(bdk, data))
