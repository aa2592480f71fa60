"""Bell 202 interoperability with Debian's minimodem (``1200`` mode), both directions, 4 KiB exact."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from posbridge.dsp.modem import FskDemodulator, FskModulator
from posbridge.hardware.audio import read_wav, write_wav

PAYLOAD = np.random.default_rng(4096).integers(0, 256, 4096, dtype=np.uint8).tobytes()


def test_minimodem_to_posbridge(minimodem: str, tmp_path: Path) -> None:
    wav = tmp_path / "minimodem.wav"
    subprocess.run([minimodem, "--tx", "1200", "-f", str(wav)], input=PAYLOAD, check=True, timeout=60)
    samples, rate = read_wav(wav)
    demodulator = FskDemodulator("bell202", rate)
    assert demodulator.process(samples) + demodulator.flush() == PAYLOAD


@pytest.mark.parametrize(("rate", "size"), [(48000, 4096), (44100, 512)])
def test_posbridge_to_minimodem(minimodem: str, tmp_path: Path, rate: int, size: int) -> None:
    wav = tmp_path / "posbridge.wav"
    data = PAYLOAD[:size]
    write_wav(wav, FskModulator("bell202", rate).modulate(data), rate)
    received = subprocess.run(
        [minimodem, "--rx", "1200", "-q", "-f", str(wav)], capture_output=True, check=True, timeout=60
    ).stdout
    assert received == data


def test_transmitted_waveform_matches_minimodem(minimodem: str, tmp_path: Path) -> None:
    wav = tmp_path / "u.wav"
    subprocess.run([minimodem, "--tx", "1200", "-f", str(wav)], input=b"posbridge", check=True, timeout=60)
    theirs, rate = read_wav(wav)
    ours = FskModulator("bell202", rate).modulate(b"posbridge")
    theirs = theirs[:, 0]
    assert ours.shape == theirs.shape
    assert float(np.max(np.abs(ours - theirs))) < 0.02
