"""Live listening benchmark (issue 3 targets): report latency, idle CPU, idle memory, streaming accuracy.

1. **Latency** — a paced ``virtual://`` source at 48 kHz in 10 ms blocks through
   :class:`~posbridge.dsp.detector.SwipeDetector`, as ``posbridge listen`` runs it. For each swipe:
   wall time when the swipe is reported minus wall time when the block holding its last flux
   transition was delivered, plus how far into that block the transition lies (so the figure is
   measured from the transition itself). Target: <= 100 ms.
2. **Idle CPU** — the same paced source with no swipes: CPU seconds spent in the detector per wall
   second, and the whole process (including the virtual source's hiss generation, which a real
   sound card does not cost). Target: <= 2 % of one core.
3. **Idle memory** — a 1-hour idle stream (hiss, with a slow 20 dB AGC swing) fed as fast as
   possible in 10 ms blocks; resident set size sampled every 10 simulated minutes. Target: flat.
4. **Streaming vs batch accuracy** — the corpus of ``benchmarks/decode.py`` (everyday and hard
   swipes), each decoded by :func:`~posbridge.dsp.detector.decode_recording` and by the detector
   fed random blocks of 1-8192 samples. Target: equal.

Run: ``.venv/bin/python benchmarks/listen.py [--quick]`` (about 1-2 minutes; ``--quick`` ~40 s).
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time
from pathlib import Path

import numpy as np
from posbridge.dsp.detector import SwipeDetector, decode_recording
from posbridge.dsp.synth import synthesize_swipe
from posbridge.hardware.audio.virtual import VirtualAudioSource

RATE = 48_000
BLOCK = RATE // 100


def latency(swipes: int, seed: int) -> list[float]:
    """Report latency (s) of each swipe of a paced virtual session."""
    source = VirtualAudioSource(
        swipes=swipes, seed=seed, rate=RATE, gap_s=0.8, block_frames=BLOCK, realtime=True
    )
    transitions = [swipe.last_transition_s for swipe in source.expected]
    detector = SwipeDetector(RATE, 1)
    delays: list[float] = []
    delivered: list[tuple[float, float]] = []  # (stream time at block end, wall time delivered)
    for block in source:
        end_t = block.t + block.frames / RATE
        delivered.append((end_t, block.captured_at))
        for swipe in detector.process(block.samples):
            now = time.monotonic()
            index = len(delays)
            transition = transitions[index]
            block_end, wall = next((t, w) for t, w in delivered if t >= transition)
            delays.append(now - (wall - (block_end - transition)))
            if not swipe.tracks:
                print("  a swipe came back without tracks", file=sys.stderr)
    return delays


def idle_cpu(seconds: float) -> tuple[float, float, float]:
    """CPU fractions of one core over an idle stream: (detector, paced like a device; whole process,
    paced, including the virtual source; detector fed the same blocks back to back, warm caches)."""
    source = VirtualAudioSource(swipes=0, duration_s=seconds, rate=RATE, block_frames=BLOCK, realtime=True)
    detector = SwipeDetector(RATE, 1)
    spent = 0.0
    blocks = []
    wall_start, cpu_start = time.monotonic(), time.process_time()
    for block in source:
        started = time.process_time()
        detector.process(block.samples)
        spent += time.process_time() - started
        blocks.append(block.samples)
    wall = time.monotonic() - wall_start
    process = (time.process_time() - cpu_start) / wall
    warm = SwipeDetector(RATE, 1)
    started = time.process_time()
    for samples in blocks:
        warm.process(samples)
    return spent / wall, process, (time.process_time() - started) / seconds


def _rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def idle_memory(hours: float) -> list[tuple[float, float]]:
    """(simulated minutes, RSS MiB) every 10 minutes of an idle stream fed faster than real time."""
    total_blocks = int(hours * 3600 * 100)
    per_sample = 10 * 60 * 100
    hiss = np.random.default_rng(3).normal(0, 0.001, (BLOCK * 1000, 1)).astype(np.float32)
    detector = SwipeDetector(RATE, 1)
    samples: list[tuple[float, float]] = [(0.0, _rss_mib())]
    for index in range(total_blocks):
        offset = (index % 1000) * BLOCK
        gain = np.float32(10 ** (np.sin(2 * np.pi * index / 90_000)))  # +-20 dB over 15 minutes
        detector.process(hiss[offset : offset + BLOCK] * gain)
        if (index + 1) % per_sample == 0:
            samples.append(((index + 1) / 6000, _rss_mib()))
    return samples


def accuracy(count: int, seed: int) -> tuple[int, int, int, int]:
    """(cases, batch decoded, streaming decoded, cases where the two differ) over decode.py's corpus."""
    sys.path.insert(0, str(Path(__file__).parent))
    from decode import corpus

    rng = np.random.default_rng(seed)
    chooser = random.Random(seed)
    cases = batch_ok = stream_ok = differ = 0
    for case in corpus(rng, count):
        samples = synthesize_swipe([(case.text, case.fmt)], case.params, rng)
        batch = [
            track.text for swipe in decode_recording(samples, case.params.rate) for track in swipe.tracks
        ]
        detector = SwipeDetector(case.params.rate, 1)
        found = []
        position = 0
        while position < samples.shape[0]:
            size = chooser.randint(1, 8192)
            found += detector.process(samples[position : position + size])
            position += size
        found += detector.flush()
        streamed = [track.text for swipe in found for track in swipe.tracks]
        cases += 1
        batch_ok += case.text in batch
        stream_ok += case.text in streamed
        differ += batch != streamed
    return cases, batch_ok, stream_ok, differ


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer swipes, shorter idle runs")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)

    delays = latency(5 if args.quick else 12, args.seed)
    ms = np.array(delays) * 1000
    print(
        f"report latency after the last flux transition (48 kHz, 10 ms blocks, paced, {len(ms)} swipes): "
        f"median {np.median(ms):.0f} ms, max {np.max(ms):.0f} ms (target <= 100 ms)"
    )

    detector_share, process_share, warm_share = idle_cpu(5.0 if args.quick else 15.0)
    print(
        f"idle CPU (10 ms blocks): detector paced like a device {100 * detector_share:.2f} % of one core, "
        f"whole process with the virtual source {100 * process_share:.2f} %, detector back to back "
        f"{100 * warm_share:.2f} % (target <= 2 %)"
    )

    memory = idle_memory(0.25 if args.quick else 1.0)
    table = ", ".join(f"{minutes:.0f} min {rss:.1f}" for minutes, rss in memory)
    growth = memory[-1][1] - memory[1][1] if len(memory) > 2 else 0.0
    print(f"idle memory, RSS MiB by simulated time: {table}; growth after the first 10 min {growth:+.1f} MiB")

    cases, batch_ok, stream_ok, differ = accuracy(25 if args.quick else 100, args.seed)
    print(
        f"streaming vs batch on decode.py's corpus ({cases} recordings, random blocks 1-8192): "
        f"batch {batch_ok}/{cases} = {100 * batch_ok / cases:.2f} %, streaming {stream_ok}/{cases} = "
        f"{100 * stream_ok / cases:.2f} %, recordings where the outputs differ: {differ}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
