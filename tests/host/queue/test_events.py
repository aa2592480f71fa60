"""Listeners: sync callbacks, coroutine listeners on their loop, the async iterator."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from posbridge.host.queue import QueueEvent, TransactionQueue
from posbridge.protocols.types import Card, TransactionState


async def test_async_listener_runs_on_its_loop(queue: TransactionQueue, pans: Iterator[str]) -> None:
    loop = asyncio.get_running_loop()
    received: asyncio.Queue[QueueEvent] = asyncio.Queue()
    seen_on: list[asyncio.AbstractEventLoop] = []

    async def listener(event: QueueEvent) -> None:
        seen_on.append(asyncio.get_running_loop())
        await received.put(event)

    unsubscribe = queue.subscribe(listener)
    transaction = await queue.capture_async(1250, "USD", Card(next(pans), "3012", "101"), keyed=True)
    event = await asyncio.wait_for(received.get(), 5)
    assert event.kind == "transaction"
    assert event.transaction == transaction
    assert seen_on == [loop]
    unsubscribe()
    await queue.capture_async(1300, "USD", Card(next(pans), "3012", "101"), keyed=True)
    await asyncio.sleep(0.05)
    assert received.empty()


async def test_event_stream(queue: TransactionQueue, pans: Iterator[str]) -> None:
    stream = queue.events()

    async def first() -> QueueEvent:
        event: QueueEvent = await stream.__anext__()
        return event

    task = asyncio.ensure_future(first())
    await asyncio.sleep(0)
    queue.capture(1250, "USD", Card(next(pans), "3012", "101"), key="s1", keyed=True)
    event = await asyncio.wait_for(task, 5)
    assert event.transaction is not None
    assert event.transaction.state is TransactionState.CAPTURED
    await stream.aclose()


def test_failing_listener_is_not_fatal(queue: TransactionQueue, pans: Iterator[str]) -> None:
    def broken(event: QueueEvent) -> None:
        raise RuntimeError("console bug")

    queue.subscribe(broken)
    assert (
        queue.capture(1250, "USD", Card(next(pans), "3012", "101"), keyed=True).state
        is TransactionState.CAPTURED
    )
