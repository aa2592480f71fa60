"""Output helpers shared by the subcommands: ``--json`` lines, ``--reveal``, terminal detection."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


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
