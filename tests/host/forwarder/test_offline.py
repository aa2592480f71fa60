"""Offline for a simulated day: limits hold, everything within them is forwarded exactly once when the
processor returns, and payments older than the 24 h maximum age are reported as expired."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

from posbridge.host.forwarder import CircuitBreaker, Forwarder
from posbridge.host.processor_sim import ProcessorSim
from posbridge.host.queue import AlertKind, OfflineLimits, QueueEvent, TransactionQueue
from posbridge.protocols.errors import CaptureRefused
from posbridge.protocols.types import Card, TransactionState

from ..queue.conftest import ManualClock

State = TransactionState
TICK_S = 600.0


async def test_processor_down_for_a_day(
    make_queue: Callable[..., TransactionQueue],
    clock: ManualClock,
    pans: Iterator[str],
    sim: tuple[ProcessorSim, str],
) -> None:
    processor, url = sim
    limits = OfflineLimits(
        max_transaction_amount=20_000, max_total_amount=600_000, max_count=80, max_age_s=24 * 3600.0
    )
    queue = make_queue(limits=limits)
    alerts: list[QueueEvent] = []
    queue.subscribe(lambda event: alerts.append(event) if event.kind == "alert" else None)
    rng = random.Random(11)
    processor.set_fault("fail")
    forwarder = Forwarder(
        queue,
        url,
        stagger_s=0.0,
        rng=rng,
        breaker=CircuitBreaker(failure_threshold=3, reset_after_s=30.0, clock=clock),
    )
    stored: dict[str, int] = {}
    refusals: list[str] = []
    expired: dict[str, float] = {}
    for tick in range(int(25 * 3600 / TICK_S)):
        amount = rng.choice([800, 1500, 4200, 9900, 25_000])
        key = f"t{tick:03d}"
        try:
            queue.capture(amount, "USD", Card(next(pans), "3012", "101"), key=key, keyed=True)
            stored[key] = tick
        except CaptureRefused as refusal:
            refusals.append(refusal.reason)
        report = await forwarder.forward_once()
        assert report.answered == 0
        expired.update((t.key, clock.now - t.created_at) for t in report.expired)
        clock.advance(TICK_S)

    status = queue.offline_status()
    assert status.count == len(stored) - len(expired)
    assert status.count <= limits.max_count
    assert status.total_amount <= limits.max_total_amount
    assert any("per payment" in reason for reason in refusals)
    assert any("offline total" in reason or "already held offline" in reason for reason in refusals)
    assert all(t.state is State.REFUSED for t in queue.list() if t.key not in stored)
    assert processor.records == {}

    processor.set_fault("ok")
    clock.advance(60.0)
    report = await forwarder.drain()
    await forwarder.close()

    expired.update((t.key, clock.now - t.created_at) for t in report.expired)
    too_old = {
        key
        for key, tick in stored.items()
        if clock.now - (1_795_000_000.0 + tick * TICK_S) > limits.max_age_s
    }
    assert too_old
    assert set(expired) == too_old
    assert all(age > limits.max_age_s for age in expired.values())
    assert set(report.approved) == set(stored) - too_old
    assert {key for key, record in processor.records.items() if record.charges} == set(stored) - too_old
    assert all(record.charges == 1 for record in processor.records.values())
    for key in too_old:
        transaction = queue.get(key)
        assert transaction.state is State.FAILED
        assert transaction.reason is not None
        assert transaction.reason.startswith("expired")
    expired_alerts = {e.alert.key for e in alerts if e.alert and e.alert.kind is AlertKind.EXPIRED_OFFLINE}
    assert expired_alerts == too_old
    assert queue.offline_status().count == 0
    again = await Forwarder(queue, url, stagger_s=0.0).drain()
    assert again.answered == 0
    assert all(record.charges <= 1 for record in processor.records.values())
