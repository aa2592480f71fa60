"""The parts a lane is assembled from, opened from its :class:`~posbridge.host.config.Config`.

:mod:`posbridge.host.lane` orchestrates; this module knows the other packages: it opens the
transaction queue (:mod:`posbridge.host.queue`), the forwarder, the customer registry, and one
input per configured device -- audio readers (a blocking
:class:`~posbridge.hardware.audio.source.AudioSource` and a streaming swipe detector in a worker
thread), dongles, chip readers and the beacon scanner. It also turns the queue's transactions
into the console's masked summary. Imports of the parts happen inside the functions, so a lane
without BLE or serial hardware never loads those libraries.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from posbridge.host.config import Config
from posbridge.protocols.errors import PosBridgeError, UsageError
from posbridge.protocols.types import Card, CheckIn, CheckOut, PresenceEvent, Swipe, Transaction

if TYPE_CHECKING:
    from posbridge.host.queue import OfflineLimits

Emit = Callable[[str, object], None]
"""How an input hands something to the lane: ``emit(input_name, item)``; safe from any thread."""


@dataclass(frozen=True)
class ReadFailure:
    """An input detected a card but could not read it; ``reason`` is cashier-readable (no card data)."""

    reason: str


@dataclass(frozen=True)
class AtCounter:
    """A checked-in customer: ``distance_m`` is the beacon's estimated distance in metres."""

    customer: str
    name: str
    beacon: str
    zone: str
    distance_m: float | None
    since: float

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data for the console."""
        return {
            "customer": self.customer,
            "name": self.name,
            "beacon": self.beacon,
            "zone": self.zone,
            "distance_m": self.distance_m,
            "since": self.since,
        }


# ---------------------------------------------------------------------- audio readers


class AudioReaderInput:
    """An audio-jack reader: ``open_source()`` and a streaming decoder in a worker thread.

    ``open_source`` returns an :class:`~posbridge.hardware.audio.source.AudioSource`;
    ``make_decoder(rate, channels)`` an object whose ``process(samples)`` and ``flush()`` return
    lists of results (swipes from a swipe detector, frames from a modem receiver); ``convert``
    turns each result into what the lane receives (None: nothing). The thread checks for
    shutdown between blocks, flushes the decoder and closes the source.
    """

    def __init__(
        self,
        name: str,
        open_source: Callable[[], Any],
        make_decoder: Callable[[int, int], Any],
        convert: Callable[[Any], object | None] = lambda item: item,
    ) -> None:
        self.name = name
        self._open_source = open_source
        self._make_decoder = make_decoder
        self._convert = convert

    def _read_loop(self, emit: Emit, stop_flag: threading.Event) -> None:
        def deliver(results: list[Any]) -> None:
            for result in results:
                item = self._convert(result)
                if item is not None:
                    emit(self.name, item)

        with self._open_source() as source:
            decoder = self._make_decoder(source.rate, source.channels)
            for block in source:
                deliver(decoder.process(block.samples))
                if stop_flag.is_set():
                    break
            deliver(decoder.flush())

    async def run(self, emit: Emit, stopping: asyncio.Event) -> None:
        """Read until the source ends or the lane stops."""
        stop_flag = threading.Event()
        failure: list[BaseException] = []

        def guarded() -> None:
            try:
                self._read_loop(emit, stop_flag)
            except BaseException as error:  # handed to the event loop below
                failure.append(error)

        thread = threading.Thread(target=guarded, name=f"audio {self.name}", daemon=True)
        thread.start()
        waiter = asyncio.create_task(stopping.wait())
        try:
            while thread.is_alive() and not stopping.is_set():
                await asyncio.wait([waiter], timeout=0.1)
        finally:
            stop_flag.set()
            waiter.cancel()
            await asyncio.to_thread(thread.join, 5.0)
        if failure:
            raise failure[0]


def swipe_reader(name: str, open_source: Callable[[], Any]) -> AudioReaderInput:
    """A magstripe head: the swipe detector turns audio into :class:`Swipe` s."""
    from posbridge.dsp.detector import SwipeDetector

    return AudioReaderInput(name, open_source, SwipeDetector)


def chip_reader(name: str, open_source: Callable[[], Any], profile: str) -> AudioReaderInput:
    """A powered chip reader behind an audio modem: CHIP link frames become :class:`ChipRead` s."""
    from posbridge.dsp.modem.frames import ModemFrameReceiver, chip_read_of
    from posbridge.protocols.errors import FrameError

    def convert(result: Any) -> object | None:
        if isinstance(result, FrameError):
            return ReadFailure(f"chip reader frame dropped: {result}")
        try:
            return chip_read_of(result)
        except PosBridgeError as error:
            return ReadFailure(f"chip read not usable: {error}")

    def make_receiver(rate: int, channels: int) -> Any:
        return ModemFrameReceiver(profile, rate)

    return AudioReaderInput(name, open_source, make_receiver, convert)


def _audio_opener(url: str) -> Callable[[], Any]:
    from posbridge.hardware.audio.source import open_audio

    return lambda: open_audio(url)


# ---------------------------------------------------------------------- configured inputs


def configured_inputs(config: Config, registry: Any) -> list[Any]:
    """One input per configured reader, dongle, chip reader and scanner (none by default)."""
    inputs: list[Any] = [swipe_reader(f"reader {url}", _audio_opener(url)) for url in config.audio.readers]
    inputs += [DongleInput(url) for url in config.dongles.links]
    for url in config.chip.readers:
        inputs.append(chip_reader(f"chip {url}", _audio_opener(url), config.chip.profile))
    if config.scanner.url:
        inputs.append(_scanner_input(config.scanner.url, registry, config.scanner.check_in))
    return inputs


async def relay(
    events: Any, name: str, convert: Callable[[Any], object | None], emit: Emit, stopping: asyncio.Event
) -> None:
    """Hand every item of the async iterator ``events`` to the lane until it ends or the lane stops."""
    iterator = events.__aiter__()
    stop_wait = asyncio.ensure_future(stopping.wait())
    try:
        while not stopping.is_set():
            next_item = asyncio.ensure_future(iterator.__anext__())
            done, _ = await asyncio.wait({next_item, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            if next_item not in done:
                next_item.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await next_item
                break
            try:
                item = next_item.result()
            except StopAsyncIteration:
                break
            converted = convert(item)
            if converted is not None:
                emit(name, converted)
    finally:
        stop_wait.cancel()
        closer = getattr(iterator, "aclose", None)
        if closer is not None:
            await closer()


class DongleInput:
    """A Pi dongle on a serial link (:class:`~posbridge.host.dongle.SerialDongle`).

    Encrypted swipes arrive as :class:`EncryptedCardData` (DUKPT, never clear track data);
    relayed chip reads as :class:`ChipRead`.
    """

    def __init__(self, url: str) -> None:
        self.name = f"dongle {url}"
        self.url = url

    @staticmethod
    def convert(event: Any) -> object | None:
        """The lane's item for a dongle event."""
        from posbridge.host.dongle import DongleChip, DongleSwipe
        from posbridge.protocols.emv import chip_read_from_tlv

        if isinstance(event, DongleSwipe):
            return event.card
        if isinstance(event, DongleChip):
            try:
                return chip_read_from_tlv(event.tlv)
            except PosBridgeError as error:
                return ReadFailure(f"chip read from the dongle not usable: {error}")
        return None

    async def run(self, emit: Emit, stopping: asyncio.Event) -> None:
        """Relay the dongle's events until the lane stops."""
        from posbridge.host.dongle import SerialDongle

        dongle = SerialDongle(self.url)
        dongle.start()
        try:
            await relay(dongle.events(), self.name, self.convert, emit, stopping)
        finally:
            await asyncio.to_thread(dongle.close)


