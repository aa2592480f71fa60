"""Shared test fixtures. Topic fixtures live in the conftest.py of each topic's folder."""

from __future__ import annotations

import random

import pytest
from posbridge.protocols.cards import generate_test_pan


@pytest.fixture
def rng() -> random.Random:
    """A seeded random source, so a failure can be replayed."""
    return random.Random(20261126)


@pytest.fixture
def test_pan(rng: random.Random) -> str:
    """A Luhn-valid PAN under a test prefix."""
    return generate_test_pan(rng)
