"""``posbridge decode`` over a directory of recordings: speed of the whole process as × real time.

Writes a directory of 16-bit WAV sessions (``virtual://`` swipes of test cards in steady hiss,
like a reader left in the mic jack), then runs ``posbridge decode --json DIR`` as a separate
process pinned to one core (``taskset -c 0`` where available) and reports audio seconds per wall
second and per CPU second of that process, start-up and imports included. It also checks that
every swipe came back. Target (issue 2): >= 300× real time on one core.

Run: ``.venv/bin/python benchmarks/decode_cli.py [--files 20] [--seconds 30] [--swipes 3]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from posbridge.hardware.audio import write_wav
from posbridge.hardware.audio.virtual import VirtualAudioSource


def make_corpus(folder: Path, files: int, seconds: float, swipes: int) -> tuple[float, dict[str, list[str]]]:
    """Write the sessions; return (audio seconds, expected track texts per file)."""
    total = 0.0
    expected: dict[str, list[str]] = {}
    for index in range(files):
        source = VirtualAudioSource(
            swipes=swipes, seed=index, duration_s=seconds, rate=48_000 if index % 2 else 44_100
        )
        samples = np.concatenate([block.samples for block in source])
        path = folder / f"session-{index:03d}.wav"
        write_wav(path, samples, source.rate)
        total += samples.shape[0] / source.rate
        expected[str(path)] = [swipe.tracks[0].text for swipe in source.expected]
    return total, expected


def run_decode_process(folder: Path, *options: str, pin: bool = True) -> tuple[float, float, str, int]:
    """Run one ``posbridge decode --json [options] FOLDER`` process (pinned to core 0 where
    ``taskset`` exists); return (wall seconds, CPU seconds of the process, stdout, exit code)."""
    posbridge = Path(sys.executable).with_name("posbridge")
    pinned = ["taskset", "-c", "0"] if pin and shutil.which("taskset") else []
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(
        [*pinned, str(posbridge), "decode", "--json", *options, str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, result.stdout, result.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--swipes", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3, help="best of N runs")
    args = parser.parse_args(argv)
    pin = shutil.which("taskset") is not None
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        audio_s, expected = make_corpus(folder, args.files, args.seconds, args.swipes)
        best_wall = best_cpu = float("inf")
        output = ""
        for _ in range(args.runs):
            wall, cpu, output, code = run_decode_process(folder, "--reveal")
            if code != 0:
                raise SystemExit(f"posbridge decode exited {code}")
            best_wall, best_cpu = min(best_wall, wall), min(best_cpu, cpu)
        short = folder / "short"
        short.mkdir()
        write_wav(short / "blip.wav", np.zeros(4800, dtype=np.float32), 48_000)
        startup = min(run_decode_process(short)[0] for _ in range(args.runs))
        found = {
            record["file"]: [swipe["tracks"][0]["text"] for swipe in record["swipes"] if swipe["tracks"]]
            for record in map(json.loads, output.splitlines())
        }
        correct = sum(text in found.get(path, []) for path, texts in expected.items() for text in texts)
        wanted = sum(len(texts) for texts in expected.values())
    print(
        f"posbridge decode over {args.files} files, {audio_s:.0f} s of audio ({args.swipes} swipes each), "
        f"{'pinned to one core' if pin else 'not pinned'}, best of {args.runs}:"
    )
    print(
        f"  wall {best_wall:.2f} s -> {audio_s / best_wall:.0f}x real time; "
        f"CPU {best_cpu:.2f} s -> {audio_s / best_cpu:.0f}x real time (target >= 300x)"
    )
    print(
        f"  process start-up (imports, one 0.1 s file): {startup:.2f} s; without it "
        f"{audio_s / max(best_wall - startup, 1e-9):.0f}x real time"
    )
    print(f"  swipes decoded: {correct}/{wanted}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
