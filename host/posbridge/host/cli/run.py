"""``posbridge run``: run one checkout lane until stopped (issue 8, DESIGN.md "Configuration").

Reads the configuration (keyword arguments > ``POSBRIDGE_*`` variables > ``posbridge.toml``),
opens the configured readers, dongles, chip readers, scanner, queue and forwarder, serves the
console with ``/healthz`` and ``/metrics``, and runs until SIGTERM or Ctrl-C, then shuts down
gracefully: every read already handed over is captured before the queue closes. Exit code 0
after SIGTERM, 130 after Ctrl-C (SIGINT).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from posbridge.host.cli import EXIT_INTERRUPTED
from posbridge.host.cli._output import add_output_options, emit_json, emit_line

if TYPE_CHECKING:
    from posbridge.host.config import Config

COMMAND = "run"
HELP = "run a checkout lane (readers, check-in, queue, forwarder, console) until stopped"


def register(parser: argparse.ArgumentParser) -> None:
    """Add ``--config`` and the output options."""
    parser.add_argument("--config", default=None, metavar="FILE",
                        help="TOML configuration (default: $POSBRIDGE_CONFIG, else ./posbridge.toml)")
    parser.add_argument("--check", action="store_true",
                        help="validate the configuration, print it and exit")
    add_output_options(parser, reveal=False)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the lane; returns the exit code (2 for a bad configuration)."""
    from posbridge.host.config import load_config
    from posbridge.protocols.logs import configure_logging

    config = load_config(args.config)
    if args.check:
        _print_config(config, args.json)
        return 0
    import logging

    # What happens goes to the log (stderr, the journal, [log_file]); with --json also to stdout.
    configure_logging(logging.WARNING if args.json else logging.INFO, config.log_path)

    def on_json_line(text: str) -> None:
        emit_json({"event": text})

    on_line = on_json_line if args.json else None
    stopped_by = asyncio.run(_serve(config, on_line))
    return EXIT_INTERRUPTED if stopped_by == signal.SIGINT else 0


async def _serve(config: Config, on_line: Callable[[str], None] | None) -> int | None:
    """Run the lane until SIGTERM or SIGINT; the signal that stopped it (after a clean shutdown)."""
    from posbridge.host.lane import run_lane

    stop = asyncio.Event()
    stopped_by: list[int] = []
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        stopped_by.append(signum)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        await run_lane(config, stop, on_line=on_line)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    return stopped_by[0] if stopped_by else None


def _print_config(config: Config, as_json: bool) -> None:
    from posbridge.host.config import KEYS

    values: dict[str, Any] = {}
    for key in KEYS:
        value = getattr(getattr(config, key.section) if key.section else config, key.name)
        if key.name == "token" and value:
            value = "(set)"
        values[key.flat] = list(value) if isinstance(value, tuple) else str(value) if not isinstance(
            value, int | float | bool) else value
    if as_json:
        emit_json(values)
        return
    for key in KEYS:
        emit_line(f"{key.label} = {values[key.flat]!r}  ({key.env})")
