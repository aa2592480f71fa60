"""The lane: one asyncio process that runs a checkout lane (issue 8, DESIGN.md "Concurrency").

Threads at the edges, asyncio in the middle. Each audio reader runs its blocking
:class:`~posbridge.hardware.audio.source.AudioSource` and a streaming swipe detector in a thread
that hands decoded swipes to the event loop; dongles, chip readers and the beacon scanner are
async inputs. Every card read goes to the sale that is waiting for a card, is captured into the
durable transaction queue and forwarded to the processor by the forwarder. The lane keeps a
masked snapshot (sale, who is at the counter, the queue, alerts) for the merchant console, and
counters for Prometheus ``/metrics`` (text exposition format 0.0.4).

Shutdown (SIGTERM, Ctrl-C) stops the inputs first, lets every read already handed over be
captured, then stops the forwarder and closes the queue, so nothing captured is lost: what the
processor has not answered stays in the queue for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Protocol

from posbridge.host import app as parts
from posbridge.host.app import AtCounter, Emit, ReadFailure
from posbridge.host.config import Config
from posbridge.host.queue.rules import format_amount
from posbridge.protocols.errors import CaptureRefused, ParseError, PosBridgeError, UsageError
from posbridge.protocols.types import Card, ChipRead, EncryptedCardData, MaskedCard, Swipe

log = logging.getLogger("posbridge.lane")

CardSource = Swipe | ChipRead | EncryptedCardData | Card

LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
MAX_ALERTS = 50
MAX_QUEUE_ITEMS = 30
INPUT_RETRY_S = 1.0
INPUT_RETRY_MAX_S = 30.0


class LaneInput(Protocol):
    """Something that produces card reads or presence events until the lane stops."""

    name: str

    async def run(self, emit: Emit, stopping: asyncio.Event) -> None:
        """Produce items with ``emit`` until ``stopping`` is set (or the input ends)."""


class Metrics:
    """Counters and a forward-latency histogram, rendered in the Prometheus text format."""

    COUNTERS: ClassVar[dict[str, str]] = {
        "swipes_decoded": "Card swipes decoded by the audio readers",
        "decode_failures": "Swipes detected whose tracks could not be decoded into a card",
        "chip_reads": "Chip reads received",
        "dongle_reads": "Encrypted card reads received from dongles",
        "checkins": "Customers checked in at the counter",
        "checkouts": "Customers checked out",
        "captures": "Payments captured into the queue",
        "captures_refused": "Captures refused by an offline limit or a risk rule",
        "alerts": "Risk and limit alerts raised",
    }

    def __init__(self) -> None:
        self.counts: dict[str, int] = dict.fromkeys(self.COUNTERS, 0)
        self._latency_buckets = [0] * len(LATENCY_BUCKETS_S)
        self._latency_count = 0
        self._latency_sum = 0.0

    def inc(self, name: str, amount: int = 1) -> None:
        """Add ``amount`` to the counter ``name`` (one of :attr:`COUNTERS`)."""
        self.counts[name] += amount

    def observe_forward_latency(self, seconds: float) -> None:
        """Record one capture-to-answer time in seconds."""
        self._latency_count += 1
        self._latency_sum += seconds
        for index, bound in enumerate(LATENCY_BUCKETS_S):
            if seconds <= bound:
                self._latency_buckets[index] += 1

    def render(self, gauges: dict[str, tuple[str, float]]) -> str:
        """Prometheus text: counters as ``posbridge_<name>_total``, ``gauges`` as given, the histogram."""
        lines: list[str] = []
        for name, help_text in self.COUNTERS.items():
            metric = f"posbridge_{name}_total"
            lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} counter"]
            lines.append(f"{metric} {self.counts[name]}")
        for name, (help_text, value) in gauges.items():
            metric = f"posbridge_{name}"
            lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} gauge", f"{metric} {value:g}"]
        metric = "posbridge_forward_latency_seconds"
        lines += [f"# HELP {metric} Capture to processor answer", f"# TYPE {metric} histogram"]
        for bound, count in zip(LATENCY_BUCKETS_S, self._latency_buckets, strict=True):
            lines.append(f'{metric}_bucket{{le="{bound:g}"}} {count}')
        lines += [
            f'{metric}_bucket{{le="+Inf"}} {self._latency_count}',
            f"{metric}_sum {self._latency_sum:.6f}",
            f"{metric}_count {self._latency_count}",
        ]
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Sale:
    """The sale on the counter: ``amount`` in minor units; ``status`` waiting, approved, declined,
    offline (stored, forwarded later), refused or cancelled; ``card`` is masked."""

    amount: int
    currency: str
    customer: str | None
    status: str = "waiting"
    card: str | None = None
    reason: str | None = None
    key: str | None = None
    opened_at: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        """The sale as JSON-ready data."""
        return {
            "amount": self.amount,
            "currency": self.currency,
            "customer": self.customer,
            "status": self.status,
            "card": self.card,
            "reason": self.reason,
            "key": self.key,
        }


class StateWatch:
    """A version number that changes with the lane's state, and waiters for the next change."""

    def __init__(self) -> None:
        self.version = 0
        self.closed = False
        self._changed = asyncio.Event()

    def bump(self) -> None:
        """Mark the state as changed and wake every waiter."""
        self.version += 1
        self._changed.set()
        self._changed = asyncio.Event()

    def close(self) -> None:
        """Wake every waiter for the last time."""
        self.closed = True
        self.bump()

    async def wait(self, seen: int, timeout: float) -> int:
        """Wait until the version differs from ``seen`` or ``timeout`` seconds pass; the current version."""
        if self.version == seen and not self.closed:
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout)
        return self.version


