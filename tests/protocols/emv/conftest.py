"""Fixtures for the EMV tests: the shared vectors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

VECTORS = Path(__file__).parent / "vectors" / "emv.json"


@pytest.fixture(scope="session")
def emv_vectors() -> dict[str, Any]:
    """The EMV vector file (see vectors/README.md for its sources)."""
    loaded: dict[str, Any] = json.loads(VECTORS.read_text())
    return loaded
