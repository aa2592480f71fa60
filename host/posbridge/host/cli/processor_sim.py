"""``posbridge processor-sim``: run the payment processor stand-in on loopback (issue 7, §8).

``posbridge processor-sim [--port 8099] [--bdk-file PATH] [--json]`` prints ``{"url": ...}`` (or
the URL) once listening, then serves until interrupted. The DUKPT BDK (ANSI X9.24-3) comes from
``--bdk-file`` (hex text; a file, a pipe or ``<(...)``), else it is the published X9.24-3 test BDK.
``--bdk HEX`` also works, for tests, but a key on the command line shows in the process list.
The HTTP API is documented in :mod:`posbridge.host.processor_sim`.
"""

from __future__ import annotations

import argparse
import asyncio

from posbridge.host.cli._keys import BDK_LENGTHS, parse_hex_key, read_hex_key_file
from posbridge.host.cli._output import add_output_options, emit_json, emit_line
from posbridge.protocols.errors import UsageError

COMMAND = "processor-sim"
HELP = "run a simulated payment processor on loopback HTTP (DUKPT test BDK, decline rules, faults)"


def register(parser: argparse.ArgumentParser) -> None:
    """Add the simulator options."""
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8099, help="TCP port; 0 picks a free one (default 8099)")
    bdk = parser.add_mutually_exclusive_group()
    bdk.add_argument(
        "--bdk-file",
        default=None,
        metavar="PATH",
        help="file holding the DUKPT BDK in hex, 16, 24 or 32 bytes (default: the X9.24-3 test BDK)",
    )
    bdk.add_argument(
        "--bdk",
        default=None,
        metavar="HEX",
        help="the BDK in hex on the command line, for tests: it shows in the process list; use --bdk-file",
    )
    parser.add_argument(
        "--max-amount",
        type=int,
        default=1_000_000,
        metavar="MINOR",
        help="decline amounts above this (minor units)",
    )
    parser.add_argument(
        "--account",
        action="append",
        default=[],
        metavar="TOKEN=BALANCE",
        help="a customer account token and its balance in minor units (repeatable)",
    )
    parser.add_argument(
        "--decline-amount",
        type=int,
        action="append",
        default=[],
        metavar="MINOR",
        help="always decline this amount (repeatable)",
    )
    add_output_options(parser, reveal=False)
    parser.set_defaults(handler=run)


def _accounts(items: list[str]) -> dict[str, int]:
    accounts = {}
    for item in items:
        token, _, balance = item.partition("=")
        if not token or not balance.isdigit():
            raise UsageError(f"--account must be TOKEN=BALANCE, got {item!r}")
        accounts[token] = int(balance)
    return accounts


async def _serve(args: argparse.Namespace) -> int:
    from posbridge.host.processor_sim import TEST_BDK, ProcessorSim

    bdk = TEST_BDK
    if args.bdk_file is not None:
        bdk = read_hex_key_file(args.bdk_file, "--bdk-file", "the BDK", BDK_LENGTHS)
    elif args.bdk is not None:
        bdk = parse_hex_key(args.bdk, "--bdk", "the BDK", BDK_LENGTHS)
    sim = ProcessorSim(
        bdk, max_amount=args.max_amount, accounts=_accounts(args.account), decline_amounts=args.decline_amount
    )
    try:
        url = await sim.start(args.host, args.port)
    except OSError as error:
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {error.strerror}") from None
    emit_json({"url": url}) if args.json else emit_line(f"processor-sim listening on {url}")
    try:
        await asyncio.Event().wait()
    finally:
        await sim.stop()
    return 0


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted."""
    return asyncio.run(_serve(args))
