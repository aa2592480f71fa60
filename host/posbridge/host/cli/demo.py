"""``posbridge demo``: a scripted shop on virtual hardware (issue 8, DESIGN.md "The command line").

The same :class:`~posbridge.host.lane.Lane` as ``posbridge run`` on virtual hardware: a magstripe
head and a chip reader are :class:`~posbridge.hardware.audio.source.AudioSource` s fed with
synthesized swipes and modem bursts (decoded by the real swipe detector and modem receiver),
customers' beacons walk through a ``virtual://`` BLE scene seen by the real check-in tracker, and
an in-process processor simulator answers the real forwarder. Customers walk in, swipe or insert
cards, pay by check-in; the network drops and comes back; a duplicate swipe and an expired card
raise alerts. Only masked card data is printed. The console is served while it runs; the demo
ends by itself after ``--duration`` seconds and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import queue
import random
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from posbridge.host.cli._output import (
    add_output_options,
    emit_json,
    emit_line,
    ensure_directory,
    positive_seconds,
    seed_number,
)

COMMAND = "demo"
HELP = "run a scripted shop on virtual hardware and serve the merchant console"

DEFAULT_DURATION_S = 60.0
SCRIPT_LENGTH_S = 50.0
READER_RATE = 48_000
BLOCK_FRAMES = 480
CHIP_PROFILE = "bell202"
STOP_ALLOWANCE_S = 0.5


def register(parser: argparse.ArgumentParser) -> None:
    """Add the demo's options."""
    parser.add_argument("--duration", type=positive_seconds, default=DEFAULT_DURATION_S, metavar="S",
                        help=f"seconds until the demo ends by itself (default {DEFAULT_DURATION_S:g})")
    parser.add_argument("--console", default=None, metavar="HOST:PORT",
                        help="where to serve the merchant console (default 127.0.0.1:8080, or any free "
                             "port when 8080 is taken; port 0: any)")
    parser.add_argument("--state-dir", default=None, metavar="DIR",
                        help="directory for the demo's database and logs (default: a temporary one)")
    parser.add_argument("--seed", type=seed_number, default=20261126, help="random seed of the scripted shop")
    add_output_options(parser, reveal=False)
    parser.set_defaults(handler=run)


def parse_host_port(text: str) -> tuple[str, int]:
    """``"127.0.0.1:8080"`` -> ``("127.0.0.1", 8080)``; :class:`UsageError` otherwise."""
    from posbridge.protocols.errors import UsageError

    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"--console must be HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


class ScriptedAudio:
    """A virtual audio-jack input: silence, a little hiss, and what the script pushes (swipes, modem bursts).

    :meth:`open` gives an :class:`~posbridge.hardware.audio.source.AudioSource` paced in real time
    like a sound card, yielding float32 blocks of shape ``(480, 1)`` at 48 kHz (the class is made
    there so that numpy loads only when the demo runs).
    """

    def __init__(self, name: str, seed: int) -> None:
        import numpy as np

        self.name = name
        self._np = np
        self._rng = np.random.default_rng(seed)
        self._pending: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._buffer = np.zeros(0, dtype=np.float32)

    def open(self) -> Any:
        """A new :class:`~posbridge.hardware.audio.source.AudioSource` on this input (what the lane opens)."""
        from posbridge.hardware.audio.source import AudioSource

        next_block = self._next_block

        class _Source(AudioSource):
            @classmethod
            def from_url(cls, url: str, target: str, params: dict[str, str]) -> AudioSource:
                raise NotImplementedError

            def _read_frames(self) -> Any:
                block = next_block()
                self.pace((self.frames_read + BLOCK_FRAMES) / READER_RATE)
                return block

        return _Source(f"virtual://{self.name}", READER_RATE, 1)

    def push(self, samples: Any) -> None:
        """Queue samples (float32, shape ``(n,)``) to play next; thread-safe."""
        self._pending.put(samples)

    def _next_block(self) -> Any:
        np = self._np
        while self._buffer.shape[0] < BLOCK_FRAMES and not self._pending.empty():
            self._buffer = np.concatenate([self._buffer, self._pending.get().astype(np.float32).reshape(-1)])
        block = (self._rng.standard_normal(BLOCK_FRAMES) * 0.0005).astype(np.float32)
        take = min(BLOCK_FRAMES, self._buffer.shape[0])
        block[:take] += self._buffer[:take]
        self._buffer = self._buffer[take:]
        return block.reshape(-1, 1)


