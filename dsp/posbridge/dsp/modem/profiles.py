"""Modem profiles: the Bell 202 asynchronous FSK of ``minimodem 1200`` and posbridge's fast burst MFSK.

``bell202`` follows the Bell System 202 data set (ITU-T V.23 mode 2 is its European twin): 1200
baud binary FSK, mark (1) at 1200 Hz, space (0) at 2200 Hz, continuous phase, asynchronous
8N1 characters sent least significant bit first, with the leader and trailer of two mark bits
that ``minimodem --tx 1200`` writes.

``fast`` is posbridge's own: continuous-phase 4-FSK at ``rate / 8`` symbols per second (6000
baud at 48 kHz, 5512.5 at 44.1 kHz), tones at ``(3, 5, 7, 9) * rate / 32`` (modulation index
0.5), two Gray-coded bits per symbol, in bursts of ``dotting preamble | sync word | length
header | payload | tail``. Raw rate 12 000 bit/s at 48 kHz and 11 025 bit/s at 44.1 kHz.
"""

from __future__ import annotations

from dataclasses import dataclass

from posbridge.protocols.errors import UsageError


@dataclass(frozen=True)
class ModemProfile:
    """One modulation and framing.

    ``kind`` is ``"async"`` (UART characters on binary FSK; ``baud``, ``mark_hz``, ``space_hz``,
    ``leader_bits``, ``trailer_bits`` apply) or ``"burst"`` (4-FSK bursts; ``samples_per_symbol``,
    ``tone_bins`` in units of ``rate / 32``, ``preamble_symbols``, ``sync_word``, ``tail_symbols``).
    """

    name: str
    kind: str
    description: str
    baud: float = 0.0
    mark_hz: float = 0.0
    space_hz: float = 0.0
    leader_bits: int = 0
    trailer_bits: int = 0
    samples_per_symbol: int = 0
    tone_bins: tuple[int, ...] = ()
    preamble_symbols: int = 0
    sync_word: tuple[int, ...] = ()
    tail_symbols: int = 0
    max_burst_bytes: int = 0

    def symbol_rate(self, rate: float) -> float:
        """Symbols (async: bits) per second at sample rate ``rate`` (Hz)."""
        return self.baud if self.kind == "async" else rate / self.samples_per_symbol

    def raw_bit_rate(self, rate: float) -> float:
        """Line bits per second, framing included, at sample rate ``rate``."""
        return self.symbol_rate(rate) * (1 if self.kind == "async" else 2)

    def payload_bit_rate(self, rate: float, burst_bytes: int = 1024) -> float:
        """Data bits per second after framing overhead (async: 8 of every 10 bits)."""
        if self.kind == "async":
            return self.baud * 0.8
        overhead = self.preamble_symbols + len(self.sync_word) + 4 * BURST_HEADER_BYTES + self.tail_symbols
        symbols = overhead + 4 * burst_bytes
        return 8 * burst_bytes * self.symbol_rate(rate) / symbols


BURST_HEADER_BYTES = 3  # payload length u16 big-endian, CRC-8 of the two length bytes

BELL202 = ModemProfile(
    name="bell202",
    kind="async",
    description="Bell 202: 1200 baud FSK, mark 1200 Hz, space 2200 Hz, 8N1 (minimodem 1200)",
    baud=1200.0,
    mark_hz=1200.0,
    space_hz=2200.0,
    leader_bits=2,
    trailer_bits=2,
)

FAST = ModemProfile(
    name="fast",
    kind="burst",
    description="posbridge fast: CP 4-FSK at rate/8 baud, tones (3,5,7,9)*rate/32, 2 bits/symbol",
    samples_per_symbol=8,
    tone_bins=(3, 5, 7, 9),
    preamble_symbols=64,
    sync_word=(1, 2, 2, 1, 0, 2, 3, 1, 1, 3, 0, 2, 3, 1, 2, 0),
    tail_symbols=2,
    max_burst_bytes=4096,
)

PROFILES: dict[str, ModemProfile] = {profile.name: profile for profile in (BELL202, FAST)}
"""Every profile by name: ``bell202`` and ``fast``."""


def get_profile(profile: str | ModemProfile) -> ModemProfile:
    """The profile named ``profile`` (or ``profile`` itself); :class:`UsageError` if unknown."""
    if isinstance(profile, ModemProfile):
        return profile
    try:
        return PROFILES[profile]
    except KeyError:
        raise UsageError(
            f"unknown modem profile {profile!r}; choose one of {', '.join(PROFILES)}", profile=profile
        ) from None
