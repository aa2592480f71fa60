"""Fixtures for the audio CLI tests: the real ``posbridge`` console script and synthesized files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

POSBRIDGE = Path(sys.executable).with_name("posbridge")


@dataclass(frozen=True)
class Result:
    """A finished ``posbridge`` process."""

    code: int
    stdout: str
    stderr: str

    def json_lines(self) -> list[dict[str, Any]]:
        """Every stdout line parsed as JSON."""
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]


Runner = Callable[..., Result]


@pytest.fixture
def posbridge() -> Runner:
    """Run the installed ``posbridge`` script: ``posbridge("decode", path, input=b"...", env={...})``."""

    def run(
        *argv: str, input: bytes | None = None, env: dict[str, str] | None = None, timeout: float = 120
    ) -> Result:
        command = [str(POSBRIDGE)] if POSBRIDGE.exists() else [sys.executable, "-m", "posbridge.host"]
        completed = subprocess.run(
            [*command, *argv],
            input=input,
            capture_output=True,
            timeout=timeout,
            env={**os.environ, **(env or {})},
            check=False,
        )
        return Result(completed.returncode, completed.stdout.decode(), completed.stderr.decode())

    return run


@pytest.fixture
def synth_file(tmp_path: Path, posbridge: Runner) -> Callable[..., Path]:
    """Write a synthesized swipe with ``posbridge synth`` and return its path."""

    def make(name: str = "swipe.wav", *options: str) -> Path:
        path = tmp_path / name
        result = posbridge("synth", str(path), *options)
        assert result.code == 0, result.stderr
        return path

    return make