DEMO_UUID = "e2c56db5-dffb-48d2-b060-d0f5a71096e0"
CUSTOMER_DATA: list[dict[str, Any]] = [
    {"id": "cust-alice", "name": "Alice", "account_token": "acct_alice",
     "beacons": [f"ibeacon:{DEMO_UUID}:1:1"]},
    {"id": "cust-bob", "name": "Bob", "account_token": "acct_bob", "beacons": [f"ibeacon:{DEMO_UUID}:1:2"]},
    {"id": "cust-carol", "name": "Carol", "account_token": "acct_carol",
     "beacons": ["eddystone-uid:edd1ebeac04e5defa017:0000000000c4"]},
]


def _beacon_frame(beacon_id: str) -> Any:
    """The frame a demo beacon advertises for its canonical id (iBeacon or Eddystone-UID)."""
    from posbridge.protocols.beacons import EddystoneUid, IBeacon

    scheme, *fields = beacon_id.split(":")
    if scheme == "ibeacon":
        return IBeacon(fields[0], int(fields[1]), int(fields[2]), -59)
    return EddystoneUid(-18, fields[0], fields[1])


def demo_registry() -> Any:
    """The demo's customer registry (a :class:`~posbridge.host.customers.CustomerRegistry`)."""
    from posbridge.host.customers import CustomerRegistry

    return CustomerRegistry.from_data({"customers": CUSTOMER_DATA})


@dataclasses.dataclass(frozen=True)
class Visit:
    """A scripted visit: at the counter from ``arrive`` to ``leave`` (script seconds; None: stays)."""

    customer: str
    arrive: float
    leave: float | None = None


VISITS = (Visit("cust-alice", 1, 38), Visit("cust-bob", 8, 47), Visit("cust-carol", 40))


