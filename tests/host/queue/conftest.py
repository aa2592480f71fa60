"""Fixtures for the transaction queue tests: a manual clock, a device key, queue factories."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from posbridge.host.queue import DeviceKey, OfflineLimits, RiskRules, TransactionQueue
from posbridge.protocols.cards import generate_test_pan

NOW = 1_795_000_000.0  # 2026-11-18, a fixed wall-clock time


class ManualClock:
    """A clock the test moves by hand (seconds since the epoch)."""

    def __init__(self, start: float = NOW) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def device_key() -> DeviceKey:
    return DeviceKey(bytes(range(32)))


@pytest.fixture
def pans() -> Iterator[str]:
    """An endless supply of distinct Luhn-valid test PANs."""
    rng = random.Random(7)
    seen: set[str] = set()

    def generate() -> Iterator[str]:
        while True:
            pan = generate_test_pan(rng, prefix="400000")
            if pan not in seen:
                seen.add(pan)
                yield pan

    return generate()


@pytest.fixture
def make_queue(
    tmp_path: Path, clock: ManualClock, device_key: DeviceKey
) -> Iterator[Callable[..., TransactionQueue]]:
    opened: list[TransactionQueue] = []

    def make(**options: object) -> TransactionQueue:
        settings: dict[str, object] = {"device_key": device_key, "clock": clock, "lane": "lane-1"}
        settings.update(options)
        queue = TransactionQueue(tmp_path / f"queue{len(opened)}.db", **settings)  # type: ignore[arg-type]
        opened.append(queue)
        return queue

    yield make
    for queue in opened:
        with contextlib.suppress(Exception):
            queue.close()


@pytest.fixture
def queue(make_queue: Callable[..., TransactionQueue]) -> TransactionQueue:
    return make_queue(
        limits=OfflineLimits(50_000, 200_000, 50), rules=RiskRules(blocked_bins=frozenset({"510510"}))
    )