class Lane:
    """One checkout lane. Use ``async with Lane(config) as lane`` or :meth:`start` / :meth:`stop`.

    ``inputs`` are extra inputs besides those the configuration names (the demo's scripted
    hardware). ``queue`` and ``forwarder`` are opened from the configuration unless given.
    ``on_line`` receives one human-readable, masked line per thing that happens.
    """

    def __init__(
        self,
        config: Config,
        *,
        inputs: Iterable[LaneInput] = (),
        queue: Any = None,
        forwarder: parts.ForwarderRunner | None = None,
        registry: Any = None,
        on_line: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self.metrics = Metrics()
        self.watch_state = StateWatch()
        self.sale: Sale | None = None
        self.counter: dict[str, AtCounter] = {}
        self.alerts: deque[dict[str, Any]] = deque(maxlen=MAX_ALERTS)
        self._extra_inputs = list(inputs)
        self._queue = queue
        self._forwarder = forwarder
        self._registry = registry
        self._on_line = on_line
        self._inbox: asyncio.Queue[tuple[str, object]] = asyncio.Queue()
        self._stopping = asyncio.Event()
        self._input_tasks: list[asyncio.Task[None]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = False
        self._unconfirmed: tuple[object, MaskedCard | None, str] | None = None
        self._capture_started: dict[str, float] = {}
        self._forwarder_task: asyncio.Task[None] | None = None
        self._instance = f"{config.lane.id}@{time.time():.6f}"

    # ----------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> Lane:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Open the queue, forwarder and inputs and start handling what they produce."""
        self._loop = asyncio.get_running_loop()
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        if self._queue is None:
            self._queue = parts.open_lane_queue(self.config)
        if self._forwarder is None:
            self._forwarder = parts.make_forwarder(self.config, self._queue)
        if self._registry is None:
            self._registry = parts.open_registry(self.config)
        parts.subscribe_queue(self._queue, self._on_queue_event)
        inputs = [*parts.configured_inputs(self.config, self._registry), *self._extra_inputs]
        self._tasks.append(asyncio.create_task(self._consume(), name="lane-consume"))
        self._forwarder.on_change = self._on_forwarder_change
        self._forwarder_task = asyncio.create_task(self._forwarder.run(), name="forwarder")
        for lane_input in inputs:
            self._input_tasks.append(asyncio.create_task(self._run_input(lane_input), name=lane_input.name))
        self._started = True
        self.line(f"lane {self.config.lane.id} open: {len(inputs)} input(s), queue {self._queue_label()}")
        self.watch_state.bump()

    async def stop(self) -> None:
        """Stop the inputs, capture what they already handed over, stop the forwarder, close the queue."""
        if not self._started:
            return
        self._started = False
        self._stopping.set()
        self.watch_state.close()
        if self._input_tasks:
            await asyncio.wait(self._input_tasks, timeout=5.0)
        for task in self._input_tasks:
            task.cancel()
        await asyncio.gather(*self._input_tasks, return_exceptions=True)
        await self._inbox.join()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._forwarder is not None:
            await self._forwarder.close()
        if self._forwarder_task is not None:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._forwarder_task, timeout=10.0)
        parts.close_queue(self._queue)
        self.line(f"lane {self.config.lane.id} stopped")

    def emit(self, input_name: str, item: object) -> None:
        """Hand an item from an input to the lane; callable from any thread."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("the lane is not started")
        if _running_loop() is loop:
            self._inbox.put_nowait((input_name, item))
        else:
            loop.call_soon_threadsafe(self._inbox.put_nowait, (input_name, item))

    def add_input(self, lane_input: LaneInput) -> None:
        """Start another input on the running lane (the demo's beacons, a reader plugged in later)."""
        if not self._started:
            raise RuntimeError("the lane is not started")
        self._input_tasks.append(asyncio.create_task(self._run_input(lane_input), name=lane_input.name))

    async def _run_input(self, lane_input: LaneInput) -> None:
        """Run an input; after a failure (device unplugged, decoder error) alert and retry with backoff."""
        delay = INPUT_RETRY_S
        while not self._stopping.is_set():
            try:
                await lane_input.run(self.emit, self._stopping)
                return
            except asyncio.CancelledError:
                raise
            except PosBridgeError as error:
                self.alert("critical", f"{lane_input.name}: {error}; retrying in {delay:g} s")
            except Exception as error:
                log.exception("input %s failed", lane_input.name)
                failure = type(error).__name__
                self.alert("critical", f"{lane_input.name} failed ({failure}); retrying in {delay:g} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            delay = min(delay * 2, INPUT_RETRY_MAX_S)

    async def _consume(self) -> None:
        while True:
            name, item = await self._inbox.get()
            try:
                await self._handle(name, item)
            except Exception:
                log.exception("handling an item from %s failed", name)
            finally:
                self._inbox.task_done()

    async def _handle(self, name: str, item: object) -> None:
        if isinstance(item, Swipe):
            try:
                card = parts.card_from_swipe(item)
            except ParseError as error:
                self.metrics.inc("decode_failures")
                self.line(f"{name}: swipe not readable ({error}); ask to swipe again")
                self.alert("warning", f"swipe not readable: {error}")
                return
            self.metrics.inc("swipes_decoded")
            self.line(f"{name}: swipe {card.masked}")
            await self.present(item, name, card.masked)
        elif isinstance(item, ChipRead):
            self.metrics.inc("chip_reads")
            self.line(f"{name}: chip {item.masked}")
            await self.present(item, name, item.masked)
        elif isinstance(item, EncryptedCardData):
            self.metrics.inc("dongle_reads")
            self.line(f"{name}: encrypted read {item.masked}")
            await self.present(item, name, item.masked)
        elif isinstance(item, Card):
            self.line(f"{name}: card {item.masked}")
            await self.present(item, name, item.masked)
        elif isinstance(item, ReadFailure):
            self.metrics.inc("decode_failures")
            self.line(f"{name}: {item.reason}")
        else:
            presence = parts.presence_of(item, self._registry)
            if presence is not None:
                await asyncio.to_thread(self._queue.record_presence, item)
                self._on_presence(*presence)

    # ----------------------------------------------------------------- presence

    def _on_presence(self, kind: str, entry: AtCounter) -> None:
        if kind == "check_in":
            if entry.customer not in self.counter:
                self.metrics.inc("checkins")
                self.line(f"check-in: {entry.name} at the {entry.zone}")
            self.counter[entry.customer] = entry
        else:
            if self.counter.pop(entry.customer, None) is not None:
                self.metrics.inc("checkouts")
                self.line(f"check-out: {entry.name}")
        self.watch_state.bump()

    # ----------------------------------------------------------------- sales

    def _sale_open(self) -> bool:
        return self.sale is not None and self.sale.status in ("waiting", "confirm")

    async def open_sale(self, amount: int, customer: str | None) -> None:
        """Start a sale of ``amount`` minor units that waits for a card; ``customer`` is attached."""
        if self._sale_open():
            raise UsageError("a sale is already open; finish or cancel it first")
        if amount <= 0:
            raise UsageError("amount must be positive")
        self.sale = Sale(amount, self.config.lane.currency, customer)
        who = f" for {self._customer_name(customer)}" if customer else ""
        self.line(f"sale {format_amount(amount, self.config.lane.currency)}{who}: waiting for card")
        self.watch_state.bump()

    async def cancel_sale(self) -> None:
        """Abandon the sale that waits for a card or for the cashier's confirmation."""
        if self.sale is None or not self._sale_open():
            raise UsageError("no sale is open")
        self.sale = replace(self.sale, status="cancelled")
        self._unconfirmed = None
        self.line("sale cancelled")
        self.watch_state.bump()

    async def confirm_sale(self) -> None:
        """Capture what a soft risk rule held back (a duplicate swipe, a chip card swiped), as confirmed."""
        if self.sale is None or self.sale.status != "confirm" or self._unconfirmed is None:
            raise UsageError("no sale is waiting for confirmation")
        item, masked, kind = self._unconfirmed
        self._unconfirmed = None
        amount = format_amount(self.sale.amount, self.sale.currency)
        self.line(f"cashier confirmed {amount} {masked or ''}".rstrip())
        await self._capture(item, source_label="confirmed", masked=masked, confirm=(kind,))

    async def pay_by_checkin(self, amount: int, customer: str) -> None:
        """Charge a checked-in customer's stored payment method, no card needed."""
        if customer not in self.counter:
            raise UsageError(f"customer {customer} is not checked in")
        holder = parts.account_holder(self._registry, customer)
        self._unconfirmed = None
        self.sale = Sale(amount, self.config.lane.currency, customer)
        amount_text = format_amount(amount, self.config.lane.currency)
        self.line(f"pay by check-in: {self._customer_name(customer)} {amount_text}")
        await self._capture(holder, source_label="check-in", masked=None)

    async def present(self, item: CardSource, input_name: str, masked: MaskedCard) -> None:
        """A card was read (``masked`` shows it): capture it for the waiting sale, or say no sale is open."""
        if self.sale is None or self.sale.status != "waiting":
            self.line(f"{input_name}: card {masked} read with no sale open; ignored")
            self.alert("info", f"card {masked} read with no sale open")
            return
        await self._capture(item, source_label=input_name, masked=masked)

    async def _capture(
        self, item: object, source_label: str, masked: MaskedCard | None, confirm: tuple[str, ...] = ()
    ) -> None:
        sale = self.sale
        assert sale is not None
        card_text = masked.masked_pan if masked else None
        try:
            transaction = await parts.capture(
                self._queue, sale.amount, sale.currency, item, sale.customer, confirm
            )
        except CaptureRefused as error:
            if parts.needs_confirmation(error):
                self._unconfirmed = (item, masked, str(error.context["kind"]))
                self.sale = replace(sale, status="confirm", card=card_text, reason=str(error))
                self.line(f"needs the cashier's confirmation: {error}")
            else:
                self.metrics.inc("captures_refused")
                self.sale = replace(sale, status="refused", card=card_text, reason=str(error))
                self.line(f"refused {format_amount(sale.amount, sale.currency)} {masked or ''}: {error}")
            self.watch_state.bump()
            return
        self.metrics.inc("captures")
        self._capture_started[transaction.key] = time.monotonic()
        self.sale = replace(sale, status="processing", card=card_text, key=transaction.key)
        self.line(f"captured {format_amount(sale.amount, sale.currency)} {masked or source_label}")
        self._apply_transaction(transaction)
        self.watch_state.bump()

    # ----------------------------------------------------------------- queue events

    def _on_queue_event(self, kind: str, payload: Any) -> None:
        if kind == "alert":
            self.alert("critical" if not payload.get("needs_confirmation") else "warning", payload["message"])
        elif kind == "transaction":
            self._apply_transaction(payload)
        self.watch_state.bump()

    def _apply_transaction(self, transaction: Any) -> None:
        status = parts.sale_status(transaction, self.online)
        started = self._capture_started.get(transaction.key)
        if started is None:
            return
        answered_badly = transaction.reason and status in ("declined", "refused")
        reason = f" ({transaction.reason})" if answered_badly else ""
        card = f" {transaction.card.masked_pan}" if transaction.card else ""
        amount = format_amount(transaction.amount, transaction.currency)
        if status in ("approved", "declined"):
            self.metrics.observe_forward_latency(time.monotonic() - started)
            del self._capture_started[transaction.key]
        sale = self.sale
        if sale is not None and sale.key == transaction.key:
            if status != sale.status:
                self.sale = replace(sale, status=status, reason=transaction.reason if reason else None)
                self.line(f"{status} {amount}{card}{reason}")
        elif status in ("approved", "declined"):
            self.line(f"stored payment forwarded: {status} {amount}{card}{reason}")

    def _on_forwarder_change(self) -> None:
        sale = self.sale
        if sale is not None and sale.key is not None:
            self._apply_transaction(self._queue.get(sale.key))
        self.watch_state.bump()

    # ----------------------------------------------------------------- reporting

    def line(self, text: str) -> None:
        """Report one thing that happened (masked) to the log and ``on_line``."""
        log.info("%s", text)
        if self._on_line is not None:
            self._on_line(text)

    def alert(self, level: str, text: str) -> None:
        """Raise an alert for the console (``level`` info, warning or critical)."""
        self.metrics.inc("alerts")
        self.alerts.appendleft({"t": time.time(), "level": level, "text": text})
        self.line(f"ALERT {text}")
        self.watch_state.bump()

    def _customer_name(self, customer: str | None) -> str:
        if customer is None:
            return ""
        entry = self.counter.get(customer)
        if entry is not None:
            return entry.name
        return parts.customer_name(self._registry, customer)

    @property
    def online(self) -> bool:
        """False while the processor cannot be reached (payments are stored offline)."""
        return self._forwarder is not None and self._forwarder.online

    def _queue_label(self) -> str:
        return self.config.queue_url.split("://", 1)[0]

    def snapshot(self) -> dict[str, Any]:
        """Everything the console shows, masked, as JSON-ready data."""
        queue = parts.queue_summary(self._queue, self.config, self.online, limit=MAX_QUEUE_ITEMS)
        for item in queue["items"]:
            item["customer_name"] = self._customer_name(item.get("customer"))
        return {
            "instance": self._instance,
            "version": self.watch_state.version,
            "lane": {"id": self.config.lane.id, "currency": self.config.lane.currency, "exponent": 2},
            "sale": self.sale.to_json() if self.sale else None,
            "counter": [entry.to_json() for entry in sorted(self.counter.values(), key=lambda e: e.since)],
            "queue": queue,
            "alerts": list(self.alerts),
        }

    async def watch(self) -> AsyncIterator[dict[str, Any]]:
        """Snapshots: the current one, then one per change (at most every 50 ms) until the lane stops."""
        seen = -1
        while not self.watch_state.closed:
            version = self.watch_state.version
            if version != seen:
                seen = version
                yield self.snapshot()
            await asyncio.sleep(0.05)
            await self.watch_state.wait(seen, timeout=1.0)

    def health(self) -> dict[str, Any]:
        """``ok`` while started, with input and queue figures."""
        summary = None
        if self._queue is not None:
            summary = parts.queue_summary(self._queue, self.config, self.online, limit=0)
        return {
            "ok": self._started,
            "lane": self.config.lane.id,
            "inputs": {task.get_name(): not task.done() for task in self._input_tasks},
            "queue": {k: summary[k] for k in ("counts", "offline", "offline_total")} if summary else None,
        }

    def metrics_text(self) -> str:
        """Prometheus text exposition of the lane's metrics."""
        summary = parts.queue_summary(self._queue, self.config, self.online, limit=0)
        gauges = {
            "queue_depth": ("Transactions not yet answered by the processor", float(summary["depth"])),
            "offline_amount": ("Amount held offline, in minor units", float(summary["offline_total"])),
            "offline": ("1 while the processor is unreachable", 1.0 if summary["offline"] else 0.0),
            "checked_in": ("Customers checked in at the counter", float(len(self.counter))),
        }
        return self.metrics.render(gauges)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


async def run_lane(config: Config, stop: asyncio.Event, **lane_options: Any) -> Lane:
    """Start a lane and its console (if enabled), run until ``stop`` is set, stop both; returns the lane."""
    from posbridge.host.console import serve_console

    lane = Lane(config, **lane_options)
    await lane.start()
    runner = None
    try:
        if config.console.enabled:
            runner, port = await serve_console(lane, config.console.host, config.console.port,
                                               config.console.token)
            lane.line(f"console on http://{config.console.host}:{port}/")
        await stop.wait()
    finally:
        await lane.stop()
        if runner is not None:
            await runner.cleanup()
    return lane
