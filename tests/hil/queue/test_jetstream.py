"""The fleet engine against a real nats-server with JetStream (file storage, temporary store).

Duplicate publishes are dropped by the server (``Nats-Msg-Id`` = idempotency key); a server
killed with SIGKILL and restarted mid-stream loses nothing: the lane's SQLite outbox marks a row
sent only on the server's ack and sends everything else again with the same id.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
from pathlib import Path

import nats
from posbridge.host.processor_sim import ProcessorSim
from posbridge.host.queue import DeviceKey, OfflineLimits, RiskRules, open_queue
from posbridge.host.queue.jetstream import JetStreamForwarder, JetStreamQueue
from posbridge.protocols.cards import generate_test_pan
from posbridge.protocols.types import Card, TransactionState

from .conftest import NatsServer

DEVICE_KEY = DeviceKey(bytes(range(2, 34)))
LIMITS = OfflineLimits(10**7, 10**12, 10**6)


def _lane(nats_server: NatsServer, path: Path, lane: str = "lane-1") -> JetStreamQueue:
    queue = open_queue(
        f"{nats_server.url}?outbox={path}&lane={lane}",
        device_key=DEVICE_KEY,
        limits=LIMITS,
        rules=RiskRules(velocity_max=10**6),
    )
    assert isinstance(queue, JetStreamQueue)
    return queue


def _fill(queue: JetStreamQueue, count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [
        queue.capture(
            100 + i, "USD", Card(generate_test_pan(rng, prefix="411111"), "3012", "101"), keyed=True
        ).key
        for i in range(count)
    ]


async def _stream_messages(url: str, stream: str = "POSBRIDGE") -> int:
    connection = await nats.connect(url)
    try:
        info = await connection.jetstream().stream_info(stream)
        return int(info.state.messages)
    finally:
        await connection.close()


async def test_duplicate_publishes_are_deduped(nats_server: NatsServer, tmp_path: Path) -> None:
    queue = _lane(nats_server, tmp_path / "lane.db")
    keys = _fill(queue, 50, 1)
    async with queue:
        assert await queue.publish_pending() == 50
        assert await queue.publish_pending() == 0
        raw = sqlite3.connect(queue.path)
        raw.execute("UPDATE transactions SET published_at=NULL")
        raw.commit()
        raw.close()
        assert queue.status().unpublished == 50
        assert await queue.publish_pending() == 50
        assert await _stream_messages(nats_server.url) == 50
        message = dict(queue.unpublished())
        assert message == {}
        ack = await queue._js.publish("posbridge.tx.lane-1", b"{}", headers={"Nats-Msg-Id": keys[0]})
        assert ack.duplicate
    assert await _stream_messages(nats_server.url) == 50


async def test_server_killed_and_restarted_mid_stream_loses_nothing(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    queue = _lane(nats_server, tmp_path / "lane.db")
    keys = _fill(queue, 800, 2)
    processor = ProcessorSim()
    url = await processor.start()
    forwarder = JetStreamForwarder(nats_server.url, url, DEVICE_KEY)
    restarted = False
    async with queue:
        published = 0
        for _ in range(400):
            published += await queue.publish_pending(batch=100, timeout_s=1.0)
            if published >= 300 and not restarted:
                nats_server.kill()
                await asyncio.sleep(0.3)
                nats_server.start()
                restarted = True
            if queue.status().unpublished == 0:
                break
        assert restarted
        assert queue.status().unpublished == 0
        assert await _stream_messages(nats_server.url) == 800
        answered = 0
        for _ in range(200):
            answered += len(await forwarder.forward_batch(batch=500))
            await queue.apply_answers()
            if answered >= 800 and not queue.list(states=["captured"]):
                break
        await forwarder.close()
        assert {t.state for t in queue.list()} == {TransactionState.APPROVED}
    await processor.stop()
    assert set(processor.records) == set(keys)
    assert all(record.charges == 1 for record in processor.records.values())


async def test_store_forwarder_without_the_fleet_key_fails_the_payment(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    queue = _lane(nats_server, tmp_path / "lane.db")
    [key] = _fill(queue, 1, 3)
    processor = ProcessorSim()
    url = await processor.start()
    stranger = JetStreamForwarder(nats_server.url, url, DeviceKey.generate())
    async with queue:
        assert await queue.publish_pending() == 1
        answers = await stranger.forward_batch()
        assert [(answer.key, answer.status) for answer in answers] == [(key, TransactionState.FAILED)]
        assert await queue.apply_answers() == 1
        assert queue.get(key).state is TransactionState.FAILED
        await stranger.close()
    await processor.stop()
    assert processor.records == {}