class DemoShop:
    """The demo's lane with its virtual hardware and processor simulator.

    A magstripe head and a chip reader are :class:`ScriptedAudio` inputs decoded by the real swipe
    detector and modem receiver; beacons move through a simulated shop (``virtual://`` BLE scene)
    seen by the real check-in tracker. ``auto_swipe``: when a sale opened from the console waits
    for a card, a virtual customer swipes a good test card after a moment.
    """

    def __init__(self, state_dir: Path, console: tuple[str, int], seed: int, on_line: Callable[[str], None],
                 auto_swipe: bool = True) -> None:
        self.state_dir = state_dir
        self.console = console
        self.seed = seed
        self.on_line = on_line
        self.auto_swipe = auto_swipe
        self.rng = random.Random(seed)
        self.head_audio = ScriptedAudio("magstripe-head", seed)
        self.chip_audio = ScriptedAudio("chip-reader", seed + 1)
        self.registry = demo_registry()
        self.lane: Any = None
        self.sim: Any = None
        self.console_port = 0
        self._runner: Any = None
        self._script_busy = False
        self._auto_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the processor simulator, the lane and the console."""
        from posbridge.host import app as parts
        from posbridge.host.config import Config, ConsoleConfig, LaneConfig, ProcessorConfig
        from posbridge.host.console import serve_console
        from posbridge.host.forwarder import CircuitBreaker, RetryPolicy
        from posbridge.host.lane import Lane
        from posbridge.host.processor_sim import ProcessorSim

        accounts = {customer.account_token: 100_000 for customer in self.registry.customers()}
        self.sim = ProcessorSim(accounts=accounts)
        processor_url = await self.sim.start()
        config = Config(
            lane=LaneConfig(id="demo-lane"),
            processor=ProcessorConfig(url=processor_url, timeout_s=2.0),
            console=ConsoleConfig(host=self.console[0], port=self.console[1]),
            state_dir=self.state_dir,
        )
        queue_ = parts.open_lane_queue(config)
        forwarder = parts.make_forwarder(
            config, queue_, retry=RetryPolicy(base_s=0.2, max_s=1.0), breaker=CircuitBreaker(3, 1.5),
            stagger_s=0.1, poll_s=0.2,
        )
        inputs = [
            parts.swipe_reader("magstripe head", self.head_audio.open),
            parts.chip_reader("chip reader", self.chip_audio.open, CHIP_PROFILE),
        ]
        self.lane = Lane(config, inputs=inputs, queue=queue_, forwarder=forwarder, registry=self.registry,
                         on_line=self.on_line)
        await self.lane.start()
        self._runner, self.console_port = await serve_console(self.lane, *self.console)
        self.on_line(f"console on http://{self.console[0]}:{self.console_port}/")
        if self.auto_swipe:
            self._auto_task = asyncio.create_task(self._auto_swipe())

    async def stop(self) -> None:
        """Stop the lane, the console and the simulator."""
        if self._auto_task is not None:
            self._auto_task.cancel()
        if self.lane is not None:
            await self.lane.stop()
        if self._runner is not None:
            await self._runner.cleanup()
        if self.sim is not None:
            await self.sim.stop()

    # ------------------------------------------------------------ virtual hardware

    def customer(self, customer_id: str) -> Any:
        """The registered customer with that id."""
        return self.registry.get(customer_id)

    def test_card(self, expiry: str = "3012", prefix: str | None = None, service_code: str = "101") -> Any:
        """A Luhn-valid test card (test BIN prefixes only)."""
        from posbridge.protocols.cards import generate_test_pan
        from posbridge.protocols.types import Card

        pan = generate_test_pan(self.rng, prefix=prefix)
        return Card(pan=pan, expiry=expiry, service_code=service_code, name="DEMO/CUSTOMER",
                    discretionary="1234567")

    def swipe(self, card: Any) -> None:
        """Swipe ``card`` past the virtual magstripe head (synthesized audio, decoded by the detector)."""
        import numpy as np
        from posbridge.dsp.synth import SwipeParams, synthesize_swipe

        noise = np.random.default_rng(self.rng.randrange(2**32))
        self.head_audio.push(synthesize_swipe(card, SwipeParams(rate=READER_RATE), noise))

    def insert(self, card: Any, amount: int) -> None:
        """Insert ``card`` in the virtual chip reader: an EMV transcript sent over the audio modem."""
        from posbridge.firmware.chip_reader import ChipReader, make_test_transcript

        transcript = make_test_transcript(self.rng, card.pan, expiry=card.expiry, amount=amount)
        self.chip_audio.push(ChipReader(CHIP_PROFILE, READER_RATE).send(transcript))

    def walk_in(self, customer_id: str, distance_m: float = 0.8) -> None:
        """The customer's beacon is at the counter now (a check-in without the radio simulation)."""
        from posbridge.protocols.types import BeaconId, CheckIn, Zone

        beacon = BeaconId(self.customer(customer_id).beacons[0])
        self.lane.emit("beacons", CheckIn(time.time(), beacon, customer_id, Zone.COUNTER, distance_m))

    def beacon_scene(self, visits: tuple[Visit, ...], scale: float, duration: float) -> Any:
        """A ``virtual://`` BLE scanner whose scene walks each visitor's beacon to the counter and out."""
        from posbridge.hardware.ble import Path as Walk
        from posbridge.hardware.ble import Radio, Scene, SimBeacon
        from posbridge.hardware.ble.virtual import VirtualScanner
        beacons = []
        for visit in visits:
            arrive = visit.arrive * scale
            stay = (visit.leave * scale if visit.leave is not None else duration + 5.0) - arrive
            walk = Walk.route(max(arrive - 1.0, 0.0), [(3.0, 0.0, 0.0), (0.5, 0.0, max(stay, 0.5)),
                                                       (3.0, 0.0, 0.0), (15.0, 0.0, 0.0)], speed=2.5)
            beacon_id = self.customer(visit.customer).beacons[0]
            beacons.append(SimBeacon(_beacon_frame(beacon_id), walk, Radio(interval_s=0.2, loss=0.1)))
        scene = Scene(beacons, seed=self.seed, duration_s=duration + 5.0)
        return VirtualScanner("virtual://demo-shop", scene, realtime=True)

    def network(self, up: bool) -> None:
        """Cut the processor off (every request fails) or bring it back."""
        self.sim.set_fault("ok" if up else "fail")
        self.on_line("network: processor reachable again" if up else "network: processor unreachable")

    async def settle(self, timeout: float) -> str:
        """Wait until the sale leaves waiting/processing (or ``timeout`` s); its status."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sale = self.lane.sale
            if sale is not None and sale.status not in ("waiting", "processing"):
                return str(sale.status)
            await asyncio.sleep(0.05)
        return str(self.lane.sale.status) if self.lane.sale else "none"

    async def checked_in(self, customer_id: str, timeout: float) -> bool:
        """Wait until the customer is at the counter (or ``timeout`` s)."""
        deadline = time.monotonic() + timeout
        while customer_id not in self.lane.counter and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return customer_id in self.lane.counter

    async def _auto_swipe(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            sale = self.lane.sale
            if self._script_busy or sale is None or sale.status != "waiting":
                continue
            if time.time() - sale.opened_at > 1.0:
                self.swipe(self.test_card())
                await self.settle(10.0)

    # ------------------------------------------------------------ the script

    async def sale(self, amount: int, customer_id: str | None, present: Callable[[], None] | None,
                   wait: float) -> str:
        """Open a sale, ``present`` a card (None: pay by check-in), wait for the outcome."""
        self._script_busy = True
        try:
            if self.lane.sale is not None and self.lane.sale.status in ("waiting", "confirm"):
                await self.lane.cancel_sale()
            if customer_id is not None and not await self.checked_in(customer_id, wait):
                self.on_line(f"{self.customer(customer_id).name} is not at the counter yet")
                if present is None:
                    return "skipped"
            if present is None:
                assert customer_id is not None
                await self.lane.pay_by_checkin(amount, customer_id)
            else:
                await self.lane.open_sale(amount, customer_id)
                present()
            return await self.settle(wait)
        finally:
            self._script_busy = False

    def script(self, scale: float) -> list[tuple[float, Callable[[], Awaitable[Any]]]]:
        """The scripted shop: (script time in seconds x ``scale``, step)."""
        repeat_card = self.test_card(prefix="555555")
        chip_card = self.test_card(prefix="400000", service_code="201")
        wait = max(3.0, 4.0 * scale)

        def swipe(card: Any) -> Callable[[], None]:
            return lambda: self.swipe(card)

        async def network(up: bool) -> None:
            self.network(up)

        steps: list[tuple[float, Callable[[], Awaitable[Any]]]] = [
            (4, lambda: self.sale(1250, "cust-alice", swipe(self.test_card(prefix="411111")), wait)),
            (10, lambda: self.sale(420, "cust-bob", None, wait)),
            (14, lambda: self.sale(3000, None, swipe(repeat_card), wait)),
            (18, lambda: self.sale(3000, None, swipe(repeat_card), wait)),
            (22, lambda: self.sale(800, None, swipe(self.test_card(expiry="2101")), wait)),
            (26, lambda: network(False)),
            (27, lambda: self.sale(1500, None, swipe(self.test_card()), wait)),
            (30, lambda: self.sale(2200, "cust-alice", lambda: self.insert(chip_card, 2200), wait + 5.0)),
            (36, lambda: network(True)),
            (42, lambda: self.sale(999, "cust-carol", swipe(self.test_card(prefix="378282")), wait)),
        ]
        return [(at * scale, step) for at, step in steps]

    async def run_script(self, deadline: float) -> None:
        """Play the script scaled to end by ``deadline`` (``time.monotonic()``), then idle until then."""
        from posbridge.host import app as parts

        started = time.monotonic()
        duration = max(deadline - started, 0.0)
        scale = min(1.0, max(duration - 2.0, 1.0) / SCRIPT_LENGTH_S)
        scanner = self.beacon_scene(VISITS, scale, duration)
        self.lane.add_input(parts.ScannerInput("beacons", lambda: scanner, self.registry))
        for at, step in self.script(scale):
            delay = started + at - time.monotonic()
            if started + at >= deadline:
                break
            if delay > 0:
                await asyncio.sleep(delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(step(), timeout=max(deadline - time.monotonic(), 0.01))
        rest = deadline - time.monotonic()
        if rest > 0:
            await asyncio.sleep(rest)


def _default_console() -> tuple[str, int]:
    """127.0.0.1:8080 when it is free, else any free port (the demo must run on a busy desktop too)."""
    import socket

    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", 8080))
        except OSError:
            return "127.0.0.1", 0
    return "127.0.0.1", 8080


def run(args: argparse.Namespace) -> int:
    """Run the demo; returns the exit code."""
    console = parse_host_port(args.console) if args.console is not None else _default_console()
    started = time.monotonic()

    def on_line(text: str) -> None:
        if args.json:
            emit_json({"t": round(time.monotonic() - started, 2), "event": text})
        else:
            emit_line(f"[{time.monotonic() - started:6.2f}s] {text}")

    import logging

    from posbridge.protocols.logs import configure_logging

    with tempfile.TemporaryDirectory(prefix="posbridge-demo-") as temporary:
        state_dir = ensure_directory(args.state_dir or temporary, "--state-dir")
        configure_logging(logging.INFO, state_dir / "posbridge.log", stderr=False)
        deadline = started + max(args.duration, 0.0) - STOP_ALLOWANCE_S
        asyncio.run(_run_demo(state_dir, console, args.seed, deadline, on_line))
    return 0


async def _run_demo(state_dir: Path, console: tuple[str, int], seed: int, deadline: float,
                    on_line: Callable[[str], None]) -> None:
    shop = DemoShop(state_dir, console, seed, on_line)
    try:
        await shop.start()
        await shop.run_script(deadline)
    finally:
        await shop.stop()
    on_line("demo over")
