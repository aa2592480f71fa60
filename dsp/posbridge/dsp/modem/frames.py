"""Link frames over the audio modem: the receiving half (modem bytes -> CRC-checked frames).

Frames are those of :mod:`posbridge.protocols.link` (COBS, 0x00 delimiter, CRC-32C). A frame
damaged on the air fails its CRC and is dropped and counted (``stats.bad_checksum``); the sender
resends what was not acknowledged (see :class:`posbridge.firmware.chip_reader.ChipReader`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from posbridge.dsp.modem.demodulator import FskDemodulator
from posbridge.dsp.modem.profiles import ModemProfile
from posbridge.protocols.emv import chip_read_from_tlv
from posbridge.protocols.errors import FrameError
from posbridge.protocols.link import ChipMessage, DecoderStats, Frame, FrameDecoder, MessageType
from posbridge.protocols.types import ChipRead


class ModemFrameReceiver:
    """Audio in, link frames out: an :class:`FskDemodulator` feeding a :class:`FrameDecoder`.

    :meth:`process` takes ``(n,)`` or ``(n, channels)`` samples at ``rate`` Hz and returns the
    frames (and :class:`FrameError` s for dropped ones) they complete; any block sizes give the
    same results.
    """

    def __init__(self, profile: str | ModemProfile, rate: int = 48000) -> None:
        self.demodulator = FskDemodulator(profile, rate)
        self.decoder = FrameDecoder()

    @property
    def stats(self) -> DecoderStats:
        """Frames accepted, dropped for a bad CRC, malformed or unsupported."""
        return self.decoder.stats

    def process(self, block: NDArray[np.floating]) -> list[Frame | FrameError]:
        """Demodulate ``block`` and return the frames and frame errors it completes."""
        return self.decoder.feed(self.demodulator.process(block))

    def flush(self) -> list[Frame | FrameError]:
        """End of audio: the frames still held, then a final delimiter so a cut frame is dropped."""
        return self.decoder.feed(self.demodulator.flush() + b"\x00")


def chip_read_of(frame: Frame) -> ChipRead | None:
    """The :class:`ChipRead` a CHIP frame carries, None for other frames.

    Raises :class:`TlvError` (or :class:`FrameError`) when the frame's EMV data is bad.
    """
    if frame.type is not MessageType.CHIP:
        return None
    message = frame.message()
    assert isinstance(message, ChipMessage)
    return chip_read_from_tlv(message.tlv)


__all__ = ["ModemFrameReceiver", "chip_read_of"]
