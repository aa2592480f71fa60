"""Fixtures for the DUKPT tests: the published vectors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

VECTORS = Path(__file__).parent / "vectors" / "dukpt.json"


@pytest.fixture(scope="session")
def vectors() -> dict[str, Any]:
    """The X9.24-1 / X9.24-3 vectors (see vectors/SOURCES.md)."""
    loaded: dict[str, Any] = json.loads(VECTORS.read_text())
    return loaded
