"""Dongle link benchmarks (issue 4 targets): frames parsed per second, and swipe latency from
decoded on the dongle to delivered on the host over a 115200-baud line.

Run: ``.venv/bin/python benchmarks/link.py`` (about 30 s). Prints figures; asserts nothing.
The line is a :class:`~posbridge.hardware.link.NullModem` pty pair paced at 115200 baud (10 bits
per byte), pyserial on both ends; the dongle firmware and the host driver run as in production,
with the dongle's outbox and KSN counter on disk (fsync included in the latency).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from _figures import percentile
from posbridge.firmware.dongle import Dongle, DongleSettings
from posbridge.firmware.keystore import KsnCounter, provision
from posbridge.firmware.outbox import Outbox
from posbridge.hardware.link import NullModem
from posbridge.host.dongle import DongleSwipe, SerialDongle
from posbridge.protocols import dukpt, link
from posbridge.protocols.cards import generate_test_pan
from posbridge.protocols.types import MaskedCard, Swipe, Track, TrackFormat

BDK = bytes.fromhex("FEDCBA9876543210F1F1F1F1F1F1F1F1")
KEY_ID = bytes.fromhex("1234567890123456")


def _track(rng: random.Random) -> Track:
    pan = generate_test_pan(rng)
    return Track(1, TrackFormat.ALPHA, f"B{pan}^CARDHOLDER/TEST MR^2912101000000000000000000000000")


def _swipe_frame(rng: random.Random, seq: int) -> link.Frame:
    track = _track(rng)
    pan = track.text[1:17]
    ksn = KEY_ID + seq.to_bytes(4, "big")
    data = dukpt.encrypt_tracks(
        dukpt.derive_aes_initial_key(BDK, KEY_ID), ksn, (track,), MaskedCard.from_pan(pan)
    )
    return link.Frame.of(link.SwipeMessage(data, 0.97, time.time()), seq)


def _rate(label: str, seconds: float, batch: int, work: Callable[[], object]) -> None:
    """Print ``label`` with items per wall second and per CPU second of this process."""
    count, wall, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - wall < seconds:
        work()
        count += batch
    wall_s, cpu_s = time.perf_counter() - wall, time.process_time() - cpu
    print(f"{label}: {count / cpu_s:,.0f} frames per CPU second ({count / wall_s:,.0f} per wall second)")


def frames_per_second(seconds: float) -> None:
    """Frames parsed per second: whole SWIPE frames, and a stream of fragments through FrameDecoder."""
    rng = random.Random(1)
    frames = [_swipe_frame(rng, seq) for seq in range(1, 65)]
    encoded = [link.encode_frame(frame)[:-1] for frame in frames]
    size = sum(map(len, encoded)) / len(encoded)
    _rate(
        f"decode_frame, SWIPE frames of {size:.0f} bytes",
        seconds,
        len(encoded),
        lambda: [link.decode_frame(item) for item in encoded],
    )
    _rate(
        "decode_frame + typed SwipeMessage",
        seconds,
        len(encoded),
        lambda: [link.decode_frame(item).message() for item in encoded],
    )
    stream = b"".join(link.encode_frame(piece) for frame in frames for piece in link.fragment_frame(frame))
    decoder = link.FrameDecoder()
    _rate(
        "FrameDecoder.feed, 24-byte fragments in 512-byte reads",
        seconds,
        stream.count(0),
        lambda: [decoder.feed(stream[offset : offset + 512]) for offset in range(0, len(stream), 512)],
    )


async def _host(url: str, count: int) -> list[DongleSwipe]:
    got: list[DongleSwipe] = []
    async with SerialDongle(url) as host:
        async for event in host:
            assert isinstance(event, DongleSwipe)
            got.append(event)
            if len(got) == count:
                break
    return got


def latency(baud: int, swipes: int, chunk_bytes: int, interval_s: float) -> None:
    """Median / p95 / max of received_at - decoded_at for ``swipes`` swipes, one every ``interval_s``."""
    rng = random.Random(2)
    with tempfile.TemporaryDirectory() as folder, NullModem(baud=baud) as cable:
        key = provision(BDK, KEY_ID, Path(folder) / "key")
        dongle = Dongle(
            key,
            KsnCounter(key, Path(folder) / "state.json"),
            Outbox(Path(folder) / "outbox"),
            cable.paths[0],
            DongleSettings(chunk_bytes=chunk_bytes, heartbeat_s=5.0),
        )
        stop = threading.Event()
        server = threading.Thread(target=dongle.serve, args=(stop,), daemon=True)
        server.start()

        def feed() -> None:
            time.sleep(1.0)
            for index in range(swipes):
                dongle.accept(Swipe((_track(rng),), index, index + 0.3))
                time.sleep(interval_s)

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        got = asyncio.run(_host(cable.paths[1], swipes))
        stop.set()
        server.join()
    delays = sorted((event.received_at - event.decoded_at) * 1000 for event in got)
    mode = f"fragments of {chunk_bytes} bytes" if chunk_bytes else "whole frames"
    print(
        f"swipe latency decoded->host at {baud} baud, {mode}: median {statistics.median(delays):.1f} ms, "
        f"p95 {percentile(delays, 0.95):.1f} ms, max {delays[-1]:.1f} ms ({len(delays)} swipes)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0, help="time per parse measurement")
    parser.add_argument("--swipes", type=int, default=30, help="swipes per latency measurement")
    args = parser.parse_args()
    frames_per_second(args.seconds)
    for chunk_bytes in (24, 0):
        latency(115_200, args.swipes, chunk_bytes, interval_s=0.25)


if __name__ == "__main__":
    main()
