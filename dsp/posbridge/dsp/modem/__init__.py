"""Audio modems for chip readers on the audio jack: Bell 202 (minimodem ``1200``) and a fast 4-FSK.

Public API::

    FskModulator(profile, rate).modulate(data) -> float32 samples, shape (n,)
    FskDemodulator(profile, rate).process(block) -> bytes;  .flush() -> bytes
    PROFILES["bell202" | "fast"]
"""

from posbridge.dsp.modem.demodulator import DemodulatorStats, FskDemodulator
from posbridge.dsp.modem.modulator import FskModulator
from posbridge.dsp.modem.profiles import BELL202, FAST, PROFILES, ModemProfile, get_profile

__all__ = [
    "BELL202",
    "FAST",
    "PROFILES",
    "DemodulatorStats",
    "FskDemodulator",
    "FskModulator",
    "ModemProfile",
    "get_profile",
]
