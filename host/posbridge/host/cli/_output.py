"""Output helpers shared by the subcommands: ``--json`` lines, ``--reveal``, terminal detection."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from posbridge.protocols.errors import UsageError


def add_output_options(parser: argparse.ArgumentParser, reveal: bool = True) -> None:
    """Add ``--json`` (one JSON object per line) and, if ``reveal``, ``--reveal`` (clear card data)."""
    parser.add_argument("--json", action="store_true", help="print one JSON object per line")
    if reveal:
        parser.add_argument(
            "--reveal",
            action="store_true",
            help="show clear card data (PAN, name, tracks); for debugging on a test bench only",
        )


def emit_json(record: dict[str, Any]) -> None:
    """Write one compact JSON object and a newline to stdout, flushed (for pipes)."""
    sys.stdout.write(json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n")
    sys.stdout.flush()


def emit_line(text: str) -> None:
    """Write one human-readable line to stdout, flushed."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def is_terminal() -> bool:
    """True when stdout is attached to a terminal (show progress and meters only then)."""
    return sys.stdout.isatty()


def positive_seconds(text: str) -> float:
    """An argparse ``type`` for a duration in seconds: a finite number above 0 (else exit 2)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def seed_number(text: str) -> int:
    """An argparse ``type`` for a random seed: a whole number >= 0 (NumPy refuses negative seeds)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"a seed must not be negative, got {value}")
    return value


def ensure_directory(path: str | Path, option: str) -> Path:
    """Create directory ``path`` (and its parents) if missing; :class:`UsageError` if it cannot be one."""
    directory = Path(path)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UsageError(f"{option} {directory}: a file is in the way, not a directory") from None
    except OSError as error:
        raise UsageError(f"{option} {directory}: cannot create it: {error.strerror}") from None
    return directory
