"""``posbridge queue``: capture into, inspect and forward the transaction queue (issue 7, §9).

``capture`` reads JSON lines from stdin (see :meth:`CaptureRequest.from_json`) and prints
``{"key", "state"}`` for each once it is durable (``"reason"`` and ``"alert"`` when refused or
waiting for the cashier); a repeated key gives the first transaction again. ``list``, ``status``,
``show KEY``, ``retry``, ``settle`` and ``export`` (CSV, masked) read the outbox; ``forward``
runs the forwarder against a processor; ``publish`` and ``store-forward`` run the fleet's
JetStream publisher (on a lane) and consumer (at the store or HQ). Card data is always masked.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sys
from typing import TYPE_CHECKING, Any, TextIO

from posbridge.host.cli._output import add_output_options, emit_json, emit_line
from posbridge.protocols.errors import ParseError, UsageError

if TYPE_CHECKING:
    from posbridge.host.config import Config
    from posbridge.host.queue import TransactionQueue
    from posbridge.protocols.types import Transaction

COMMAND = "queue"
HELP = "capture into, inspect and forward the durable transaction queue"

EXPORT_FIELDS = (
    "key",
    "state",
    "amount",
    "currency",
    "card",
    "brand",
    "source",
    "customer",
    "lane",
    "reason",
    "processor_ref",
    "created_at",
    "updated_at",
)


def register(parser: argparse.ArgumentParser) -> None:
    """Add the queue actions."""
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = actions.add_parser(name, help=help_text, description=help_text)
        sub.add_argument(
            "--queue",
            metavar="URL",
            default=None,
            help="sqlite:///PATH or nats://HOST:PORT?outbox=PATH (default: from the configuration)",
        )
        sub.add_argument("--lane", default=None, help="lane id (default: from the configuration)")
        add_output_options(sub, reveal=False)
        return sub

    action("capture", "read JSON-lines captures from stdin; print {key, state} once each is durable")
    listing = action("list", "list transactions")
    listing.add_argument("--state", action="append", default=None, help="only this state (repeatable)")
    listing.add_argument("--limit", type=int, default=None)
    action("status", "counts by state and the offline position against the limits")
    show = action("show", "one transaction with its audit trail")
    show.add_argument("key")
    retry = action("retry", "re-queue failed transactions that still hold card data (same keys)")
    retry.add_argument("keys", nargs="*", metavar="KEY")
    settle = action("settle", "mark answered transactions settled")
    settle.add_argument("keys", nargs="*", metavar="KEY")
    export = action("export", "write every transaction as CSV (masked) to stdout or --output")
    export.add_argument("--output", default=None, metavar="FILE")
    forward = action("forward", "forward queued payments to the processor")
    forward.add_argument("--processor", default=None, metavar="URL", help="processor base URL")
    forward.add_argument("--once", action="store_true", help="forward what is due now, then exit")
    forward.add_argument("--concurrency", type=int, default=32)
    publish = action("publish", "fleet lane: publish the outbox to JetStream and apply answers")
    publish.add_argument("--once", action="store_true", help="publish what is pending, then exit")
    store = action(
        "store-forward", "fleet store/HQ: consume lanes' transactions from JetStream, forward them"
    )
    store.add_argument("--nats", required=True, metavar="URL", help="nats://HOST:PORT")
    store.add_argument("--processor", default=None, metavar="URL")
    store.add_argument("--once", action="store_true", help="forward what is in the stream, then exit")
    for sub in actions.choices.values():
        sub.set_defaults(handler=run)
    parser.set_defaults(handler=run)


def _open(args: argparse.Namespace, config: Config) -> TransactionQueue:
    from posbridge.host.app import offline_limits
    from posbridge.host.queue import open_queue

    url = args.queue or config.queue_url
    options: dict[str, Any] = {"lane": args.lane or config.lane.id}
    if "limits" not in url and "max_" not in url:
        options["limits"] = offline_limits(config)
    if "key_file" not in url and config.key_file:
        options["key_path"] = config.key_path
    return open_queue(url, **options)


def _record(transaction: Transaction) -> dict[str, Any]:
    return {
        "key": transaction.key,
        "state": transaction.state.value,
        "amount": transaction.amount,
        "currency": transaction.currency,
        "card": transaction.card.to_json() if transaction.card else None,
        "source": transaction.source,
        "customer": transaction.customer,
        "lane": transaction.lane,
        "reason": transaction.reason,
        "processor_ref": transaction.processor_ref,
        "created_at": transaction.created_at,
        "updated_at": transaction.updated_at,
    }


def _line(transaction: Transaction) -> str:
    card = str(transaction.card) if transaction.card else f"customer {transaction.customer}"
    reason = f"  ({transaction.reason})" if transaction.reason else ""
    return (
        f"{transaction.key}  {transaction.state.value:<10} {transaction.amount / 100:>10.2f} "
        f"{transaction.currency}  {card}{reason}"
    )


def _capture(queue: TransactionQueue) -> int:
    from posbridge.host.queue import CaptureRequest, ConfirmationRequired
    from posbridge.protocols.beacons.ids import canonical_beacon_id
    from posbridge.protocols.errors import CaptureRefused
    from posbridge.protocols.types import CheckIn, CheckOut, Zone

    invalid = 0
    for number, text in enumerate(sys.stdin, start=1):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError:
            invalid += 1
            emit_json({"key": None, "state": "invalid", "reason": f"line {number}: not JSON"})
            continue
        if isinstance(record, dict) and record.get("event") in ("check_in", "check_out"):
            kind = CheckIn if record["event"] == "check_in" else CheckOut
            try:
                beacon = canonical_beacon_id(str(record.get("beacon", "")))
            except ParseError as error:
                invalid += 1
                emit_json({"key": None, "state": "invalid", "reason": f"line {number}: {error}"})
                continue
            event = kind(
                t=0.0,
                beacon=beacon,
                customer=record.get("customer"),
                zone=Zone.COUNTER if kind is CheckIn else Zone.GONE,
                distance_m=None,
            )
            queue.record_presence(event)
            emit_json({"event": record["event"], "customer": record.get("customer")})
            continue
        key = record.get("key") if isinstance(record, dict) else None
        try:
            transaction = queue.capture_request(CaptureRequest.from_json(record))
        except CaptureRefused as error:
            emit_json(
                {
                    "key": error.context.get("key", key),
                    "state": "needs_confirmation" if isinstance(error, ConfirmationRequired) else "refused",
                    "reason": error.context.get("reason", str(error)),
                    "alert": error.context.get("kind"),
                }
            )
        except ParseError as error:
            invalid += 1
            emit_json({"key": key, "state": "invalid", "reason": f"line {number}: {error}"})
        else:
            emit_json({"key": transaction.key, "state": transaction.state.value})
    if invalid:
        raise ParseError(f'{invalid} input line(s) were not valid captures (see their "invalid" records)')
    return 0


async def _forward(queue: TransactionQueue, url: str, once: bool, concurrency: int, as_json: bool) -> int:
    from posbridge.host.forwarder import Forwarder, ForwardReport

    def show(report: ForwardReport) -> None:
        if as_json:
            emit_json(report.to_json())
        else:
            emit_line(
                f"approved {len(report.approved)}, declined {len(report.declined)}, failed "
                f"{len(report.failed)}, deferred {len(report.deferred)}, expired {len(report.expired)}"
            )

    async with Forwarder(queue, url, concurrency=concurrency, stagger_s=0.0 if once else 1.0) as forwarder:
        if once:
            show(await forwarder.drain())
            return 0
        await forwarder.run(on_report=show)
    return 0


async def _publish(queue: TransactionQueue, once: bool, as_json: bool) -> int:
    from posbridge.host.queue.jetstream import JetStreamQueue

    if not isinstance(queue, JetStreamQueue):
        raise UsageError("publish needs a fleet queue URL: nats://HOST:PORT?outbox=PATH")
    async with queue:
        if once:
            total = 0
            while published := await queue.publish_pending():
                total += published
            applied = await queue.apply_answers()
            (
                emit_json
                if as_json
                else lambda r: emit_line(f"published {r['published']}, answers {r['answers']}")
            )({"published": total, "answers": applied})
            return 0
        await queue.run(asyncio.Event())
    return 0


async def _store_forward(args: argparse.Namespace, config: Config) -> int:
    from posbridge.host.queue import DeviceKey
    from posbridge.host.queue.jetstream import JetStreamForwarder

    processor = args.processor or config.processor.url
    forwarder = JetStreamForwarder(args.nats, processor, DeviceKey.load_or_create(config.key_path))
    try:
        if args.once:
            total = 0
            while answers := await forwarder.forward_batch():
                total += len(answers)
            (emit_json if args.json else lambda r: emit_line(f"forwarded {r['forwarded']}"))(
                {"forwarded": total}
            )
            return 0
        await forwarder.run(asyncio.Event())
    finally:
        await forwarder.close()
    return 0


def _export(queue: TransactionQueue, handle: TextIO) -> None:
    writer = csv.DictWriter(handle, fieldnames=EXPORT_FIELDS)
    writer.writeheader()
    for transaction in queue.list():
        row = _record(transaction)
        card = row.pop("card")
        row["card"], row["brand"] = (card["pan"], card["brand"]) if card else ("", "")
        writer.writerow({name: row.get(name) for name in EXPORT_FIELDS})


def run(args: argparse.Namespace) -> int:
    """Run one queue action."""
    from posbridge.host.config import load_config

    config = load_config()
    if args.action == "store-forward":
        return asyncio.run(_store_forward(args, config))
    queue = _open(args, config)
    try:
        if args.action == "capture":
            return _capture(queue)
        if args.action == "list":
            for transaction in queue.list(states=args.state, limit=args.limit):
                emit_json(_record(transaction)) if args.json else emit_line(_line(transaction))
            return 0
        if args.action == "status":
            status = queue.status().to_json()
            if args.json:
                emit_json(status)
            else:
                counts = ", ".join(f"{state} {count}" for state, count in sorted(status["by_state"].items()))
                emit_line(f"transactions: {counts or 'none'}")
                emit_line(
                    f"offline: {status['offline_count']} of {status['max_count']} payments, "
                    f"{status['offline_total'] / 100:.2f} of {status['max_total'] / 100:.2f}"
                )
            return 0
        if args.action == "show":
            transaction = queue.get(args.key)
            trail = [entry.to_json() for entry in queue.audit(args.key)]
            if args.json:
                emit_json({**_record(transaction), "audit": trail})
            else:
                emit_line(_line(transaction))
                for entry in trail:
                    emit_line(
                        f"  {entry['at']:.3f}  {entry['from'] or '-'} -> {entry['to']}"
                        f"  {entry['detail'] or ''}"
                    )
            return 0
        if args.action in ("retry", "settle"):
            keys = args.keys or None
            done = queue.retry(keys) if args.action == "retry" else queue.settle(keys)
            for key in done:
                emit_json({"key": key, "state": queue.get(key).state.value}) if args.json else emit_line(key)
            return 0
        if args.action == "export":
            if args.output:
                try:
                    handle = open(args.output, "w", newline="", encoding="utf-8")  # noqa: SIM115 - closed below
                except OSError as error:
                    raise UsageError(f"cannot write {args.output}: {error.strerror}") from None
                with handle:
                    _export(queue, handle)
            else:
                _export(queue, sys.stdout)
            return 0
        if args.action == "forward":
            return asyncio.run(
                _forward(
                    queue, args.processor or config.processor.url, args.once, args.concurrency, args.json
                )
            )
        if args.action == "publish":
            return asyncio.run(_publish(queue, args.once, args.json))
    finally:
        queue.close()
    raise UsageError(f"unknown queue action {args.action}")
