"""The ``posbridge`` command (DESIGN.md, "The command line").

Each subcommand is a module of this package that defines ``COMMAND`` (its name), ``HELP`` (one
line), ``register(parser)`` (adds its arguments and ``set_defaults(handler=run)``) and
``run(args) -> int``. Modules are discovered, so adding a command touches no shared file. Command
modules import heavy libraries inside ``run`` so that ``posbridge --help`` and short commands
start fast.

Exit codes: 0 success, 2 bad input or usage (one line on stderr, no traceback; a file, device or
transaction key the user named that does not exist counts as bad input), 1 a failure inside
posbridge, 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
import traceback
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import NoReturn

from posbridge.protocols.cards import redact_pans
from posbridge.protocols.errors import (
    ConfigError,
    DeviceNotFound,
    KeyMaterialError,
    ParseError,
    PosBridgeError,
    UnknownTransaction,
    UsageError,
)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

#: Errors that mean the user's input was bad (exit 2): a named file, device or key that is not there counts.
_BAD_INPUT = (ParseError, UsageError, ConfigError, KeyMaterialError, DeviceNotFound, UnknownTransaction)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr and exit code 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(EXIT_USAGE)


def _package_version() -> str:
    try:
        return version("posbridge")
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every discovered subcommand."""
    parser = _Parser(
        prog="posbridge", description="Open bridge between cheap payment hardware and a checkout."
    )
    parser.add_argument("--version", action="version", version=f"posbridge {_package_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda module: module.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        command = getattr(module, "COMMAND", None)
        if command is None:
            continue
        help_text = getattr(module, "HELP", "")
        sub = subparsers.add_parser(command, help=help_text, description=help_text)
        module.register(sub)
    return parser


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"posbridge: {redact_pans(message)}\n")
    return code


def _redact_unconfigured_logging() -> None:
    """Put the redacting filter on the handler Python uses while no logging is configured.

    Commands that do not call :func:`~posbridge.protocols.logs.configure_logging` still print
    warnings through :data:`logging.lastResort`; a PAN in one is masked there too.
    """
    import logging

    from posbridge.protocols.logs import RedactingFilter

    last_resort = logging.lastResort
    if last_resort is not None and not any(isinstance(item, RedactingFilter) for item in last_resort.filters):
        last_resort.addFilter(RedactingFilter())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``posbridge`` console script; returns the exit code."""
    _redact_unconfigured_logging()
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(handler(args))
    except _BAD_INPUT as error:
        return _fail(f"error: {error}", EXIT_USAGE)
    except PosBridgeError as error:
        return _fail(f"failed: {error}", EXIT_FAILURE)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except Exception as error:
        if os.environ.get("POSBRIDGE_DEBUG"):
            sys.stderr.write(redact_pans(traceback.format_exc()))
        detail = f"{type(error).__name__}: {error}"
        return _fail(f"internal error: {detail} (set POSBRIDGE_DEBUG=1 for details)", EXIT_FAILURE)