class ScannerInput:
    """The beacon scanner and check-in tracker: presence events (:class:`CheckIn` / :class:`CheckOut`).

    ``check_in`` names the tracker's settings in :data:`posbridge.host.checkin.CHECK_IN_MODES`.
    """

    def __init__(
        self, name: str, open_scanner: Callable[[], Any], registry: Any, check_in: str = "cautious"
    ) -> None:
        self.name = name
        self._open_scanner = open_scanner
        self._registry = registry
        self._check_in = check_in

    async def run(self, emit: Emit, stopping: asyncio.Event) -> None:
        """Track beacons until the scanner ends or the lane stops."""
        from posbridge.host.checkin import CHECK_IN_MODES, CheckInTracker

        async with self._open_scanner() as scanner:
            tracker = CheckInTracker(self._registry, settings=CHECK_IN_MODES[self._check_in])
            await relay(tracker.track(scanner), self.name, lambda event: event, emit, stopping)


def _scanner_input(url: str, registry: Any, check_in: str) -> ScannerInput:
    from posbridge.hardware.ble import open_scanner

    return ScannerInput(f"scanner {url}", lambda: open_scanner(url), registry, check_in)


# ---------------------------------------------------------------------- queue, forwarder, registry


def offline_limits(config: Config) -> OfflineLimits:
    """The queue's limits on payments held offline, from ``[offline]``."""
    from posbridge.host.queue import OfflineLimits

    return OfflineLimits(
        max_transaction_amount=config.offline.max_transaction_amount,
        max_total_amount=config.offline.max_total_amount,
        max_count=config.offline.max_count,
        max_age_s=config.offline.max_age_s,
    )


