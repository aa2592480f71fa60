"""Modem benchmarks, side by side with Debian's minimodem on the same WAV files (issue 5 targets).

1. Bell 202: bytes recovered (aligned with difflib, autojunk off) by posbridge and by
   ``minimodem --rx 1200`` from the same noisy 16-bit WAVs, SNR over the full band 20 dB to -1 dB.
2. Fast profile: payload throughput of CHIP link frames (COBS, CRC, burst preamble and gaps
   included) and frame error rate at 20 dB SNR, +-2 % sender clock error.
3. Demodulation speed in multiples of real time for both profiles.

Run: ``.venv/bin/python benchmarks/modem.py`` (``--quick`` for a smaller run). Prints Markdown.
"""

from __future__ import annotations

import argparse
import difflib
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from posbridge.dsp.modem import PROFILES, FskDemodulator, FskModulator
from posbridge.dsp.modem.channel import add_noise, impair
from posbridge.dsp.modem.frames import ModemFrameReceiver
from posbridge.firmware.chip_reader import ChipReader
from posbridge.hardware.audio import read_wav, write_wav
from posbridge.protocols.link import ChipMessage, Frame

RATE = 48000
AMPLITUDE = 0.25  # head-room so that noise at -1 dB SNR does not clip the 16-bit WAV
SNRS_DB = (20, 15, 12, 10, 8, 6, 5, 4, 3, 2, 1, 0, -1)


def recovered(sent: bytes, received: bytes) -> int:
    """Bytes of ``sent`` found in order in ``received`` (difflib alignment)."""
    matcher = difflib.SequenceMatcher(None, sent, received, autojunk=False)
    return sum(block.size for block in matcher.get_matching_blocks())


def bell202_table(size: int, minimodem: str | None, workdir: Path) -> list[str]:
    data = np.random.default_rng(202).integers(0, 256, size, dtype=np.uint8).tobytes()
    clean = FskModulator("bell202", RATE, amplitude=AMPLITUDE).modulate(data)
    rows = [
        f"Bell 202, {size} random bytes per SNR, {RATE} Hz 16-bit WAV, noise over 0-{RATE // 2} Hz",
        "",
        "| SNR (dB) | posbridge bytes | minimodem bytes | posbridge % | minimodem % |",
        "|---:|---:|---:|---:|---:|",
    ]
    for snr in SNRS_DB:
        wav = workdir / f"bell202_{snr}.wav"
        write_wav(wav, impair(clean, snr, rng=1000 + snr, pad=RATE // 10), RATE)
        samples, rate = read_wav(wav)
        demodulator = FskDemodulator("bell202", rate)
        ours = recovered(data, demodulator.process(samples) + demodulator.flush())
        theirs_text = "n/a"
        theirs_pct = "n/a"
        if minimodem:
            output = subprocess.run(
                [minimodem, "--rx", "1200", "-q", "-f", str(wav)], capture_output=True, timeout=120
            ).stdout
            theirs = recovered(data, output)
            theirs_text, theirs_pct = str(theirs), f"{100 * theirs / size:.1f}"
        rows.append(f"| {snr} | {ours} | {theirs_text} | {100 * ours / size:.1f} | {theirs_pct} |")
    return rows


def fast_table(frames: int, payload: int) -> list[str]:
    rows = [
        f"Fast profile: {frames} CHIP frames of {payload} payload bytes at 20 dB SNR, sender clock -2/0/+2 %",
        "",
        "| rate (Hz) | clock | line bit/s | payload bit/s | frames ok | frame error rate |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    rng = np.random.default_rng(96)
    for rate in (48000, 44100):
        sent = [
            Frame.of(ChipMessage(tlv=rng.integers(0, 256, payload, dtype=np.uint8).tobytes()), seq)
            for seq in range(1, frames + 1)
        ]
        audio = ChipReader("fast", rate).modulate_frames(sent).astype(np.float64)
        throughput = 8 * payload * frames / (audio.size / rate)
        for permille in (-20, 0, 20):
            noisy = impair(audio, 20.0, permille / 1000, rng=permille + rate)
            receiver = ModemFrameReceiver("fast", rate)
            received = []
            for start in range(0, noisy.size, rate):
                received += receiver.process(noisy[start : start + rate])
            received += receiver.flush()
            good = sum(1 for item in received if isinstance(item, Frame) and item in sent)
            fer = (frames - good) / frames
            rows.append(
                f"| {rate} | {permille / 10:+.0f} % | {PROFILES['fast'].raw_bit_rate(rate):.0f} "
                f"| {throughput:.0f} | {good}/{frames} | {fer:.1e} |"
            )
    return rows


def speed_table(seconds: float) -> list[str]:
    rows = [
        "Demodulation speed: CPU time of this process (time.process_time), 4096-sample blocks, 20 dB SNR",
        "",
        "| profile | audio (s) | demodulation CPU (s) | x real time |",
        "|---|---:|---:|---:|",
    ]
    for name in ("bell202", "fast"):
        rate = RATE
        bytes_per_second = PROFILES[name].payload_bit_rate(rate) / 8
        data = np.random.default_rng(5).integers(0, 256, int(seconds * bytes_per_second), dtype=np.uint8)
        audio = add_noise(FskModulator(name, rate).modulate(data.tobytes()), 20.0, rng=5)
        demodulator = FskDemodulator(name, rate)
        started = time.process_time()
        for start in range(0, audio.size, 4096):
            demodulator.process(audio[start : start + 4096])
        demodulator.flush()
        elapsed = time.process_time() - started
        duration = audio.size / rate
        rows.append(f"| {name} | {duration:.1f} | {elapsed:.2f} | {duration / elapsed:.0f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer bytes and frames")
    args = parser.parse_args()
    minimodem = shutil.which("minimodem")
    with tempfile.TemporaryDirectory() as folder:
        lines = bell202_table(512 if args.quick else 2048, minimodem, Path(folder))
    lines += ["", *fast_table(200 if args.quick else 1000, 512)]
    lines += ["", *speed_table(10.0 if args.quick else 30.0)]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
