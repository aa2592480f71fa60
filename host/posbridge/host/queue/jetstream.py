"""The fleet engine: lanes publish their outbox to NATS JetStream, a store/HQ consumer forwards.

Each lane keeps its SQLite outbox (:class:`TransactionQueue`) as the source of truth. The
publisher sends every pending row to ``<subject>.<lane>`` with ``Nats-Msg-Id`` set to the
idempotency key, so JetStream drops a second copy inside the stream's duplicate window (NATS
docs, "JetStream Model Deep Dive: Message Deduplication"); the row is marked published only
when the server's ``PubAck`` arrives, so a publish lost to a crash or a server restart is sent
again with the same id. The duplicate window is set to the offline maximum age (24 h).

A :class:`JetStreamForwarder` (one per store, or at HQ) pulls from a durable consumer with
explicit acks, opens the sealed card data with the fleet's shared device key, forwards with the
same :class:`~posbridge.host.forwarder.ProcessorClient` as a single lane (idempotency key,
lookup before re-create on redelivery), publishes the answer to ``<answers>.<lane>`` and only
then acks. Lanes apply answers from their own subject with :meth:`JetStreamQueue.apply_answers`.

Production: one leaf node per store (lanes connect to their store's leaf node, which stays up
while the WAN is down and extends JetStream to the hub), ``jetstream { sync_interval: always }``
(nats-server >= 2.10) so an acknowledged message is on disk, and file storage.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from posbridge.host.queue.rules import DAY_S
from posbridge.host.queue.sealing import DeviceKey, SealedRecord
from posbridge.host.queue.store import ProcessorAnswer, TransactionQueue
from posbridge.protocols.errors import IntegrityError, ProcessorRejected, ProcessorUnavailable, QueueError
from posbridge.protocols.types import TransactionState

log = logging.getLogger("posbridge.queue.jetstream")

ANSWERS_SUBJECT = "posbridge.answers"


async def _connect(server: str) -> Any:
    import nats

    try:
        return await nats.connect(
            servers=[server],
            reconnect_time_wait=0.2,
            max_reconnect_attempts=-1,
            connect_timeout=2,
            allow_reconnect=True,
        )
    except Exception as error:
        raise QueueError(
            f"cannot connect to NATS at {server}: {type(error).__name__}", server=server
        ) from error


async def ensure_stream(js: Any, stream: str, subject: str, duplicate_window_s: float = DAY_S) -> None:
    """Create the transaction stream (file storage, dedupe window ``duplicate_window_s``) if missing."""
    from nats.js.api import StorageType, StreamConfig

    config = StreamConfig(
        name=stream,
        subjects=[f"{subject}.>", f"{ANSWERS_SUBJECT}.>"],
        storage=StorageType.FILE,
        duplicate_window=duplicate_window_s,
    )
    try:
        await js.stream_info(stream)
    except Exception:
        await js.add_stream(config)


class JetStreamQueue(TransactionQueue):
    """A lane's queue in a fleet: the SQLite outbox plus a JetStream publisher.

    Call :meth:`connect` (or use ``async with``) before :meth:`publish_pending` / :meth:`run`.
    Rows published ``republish_after_s`` ago and still unanswered are published again with the
    same id: a duplicate for the server unless it lost them (no ``sync_interval: always``).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        server: str,
        stream: str = "POSBRIDGE",
        subject: str = "posbridge.tx",
        republish_after_s: float = 300.0,
        **options: Any,
    ) -> None:
        super().__init__(path, **options)
        self.republish_after_s = republish_after_s
        self.server = server
        self.stream = stream
        self.subject = subject
        self._nc: Any = None
        self._js: Any = None
        self._answers: Any = None

    @property
    def url(self) -> str:
        """The fleet URL of this queue."""
        return (
            f"{self.server}?outbox={self.path}&lane={self.lane}&stream={self.stream}&subject={self.subject}"
        )

    async def connect(self) -> None:
        """Connect to NATS and make sure the stream exists."""
        if self._nc is None:
            self._nc = await _connect(self.server)
            self._js = self._nc.jetstream()
            await ensure_stream(self._js, self.stream, self.subject, self.limits.max_age_s)

    async def aclose(self) -> None:
        """Drain the NATS connection and close the outbox."""
        if self._nc is not None:
            try:
                await self._nc.close()
            finally:
                self._nc = self._answers = None
        self.close()

    async def __aenter__(self) -> JetStreamQueue:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def publish_pending(self, batch: int = 512, timeout_s: float = 2.0) -> int:
        """Publish up to ``batch`` unpublished rows; mark those the server acknowledged. Returns how many."""
        await self.connect()
        pending = self.unpublished(batch, self.republish_after_s)
        if not pending:
            return 0
        subject = f"{self.subject}.{self.lane}"

        async def publish(key: str, message: bytes) -> str | None:
            try:
                await self._js.publish(
                    subject, message, timeout=timeout_s, stream=self.stream, headers={"Nats-Msg-Id": key}
                )
            except Exception as error:
                log.info(
                    "publish of %s not acknowledged (%s); it will be sent again", key, type(error).__name__
                )
                return None
            return key

        acked = [key for key in await asyncio.gather(*(publish(k, m) for k, m in pending)) if key is not None]
        if acked:
            self.mark_published(acked)
        return len(acked)

    async def apply_answers(self, timeout_s: float = 0.5, batch: int = 256) -> int:
        """Apply answers the store forwarder published for this lane; returns how many changed."""
        await self.connect()
        from nats.errors import TimeoutError as NatsTimeout

        if self._answers is None:
            self._answers = await self._js.pull_subscribe(
                f"{ANSWERS_SUBJECT}.{self.lane}", durable=f"answers-{self.lane}", stream=self.stream
            )
        try:
            messages = await self._answers.fetch(batch, timeout=timeout_s)
        except (NatsTimeout, TimeoutError):
            return 0
        answers = []
        for message in messages:
            body = json.loads(message.data)
            answers.append(
                ProcessorAnswer(
                    body["key"],
                    TransactionState(body["status"]),
                    body.get("reason"),
                    body.get("processor_ref"),
                )
            )
        changed = self.record_answers(answers, via_fleet=True)
        for message in messages:
            await message.ack()
        return len(changed)

    async def run(self, stop: asyncio.Event, poll_s: float = 0.2) -> None:
        """Publish and apply answers until ``stop`` is set."""
        while not stop.is_set():
            try:
                published = await self.publish_pending()
                await self.apply_answers(timeout_s=poll_s)
            except QueueError as error:
                log.warning("fleet link: %s", error)
                published = 0
            if not published:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=poll_s)