def open_lane_queue(config: Config) -> Any:
    """The lane's transaction queue at ``config.queue_url`` with the configured offline limits."""
    from posbridge.host.queue import open_queue

    return open_queue(
        config.queue_url, lane=config.lane.id, key_path=config.key_path, limits=offline_limits(config)
    )


class ForwarderRunner:
    """Runs a :class:`~posbridge.host.forwarder.Forwarder` and tracks whether the processor answers.

    ``online`` turns False when a pass defers payments (processor unavailable) or the circuit
    breaker is open, and True again when the processor answers; ``on_change`` is called then.
    """

    def __init__(self, forwarder: Any) -> None:
        self.forwarder = forwarder
        self.on_change: Callable[[], None] | None = None
        self._online = True
        self._stop = asyncio.Event()

    @property
    def online(self) -> bool:
        """False while the processor cannot be reached."""
        return self._online and self.forwarder.breaker.state == "closed"

    def _on_report(self, report: Any) -> None:
        if report.deferred:
            self._online = False
        elif report.answered:
            self._online = True
        if self.on_change is not None:
            self.on_change()

    async def run(self) -> None:
        """Forward until :meth:`close`."""
        await self.forwarder.run(self._stop, on_report=self._on_report)

    async def close(self) -> None:
        """Stop after the pass in flight (its answers are recorded) and close the HTTP pool."""
        self._stop.set()
        await self.forwarder.close()


def make_forwarder(config: Config, queue: Any, **options: Any) -> ForwarderRunner:
    """The forwarder that sends the queue's captures to ``[processor] url``; ``options`` tune it."""
    from posbridge.host.forwarder import Forwarder

    return ForwarderRunner(
        Forwarder(queue, config.processor.url, timeout_s=config.processor.timeout_s, **options)
    )


def close_queue(queue: Any) -> None:
    """Close the queue (commits are already durable)."""
    if queue is not None:
        queue.close()


def open_registry(config: Config) -> Any:
    """The customer registry named by ``[customers] registry``, or None."""
    if not config.customers.registry:
        return None
    from posbridge.host.customers import CustomerRegistry

    return CustomerRegistry.load(config.customers.registry)


def subscribe_queue(queue: Any, listener: Callable[[str, Any], None]) -> None:
    """Call ``listener("transaction", Transaction)`` / ``listener("alert", dict)`` on queue events."""

    def relay(event: Any) -> None:
        if event.kind == "alert" and event.alert is not None:
            listener("alert", event.alert.to_json())
        elif event.kind == "transaction" and event.transaction is not None:
            listener("transaction", event.transaction)

    queue.subscribe(relay)


