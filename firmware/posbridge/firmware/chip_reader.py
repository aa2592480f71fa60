"""A powered audio-jack chip reader, as a reference: EMV transcript -> link frames -> modem audio.

What a Lakala / early-Square style reader's microcontroller does after talking to the card over
ISO/IEC 7816-3: put the card's answers (and the terminal data it sent) in BER-TLV (EMV Book 3
Annex B, see :func:`posbridge.protocols.emv.transcript_tlv`), carry them in a CHIP link frame
(:mod:`posbridge.protocols.link`) and modulate the frame into audio with a
:mod:`posbridge.dsp.modem` profile. Frames stay pending until acknowledged and are resent with
the RETRANSMIT flag. :func:`make_test_transcript` builds a realistic contact transaction (SELECT,
GET PROCESSING OPTIONS, READ RECORD x3, GENERATE AC) for a generated Luhn-valid test PAN.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import NDArray
from posbridge.dsp.modem import FskModulator, ModemProfile, get_profile
from posbridge.protocols import emv
from posbridge.protocols.cards import generate_test_pan
from posbridge.protocols.emv import ApduExchange, build_tlv
from posbridge.protocols.link import SEQ_MODULUS, ChipMessage, Frame, FrameFlags, encode_frame

VISA_CREDIT_AID = bytes.fromhex("A0000000031010")
SW_OK = b"\x90\x00"
PDOL = bytes.fromhex("9F1A029F3704")
CDOL1 = bytes.fromhex("9F02069F03069F1A0295055F2A029A039C019F3704")
CDOL2 = bytes.fromhex("8A029F3704")
BURST_GAP_SECONDS = 0.002


def _cn(digits: str) -> bytes:
    return bytes.fromhex(digits + ("F" if len(digits) % 2 else ""))


def _track2_equivalent(pan: str, expiry: str, service_code: str, discretionary: str) -> bytes:
    return _cn(f"{pan}D{expiry}{service_code}{discretionary}")


def _n(number: int, size: int) -> bytes:
    return bytes.fromhex(f"{number:0{2 * size}d}")


def make_test_transcript(
    rng: random.Random | None = None,
    pan: str | None = None,
    *,
    expiry: str = "2912",
    name: str = "TEST/CARDHOLDER",
    amount: int = 1234,
    currency: str = "840",
    cryptogram: emv.Cryptogram = emv.Cryptogram.ARQC,
) -> list[ApduExchange]:
    """A contact EMV transaction for a test card, as (command, response) APDU pairs.

    ``pan`` defaults to :func:`generate_test_pan` from ``rng``; ``expiry`` is YYMM; ``amount`` in
    minor units of ISO 4217 numeric ``currency``. The transcript holds SELECT, GET PROCESSING
    OPTIONS (format 2), three READ RECORDs and the first GENERATE AC (format 2) for ``cryptogram``.
    """
    rng = rng or random.Random()
    pan = pan or generate_test_pan(rng)
    discretionary = "".join(rng.choice("0123456789") for _ in range(13))
    terminal: dict[bytes, bytes] = {
        bytes.fromhex("9F1A"): _n(int(currency), 2),
        bytes.fromhex("9F37"): rng.randbytes(4),
        bytes.fromhex("9F02"): _n(amount, 6),
        bytes.fromhex("9F03"): _n(0, 6),
        bytes.fromhex("95"): bytes(5),
        bytes.fromhex("5F2A"): _n(int(currency), 2),
        bytes.fromhex("9A"): bytes.fromhex("261126"),
        bytes.fromhex("9C"): b"\x00",
    }
    proprietary = build_tlv("50", b"TEST CREDIT") + build_tlv("87", b"\x01") + build_tlv("9F38", PDOL)
    fci = build_tlv("6F", build_tlv("84", VISA_CREDIT_AID) + build_tlv("A5", proprietary))
    gpo_command = emv.get_processing_options(emv.build_dol_data(PDOL, terminal))
    afl = bytes.fromhex("0801010010010200")
    gpo = build_tlv("77", build_tlv("82", bytes.fromhex("3900")) + build_tlv("94", afl))
    record_1 = build_tlv(
        "70",
        build_tlv("57", _track2_equivalent(pan, expiry, "201", discretionary))
        + build_tlv("5F20", name.encode("ascii"))
        + build_tlv("9F1F", discretionary.encode("ascii")),
    )
    record_2 = build_tlv(
        "70",
        build_tlv("5A", _cn(pan))
        + build_tlv("5F24", bytes.fromhex(expiry + "31"))
        + build_tlv("5F25", bytes.fromhex("240101"))
        + build_tlv("5F28", _n(int(currency), 2))
        + build_tlv("5F34", b"\x01")
        + build_tlv("8C", CDOL1)
        + build_tlv("8D", CDOL2),
    )
    record_3 = build_tlv(
        "70",
        build_tlv("8E", bytes.fromhex("000000000000000042031E031F03"))
        + build_tlv("9F07", bytes.fromhex("FF00"))
        + build_tlv("9F42", _n(int(currency), 2)),
    )
    cid = {emv.Cryptogram.AAC: 0x00, emv.Cryptogram.TC: 0x40, emv.Cryptogram.ARQC: 0x80}[cryptogram]
    generate = build_tlv(
        "77",
        build_tlv("9F27", bytes([cid]))
        + build_tlv("9F36", rng.randbytes(2))
        + build_tlv("9F26", rng.randbytes(8))
        + build_tlv("9F10", bytes.fromhex("06010A03A00000")),
    )
    commands = [
        (emv.select(VISA_CREDIT_AID), fci),
        (gpo_command, gpo),
        (emv.read_record(1, 1), record_1),
        (emv.read_record(1, 2), record_2),
        (emv.read_record(2, 2), record_3),
        (emv.generate_ac(cryptogram, emv.build_dol_data(CDOL1, terminal)), generate),
    ]
    return [ApduExchange(command.encode(), response + SW_OK) for command, response in commands]


def terminal_sources(exchanges: Sequence[ApduExchange]) -> Mapping[bytes, bytes]:
    """The terminal data a transcript sent (PDOL and CDOL1 values by tag)."""
    objects = emv.parse_tlv(emv.transcript_tlv(exchanges))
    terminal = emv.find_tlv(objects, emv.TERMINAL_TEMPLATE)
    return {item.tag: item.value for item in terminal.children} if terminal else {}


class ChipReader:
    """The reader's sending side: transcripts in, modem audio out, resend until acknowledged.

    ``profile`` is a modem profile name or :class:`ModemProfile`, ``rate`` the sample rate in Hz.
    Every method returning audio gives float32 samples of shape ``(n,)``.
    """

    def __init__(self, profile: str | ModemProfile = "fast", rate: int = 48000, first_seq: int = 1) -> None:
        self.profile = get_profile(profile)
        self.rate = int(rate)
        self.modulator = FskModulator(self.profile, self.rate)
        self._next_seq = first_seq % SEQ_MODULUS
        self._pending: dict[int, Frame] = {}

    def frame_for(self, exchanges: Sequence[ApduExchange]) -> Frame:
        """Queue the CHIP frame carrying a transcript's TLV and return it."""
        frame = Frame.of(ChipMessage(tlv=emv.transcript_tlv(exchanges)), self._next_seq)
        self._pending[frame.seq] = frame
        self._next_seq = (self._next_seq + 1) % SEQ_MODULUS
        return frame

    def send(self, exchanges: Sequence[ApduExchange]) -> NDArray[np.float32]:
        """Audio carrying one transaction transcript in a CHIP frame (kept pending until ACKed)."""
        return self.modulate_frames([self.frame_for(exchanges)])

    def acknowledge(self, seq: int) -> None:
        """The host received frame ``seq``; stop resending it."""
        self._pending.pop(seq, None)

    @property
    def pending(self) -> list[int]:
        """Sequence numbers sent but not yet acknowledged, oldest first."""
        return list(self._pending)

    def retransmit(self) -> NDArray[np.float32]:
        """Audio resending every pending frame, flagged RETRANSMIT."""
        frames = [frame.with_flags(FrameFlags.RETRANSMIT) for frame in self._pending.values()]
        return self.modulate_frames(frames)

    def modulate_frames(self, frames: Sequence[Frame]) -> NDArray[np.float32]:
        """Audio for ``frames``: one Bell 202 transmission, or one fast burst per frame with gaps."""
        encoded = [encode_frame(frame) for frame in frames]
        if not encoded:
            return np.zeros(0, dtype=np.float32)
        if self.profile.kind == "async":
            return self.modulator.modulate(b"\x00" + b"".join(encoded))
        gap = np.zeros(round(BURST_GAP_SECONDS * self.rate), dtype=np.float32)
        parts: list[NDArray[np.float32]] = []
        for data in encoded:
            parts += [self.modulator.modulate(data), gap]
        return np.concatenate(parts)