class JetStreamForwarder:
    """The store/HQ consumer: pulls lanes' transactions with explicit acks and forwards them.

    ``device_key`` is the fleet's shared key that opens the lanes' sealed card data.
    """

    def __init__(
        self,
        server: str,
        processor_url: str,
        device_key: DeviceKey,
        *,
        stream: str = "POSBRIDGE",
        subject: str = "posbridge.tx",
        durable: str = "posbridge-forwarder",
        concurrency: int = 32,
        timeout_s: float = 5.0,
        rng: random.Random | None = None,
    ) -> None:
        from posbridge.host.forwarder import CircuitBreaker, ProcessorClient, RetryPolicy

        self.server = server
        self.stream = stream
        self.subject = subject
        self.durable = durable
        self.device_key = device_key
        self.client = ProcessorClient(processor_url, timeout_s=timeout_s, connections=concurrency)
        self.retry = RetryPolicy()
        self.breaker = CircuitBreaker()
        self.rng = rng or random.Random()
        self.concurrency = concurrency
        self._nc: Any = None
        self._js: Any = None
        self._subscription: Any = None

    async def connect(self) -> None:
        """Connect, ensure the stream and bind the durable pull consumer (explicit acks)."""
        if self._nc is None:
            from nats.js.api import AckPolicy, ConsumerConfig

            self._nc = await _connect(self.server)
            self._js = self._nc.jetstream()
            await ensure_stream(self._js, self.stream, self.subject)
            config = ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=30.0, max_ack_pending=10_000)
            self._subscription = await self._js.pull_subscribe(
                f"{self.subject}.>", durable=self.durable, stream=self.stream, config=config
            )

    async def close(self) -> None:
        """Close the processor client and the NATS connection."""
        await self.client.close()
        if self._nc is not None:
            await self._nc.close()
            self._nc = None

    def _body(self, message: dict[str, Any]) -> dict[str, Any]:
        body = {key: message[key] for key in ("key", "amount", "currency", "lane", "source")}
        if message.get("dukpt"):
            body["dukpt"] = message["dukpt"]
        elif message.get("sealed"):
            secret = self.device_key.open_secret(
                SealedRecord.from_hex(message["sealed"]), str(message["key"])
            )
            if "account_token" in secret:
                body["account_token"] = secret["account_token"]
            else:
                body["card"] = secret
        return body

    async def _forward(self, raw: Any, gate: asyncio.Semaphore) -> ProcessorAnswer | None:
        async with gate:
            message = json.loads(raw.data)
            key = str(message["key"])
            try:
                found = await self.client.lookup(key) if raw.metadata.num_delivered > 1 else None
                answer = found or await self.client.authorize(self._body(message))
                self.breaker.record_success()
            except ProcessorUnavailable:
                self.breaker.record_failure()
                await raw.nak(delay=self.retry.delay(raw.metadata.num_delivered, self.rng))
                return None
            except ProcessorRejected as error:
                answer = ProcessorAnswer(key, TransactionState.FAILED, str(error))
            except IntegrityError:
                answer = ProcessorAnswer(
                    key,
                    TransactionState.FAILED,
                    "card data cannot be opened here (not the fleet's device key)",
                )
            payload = {
                "key": key,
                "status": answer.status.value,
                "reason": answer.reason,
                "processor_ref": answer.processor_ref,
            }
            await self._js.publish(
                f"{ANSWERS_SUBJECT}.{message['lane']}",
                json.dumps(payload).encode(),
                stream=self.stream,
                headers={"Nats-Msg-Id": f"{key}:answer"},
            )
            await raw.ack()
            return answer

    async def forward_batch(self, batch: int = 256, timeout_s: float = 0.5) -> list[ProcessorAnswer]:
        """Fetch up to ``batch`` messages, forward them, publish answers, ack. Returns the answers."""
        from nats.errors import TimeoutError as NatsTimeout

        await self.connect()
        try:
            messages = await self._subscription.fetch(batch, timeout=timeout_s)
        except (NatsTimeout, TimeoutError):
            return []
        gate = asyncio.Semaphore(self.concurrency)
        results = await asyncio.gather(*(self._forward(message, gate) for message in messages))
        return [answer for answer in results if answer is not None]

    async def run(
        self, stop: asyncio.Event, on_answer: Callable[[ProcessorAnswer], None] | None = None
    ) -> None:
        """Forward until ``stop`` is set, backing off while the circuit breaker is open."""
        while not stop.is_set():
            if not self.breaker.allow():
                await asyncio.sleep(self.breaker.seconds_until_half_open() + self.rng.uniform(0, 1.0))
                continue
            try:
                answers = await self.forward_batch()
            except Exception as error:
                log.warning("store forwarder: %s", type(error).__name__)
                await asyncio.sleep(0.5)
                continue
            for answer in answers:
                if on_answer is not None:
                    on_answer(answer)