async def capture(
    queue: Any, amount: int, currency: str, item: Any, customer: str | None, confirm: tuple[str, ...] = ()
) -> Transaction:
    """Capture ``item`` (a swipe, chip read, dongle payload or account holder) durably for ``customer``.

    ``confirm`` lists the soft risk alerts the cashier has confirmed.
    """
    from posbridge.host.queue import CaptureRequest

    request = CaptureRequest.build(amount, currency, item, confirm=confirm)
    if customer is not None and request.customer is None:
        request = dataclasses.replace(request, customer=customer)
    result: Transaction = await asyncio.to_thread(queue.capture_request, request)
    return result


def needs_confirmation(refusal: BaseException) -> bool:
    """True when a refused capture goes through once the cashier confirms it (a soft risk rule)."""
    from posbridge.host.queue import ConfirmationRequired

    return isinstance(refusal, ConfirmationRequired)


def card_from_swipe(swipe: Swipe) -> Card:
    """The card on a decoded swipe (ISO/IEC 7813); :class:`ParseError` if its tracks do not make one."""
    from posbridge.protocols.magstripe import card_from_tracks

    return card_from_tracks(swipe.tracks)


def account_holder(registry: Any, customer: str) -> Any:
    """The registry entry (``.id``, ``.account_token``) of a customer, for pay by check-in."""
    if registry is None:
        raise UsageError("pay by check-in needs a customer registry ([customers] registry)")
    try:
        holder = registry.get(customer)
    except KeyError:
        raise UsageError(f"customer {customer} is not in the registry") from None
    if getattr(holder, "account_token", None) is None:
        raise UsageError(f"customer {customer} has no stored payment method (account_token)")
    return holder


def customer_name(registry: Any, customer: str) -> str:
    """The customer's display name from the registry, else the id."""
    if registry is not None:
        with contextlib.suppress(KeyError, PosBridgeError):
            return str(getattr(registry.get(customer), "name", customer) or customer)
    return customer


def presence_of(item: object, registry: Any) -> tuple[str, AtCounter] | None:
    """``("check_in" | "check_out", AtCounter)`` for a presence event, else None."""
    if not isinstance(item, CheckIn | CheckOut) or item.customer is None:
        return None
    event: PresenceEvent = item
    name = customer_name(registry, item.customer)
    entry = AtCounter(item.customer, name, str(event.beacon), event.zone.value, event.distance_m, time.time())
    return event.event, entry


def sale_status(transaction: Transaction, online: bool) -> str:
    """The console's word for a transaction: processing, offline, approved, declined or refused."""
    state = transaction.state.value
    if state in ("approved", "declined", "refused"):
        return state
    if state == "settled":
        return "approved"
    return "processing" if online else "offline"


QUEUE_GROUPS = {
    "captured": "pending",
    "forwarding": "pending",
    "failed": "offline",
    "approved": "forwarded",
    "settled": "forwarded",
    "declined": "declined",
    "refused": "declined",
}


def _item_label(state: str, online: bool) -> str:
    if state in ("captured", "forwarding"):
        return "pending" if online else "stored offline"
    return state


def queue_summary(queue: Any, config: Config, online: bool, limit: int) -> dict[str, Any]:
    """Counts (pending, offline, forwarded, declined), offline position and the latest ``limit`` items."""
    status = queue.status()
    counts = {"pending": 0, "offline": 0, "forwarded": 0, "declined": 0}
    for state, count in status.by_state.items():
        counts[QUEUE_GROUPS.get(state, "pending")] += count
    depth = status.offline.count
    if not online:
        counts["offline"] += counts["pending"]
        counts["pending"] = 0
    items = []
    latest = queue.list()[-limit:][::-1] if limit else []
    for transaction in latest:
        items.append(
            {
                "key": transaction.key,
                "amount": transaction.amount,
                "currency": transaction.currency,
                "card": transaction.card.masked_pan if transaction.card else None,
                "customer": transaction.customer,
                "state": transaction.state.value,
                "source": transaction.source,
                "label": _item_label(transaction.state.value, online),
                "reason": transaction.reason,
                "updated_at": transaction.updated_at,
            }
        )
    return {
        "counts": counts,
        "depth": depth,
        "offline": not online,
        "offline_total": status.offline.total_amount,
        "offline_limit": config.offline.max_total_amount,
        "items": items,
    }
