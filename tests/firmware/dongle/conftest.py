"""Fixtures for the dongle firmware tests: a provisioned key and stand-in decoded swipes."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from posbridge.firmware.keystore import DongleKey, provision
from posbridge.protocols.cards import generate_test_pan
from posbridge.protocols.types import Swipe, Track, TrackFormat

TEST_BDK = bytes.fromhex("FEDCBA9876543210F1F1F1F1F1F1F1F1")
TEST_KEY_ID = bytes.fromhex("1234567890123456")


def make_swipes(count: int, rng: random.Random) -> list[Swipe]:
    """Decoded swipes of generated test cards, one per second of stream time (Track 1 only)."""
    swipes = []
    for index in range(count):
        pan = generate_test_pan(rng)
        track = Track(1, TrackFormat.ALPHA, f"B{pan}^TEST/CARD {index}^2912101000000000000")
        swipes.append(Swipe((track,), started_at=index + 0.5, ended_at=index + 0.8, quality=0.95))
    return swipes


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    """A key file provisioned from the test BDK (mode 0600)."""
    path = tmp_path / "dongle.key"
    provision(TEST_BDK, TEST_KEY_ID, path, serial_number="PB-TEST-1")
    return path


@pytest.fixture
def dongle_key(key_file: Path) -> DongleKey:
    """The key in ``key_file``."""
    from posbridge.firmware.keystore import load_key

    return load_key(key_file)
