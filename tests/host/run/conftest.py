"""Fixtures for the lane, ``posbridge run`` and ``posbridge demo`` tests."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from posbridge.protocols.cards import TEST_BIN_PREFIXES, luhn_valid

_DIGIT_RUN = re.compile(rb"(?<!\d)\d{13,19}(?!\d)")


def clear_pans(data: bytes) -> list[str]:
    """Luhn-valid 13-19 digit runs under a test BIN prefix (what the demo and tests put on cards)."""
    found = []
    for match in _DIGIT_RUN.finditer(data):
        digits = match.group(0).decode()
        if digits.startswith(TEST_BIN_PREFIXES) and luhn_valid(digits):
            found.append(digits)
    return found


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def posbridge(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
              timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Run ``python -m posbridge.host ARGS`` and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "posbridge.host", *args], capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **(env or {})}, cwd=cwd, check=False,
    )


@pytest.fixture
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No POSBRIDGE_* variables from the caller's environment; cwd without a posbridge.toml."""
    for name in list(os.environ):
        if name.startswith("POSBRIDGE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path
