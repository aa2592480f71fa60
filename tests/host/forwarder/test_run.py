"""The running forwarder wakes on a capture, retries a deferred payment when its backoff ends, and still
polls (slowly) for captures written by another process; the poll interval is never what it waits for."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager

import pytest
from posbridge.host.forwarder import CircuitBreaker, Forwarder, ForwardReport, RetryPolicy
from posbridge.host.processor_sim import ProcessorSim
from posbridge.host.queue import DeviceKey, QueueEvent, TransactionQueue
from posbridge.protocols.types import Card, TransactionState

Sim = tuple[ProcessorSim, str]
State = TransactionState
BOUNDED_WAIT_S = 20.0
SLOW_POLL_S = 600.0


@pytest.fixture
def queue(make_queue: Callable[..., TransactionQueue]) -> TransactionQueue:
    return make_queue(clock=time.time)


def _approved(queue: TransactionQueue) -> dict[str, asyncio.Event]:
    """An event per key, set when the queue announces that key approved (keys added on first use)."""
    events: dict[str, asyncio.Event] = {}

    def on_event(event: QueueEvent) -> None:
        if event.transaction is not None and event.transaction.state is State.APPROVED:
            events.setdefault(event.transaction.key, asyncio.Event()).set()

    queue.subscribe(on_event)
    return events


async def _until_approved(events: dict[str, asyncio.Event], key: str) -> None:
    await asyncio.wait_for(events.setdefault(key, asyncio.Event()).wait(), BOUNDED_WAIT_S)


@asynccontextmanager
async def _running(forwarder: Forwarder) -> AsyncIterator[list[ForwardReport]]:
    """Run ``forwarder`` until the block ends; yields the list of its passes' reports so far, after
    its first pass has found nothing to do (so it is waiting, not about to poll)."""
    passes: list[ForwardReport] = []
    idle = asyncio.Event()
    forward_once = forwarder.forward_once

    async def counted() -> ForwardReport:
        report = await forward_once()
        passes.append(report)
        if not (report.answered or report.failed or report.deferred):
            idle.set()
        return report

    forwarder.forward_once = counted  # type: ignore[method-assign]
    stop = asyncio.Event()
    task = asyncio.create_task(forwarder.run(stop))
    try:
        await asyncio.wait_for(idle.wait(), BOUNDED_WAIT_S)
        yield passes
    finally:
        stop.set()
        await asyncio.wait_for(task, BOUNDED_WAIT_S)
        await forwarder.close()


async def test_a_capture_is_forwarded_without_waiting_for_the_poll(
    queue: TransactionQueue, pans: Iterator[str], sim: Sim
) -> None:
    processor, url = sim
    approved = _approved(queue)
    forwarder = Forwarder(queue, url, stagger_s=0.0, poll_s=SLOW_POLL_S, rng=random.Random(1))
    async with _running(forwarder) as passes:
        first = await queue.capture_async(1200, "USD", Card(next(pans), "3012", "101"), keyed=True)
        await _until_approved(approved, first.key)
        second = queue.capture(1300, "USD", Card(next(pans), "3012", "101"), keyed=True)
        await _until_approved(approved, second.key)
    assert {key: record.charges for key, record in processor.records.items()} == {first.key: 1, second.key: 1}
    assert sum(len(report.approved) for report in passes) == 2


async def test_a_deferred_payment_is_retried_when_its_backoff_ends(
    queue: TransactionQueue, pans: Iterator[str], sim: Sim
) -> None:
    processor, url = sim
    approved = _approved(queue)
    processor.set_fault("fail", count=2)
    forwarder = Forwarder(
        queue,
        url,
        stagger_s=0.0,
        poll_s=SLOW_POLL_S,
        retry=RetryPolicy(base_s=0.05, max_s=0.05),
        breaker=CircuitBreaker(failure_threshold=100),
        rng=random.Random(2),
    )
    async with _running(forwarder) as passes:
        key = queue.capture(1400, "USD", Card(next(pans), "3012", "101"), keyed=True).key
        await _until_approved(approved, key)
    assert processor.records[key].charges == 1
    assert processor.requests == 3
    assert [len(report.deferred) for report in passes if report.deferred] == [1, 1]


async def test_a_capture_by_another_process_is_found_by_the_fallback_poll(
    queue: TransactionQueue, pans: Iterator[str], sim: Sim, device_key: DeviceKey
) -> None:
    processor, url = sim
    approved = _approved(queue)
    forwarder = Forwarder(queue, url, stagger_s=0.0, poll_s=0.05, rng=random.Random(3))
    other = TransactionQueue(queue.path, device_key=device_key, clock=time.time)
    try:
        async with _running(forwarder):
            key = other.capture(1500, "USD", Card(next(pans), "3012", "101"), keyed=True).key
            await _until_approved(approved, key)
    finally:
        other.close()
    assert processor.records[key].charges == 1
