"""The forwarder: hands queued payments to the processor over HTTP/JSON, exactly once (issue 7, §7).

Exactly once comes from three rules working together:

1. A payment is marked ``forwarding`` durably before its request leaves
   (:meth:`TransactionQueue.claim_for_forwarding`), and the idempotency key made at capture is
   sent on every request (``Idempotency-Key`` header and body), so the processor can dedupe.
2. After an unknown outcome (timeout, dropped connection, 5xx, a crash of this process) the
   forwarder first asks for the processor's record (``GET /v1/authorizations/{key}``) and only
   re-creates the authorization when the processor has none.
3. Answers are applied through the lifecycle state machine; an answer delivered twice is
   applied once.

The running forwarder (:meth:`Forwarder.run`) wakes as soon as the queue announces a capture
(its ``"transaction"`` events for payments in state ``captured``, which also cover a retry), and
otherwise when the earliest deferred payment falls due; the poll interval is only a slow
fallback for captures written by another process and for leases left by a crashed one.

Failures back off exponentially with full jitter (AWS Architecture Blog, "Exponential Backoff
and Jitter"); a circuit breaker (closed -> open after ``failure_threshold`` consecutive
failures -> half-open after ``reset_after_s``) stops hammering a processor that is down; and
reconnects are staggered by a random delay so a fleet of lanes does not return at once. The HTTP
API is the one of :mod:`posbridge.host.processor_sim`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from posbridge.host.queue import OutboundPayment, ProcessorAnswer, QueueEvent, TransactionQueue
from posbridge.protocols.errors import ProcessorRejected, ProcessorUnavailable, UsageError
from posbridge.protocols.types import Transaction, TransactionState

log = logging.getLogger("posbridge.forwarder")


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter: attempt n waits uniform(0, min(max_s, base_s * factor**n)) s."""

    base_s: float = 0.5
    factor: float = 2.0
    max_s: float = 60.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before attempt number ``attempt`` (1 = the first retry)."""
        ceiling = min(self.max_s, self.base_s * self.factor ** max(attempt - 1, 0))
        return rng.uniform(0.0, ceiling)


class CircuitBreaker:
    """Closed -> open after ``failure_threshold`` consecutive failures -> half-open after ``reset_after_s``.

    ``clock`` is a monotonic time in seconds (injectable).
    """

    def __init__(
        self,
        failure_threshold: int = 5,
        reset_after_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.reset_after_s = reset_after_s
        self.clock = clock
        self.failures = 0
        self.opened_at: float | None = None

    @property
    def state(self) -> str:
        """``closed``, ``open`` or ``half_open``."""
        if self.opened_at is None:
            return "closed"
        return "half_open" if self.clock() - self.opened_at >= self.reset_after_s else "open"

    def allow(self) -> bool:
        """True when a request may be sent now."""
        return self.state != "open"

    def seconds_until_half_open(self) -> float:
        """How long until the next trial request may go (0 when closed or half-open)."""
        if self.opened_at is None:
            return 0.0
        return max(0.0, self.reset_after_s - (self.clock() - self.opened_at))

    def record_success(self) -> None:
        """A request succeeded: close the circuit."""
        self.failures, self.opened_at = 0, None

    def record_failure(self) -> None:
        """A request failed: open the circuit after enough consecutive failures (or a failed trial)."""
        self.failures += 1
        if self.failures >= self.failure_threshold or self.state == "half_open":
            self.opened_at = self.clock()


@dataclass
class ForwardReport:
    """What one forwarding pass did: keys by outcome; ``expired`` are payments held too long;
    ``retry_in_s`` is the shortest backoff among the deferred payments (None when none was deferred)."""

    approved: list[str] = field(default_factory=list)
    declined: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)
    expired: list[Transaction] = field(default_factory=list)
    retry_in_s: float | None = None

    @property
    def answered(self) -> int:
        """How many payments the processor answered."""
        return len(self.approved) + len(self.declined)

    def merge(self, other: ForwardReport) -> None:
        """Add another pass's outcome to this one."""
        self.approved += other.approved
        self.declined += other.declined
        self.failed += other.failed
        self.deferred += other.deferred
        self.expired += other.expired
        if other.retry_in_s is not None:
            self.retry_in_s = (
                other.retry_in_s if self.retry_in_s is None else min(self.retry_in_s, other.retry_in_s)
            )

    def to_json(self) -> dict[str, Any]:
        """Counts as a JSON-ready dict (expired keys listed)."""
        return {
            "approved": len(self.approved),
            "declined": len(self.declined),
            "failed": len(self.failed),
            "deferred": len(self.deferred),
            "expired": [t.key for t in self.expired],
        }


_EXPIRED = ProcessorUnavailable("held offline too long", sent=False)

_STATUSES = {"approved": TransactionState.APPROVED, "declined": TransactionState.DECLINED}


def _answer_from_json(key: str, text: str) -> ProcessorAnswer:
    """Parse a processor answer; several identical JSON lines (an answer sent twice) count as one."""
    answers = []
    for line in text.splitlines():
        if line.strip():
            try:
                answers.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise ProcessorRejected("the processor's answer is not JSON", key=key) from error
    if not answers or any(answer != answers[0] for answer in answers):
        raise ProcessorRejected("the processor's answer is empty or contradicts itself", key=key)
    answer = answers[0]
    if answer.get("key") != key or answer.get("status") not in _STATUSES:
        raise ProcessorRejected("the processor answered for another key or with an unknown status", key=key)
    return ProcessorAnswer(
        key, _STATUSES[answer["status"]], answer.get("reason"), answer.get("processor_ref")
    )


class ProcessorClient:
    """HTTP/JSON client for the processor API (see :mod:`posbridge.host.processor_sim`)."""

    def __init__(self, base_url: str, *, timeout_s: float = 5.0, connections: int = 32) -> None:
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise UsageError(f"a processor URL is http(s)://HOST[:PORT], got {base_url}", url=base_url)
        if connections < 1:
            raise UsageError(f"at least one connection is needed, got {connections}", connections=connections)
        self.base_url = base_url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.connections = connections
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self.timeout, connector=aiohttp.TCPConnector(limit=self.connections)
            )
        return self._session

    async def close(self) -> None:
        """Close the connection pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def authorize(self, body: dict[str, Any]) -> ProcessorAnswer:
        """POST an authorization; :class:`ProcessorUnavailable` on an unknown outcome (``sent`` says
        whether the request may have reached the processor), :class:`ProcessorRejected` on 4xx."""
        key = str(body["key"])
        try:
            async with self._client().post(
                f"{self.base_url}/v1/authorizations", json=body, headers={"Idempotency-Key": key}
            ) as response:
                text = await response.text()
                status = response.status
        except aiohttp.ClientConnectorError as error:
            raise ProcessorUnavailable("cannot connect to the processor", key=key, sent=False) from error
        except (aiohttp.ClientError, TimeoutError) as error:
            raise ProcessorUnavailable(
                f"no answer from the processor ({type(error).__name__})", key=key, sent=True
            ) from error
        if status >= 500:
            raise ProcessorUnavailable(f"the processor answered HTTP {status}", key=key, sent=True)
        if status != 200:
            raise ProcessorRejected(
                f"the processor refused the request (HTTP {status})", key=key, status=status
            )
        return _answer_from_json(key, text)

    async def lookup(self, key: str) -> ProcessorAnswer | None:
        """The processor's record for ``key``, or ``None`` if it has none."""
        try:
            async with self._client().get(f"{self.base_url}/v1/authorizations/{key}") as response:
                text = await response.text()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as error:
            raise ProcessorUnavailable(
                f"cannot look up {key} at the processor ({type(error).__name__})", key=key, sent=False
            ) from error
        if status == 404:
            return None
        if status != 200:
            raise ProcessorUnavailable(f"processor lookup answered HTTP {status}", key=key, sent=False)
        return _answer_from_json(key, text)


class Forwarder:
    """Forwards a :class:`TransactionQueue` to a processor, ``concurrency`` requests at a time.

    ``batch`` payments are claimed per commit. ``stagger_s`` bounds the random delay before the
    first pass and before each reconnect after the circuit opened. :meth:`run` wakes on each new
    capture; ``poll_s`` is only its fallback interval (captures by another process, expired
    leases). ``lease_s`` is how long a claimed payment is left to this forwarder before a later
    pass (or another forwarder, after a crash) looks it up at the processor. All times in seconds.
    """

    def __init__(
        self,
        queue: TransactionQueue,
        processor_url: str,
        *,
        concurrency: int = 32,
        batch: int = 128,
        timeout_s: float = 5.0,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        stagger_s: float = 1.0,
        poll_s: float = 1.0,
        lease_s: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        self.queue = queue
        self.client = ProcessorClient(processor_url, timeout_s=timeout_s, connections=concurrency)
        self.concurrency = concurrency
        self.batch = batch
        self.retry = retry or RetryPolicy()
        self.breaker = breaker or CircuitBreaker()
        self.stagger_s = stagger_s
        self.poll_s = poll_s
        self.lease_s = lease_s
        self.rng = rng or random.Random()

    @property
    def online(self) -> bool:
        """False while requests to the processor are failing (the console shows "offline")."""
        return self.breaker.failures == 0 and self.breaker.state == "closed"

    async def close(self) -> None:
        """Close the HTTP connection pool."""
        await self.client.close()

    aclose = close

    async def __aenter__(self) -> Forwarder:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _send(
        self, payment: OutboundPayment, gate: asyncio.Semaphore
    ) -> ProcessorAnswer | ProcessorUnavailable | ProcessorRejected:
        async with gate:
            if not self.breaker.allow():
                return ProcessorUnavailable("circuit open", key=payment.key, sent=False)
            try:
                if payment.lookup_first:
                    found = await self.client.lookup(payment.key)
                    if found is not None:
                        self.breaker.record_success()
                        return found
                    if self.queue.clock() - payment.created_at > self.queue.limits.max_age_s:
                        return _EXPIRED
                answer = await self.client.authorize(payment.request_body())
            except ProcessorUnavailable as error:
                self.breaker.record_failure()
                return error
            except ProcessorRejected as error:
                self.breaker.record_success()
                return error
            self.breaker.record_success()
            return answer

    async def forward_once(self) -> ForwardReport:
        """One pass: report expired payments, drop presence past its retention, claim a batch, send it,
        record the answers."""
        report = ForwardReport(expired=self.queue.expire_overdue())
        self.queue.purge_presence()
        if not self.breaker.allow():
            return report
        claimed = self.queue.claim_for_forwarding(self.batch, self.lease_s)
        if not claimed:
            return report
        gate = asyncio.Semaphore(self.concurrency)
        results = await asyncio.gather(*(self._send(payment, gate) for payment in claimed))
        answers: list[ProcessorAnswer] = []
        deferred: dict[float, list[str]] = {}
        expired: list[str] = []
        for payment, result in zip(claimed, results, strict=True):
            if result is _EXPIRED:
                expired.append(payment.key)
            elif isinstance(result, ProcessorAnswer):
                answers.append(result)
            elif isinstance(result, ProcessorRejected):
                answers.append(ProcessorAnswer(payment.key, TransactionState.FAILED, str(result)))
            else:
                delay = round(self.retry.delay(payment.attempts, self.rng), 3)
                deferred.setdefault(delay, []).append(payment.key)
                report.deferred.append(payment.key)
        self.queue.record_answers(answers)
        report.expired += self.queue.mark_expired(expired)
        for delay, keys in deferred.items():
            self.queue.defer(keys, delay)
        if deferred:
            report.retry_in_s = min(deferred)
        for answer in answers:
            {TransactionState.APPROVED: report.approved, TransactionState.DECLINED: report.declined}.get(
                answer.status, report.failed
            ).append(answer.key)
        return report

    async def drain(self, max_passes: int = 1_000_000) -> ForwardReport:
        """Forward until nothing is due now (deferred payments stay for later passes)."""
        total = ForwardReport()
        for _ in range(max_passes):
            report = await self.forward_once()
            total.merge(report)
            if not (report.answered or report.failed) or not self.breaker.allow():
                break
        return total

    async def run(
        self, stop: asyncio.Event | None = None, on_report: Callable[[ForwardReport], None] | None = None
    ) -> None:
        """Forward until ``stop`` is set: wake on each capture (or when a deferred payment falls due,
        or every ``poll_s`` at the latest), back off while the circuit is open, stagger reconnects."""
        stop = stop or asyncio.Event()
        captured = asyncio.Event()

        def on_event(event: QueueEvent) -> None:
            if event.transaction is not None and event.transaction.state is TransactionState.CAPTURED:
                captured.set()

        unsubscribe = self.queue.subscribe(on_event)
        loop = asyncio.get_running_loop()
        retry_at: float | None = None
        try:
            await self._sleep(stop, self.rng.uniform(0.0, self.stagger_s))
            while not stop.is_set():
                captured.clear()
                if retry_at is not None and loop.time() >= retry_at:
                    retry_at = None
                report = await self.forward_once()
                if report.retry_in_s is not None:
                    due = loop.time() + report.retry_in_s
                    retry_at = due if retry_at is None else min(retry_at, due)
                if on_report is not None and (
                    report.answered or report.failed or report.expired or report.deferred
                ):
                    on_report(report)
                if not self.breaker.allow():
                    wait = self.breaker.seconds_until_half_open() + self.rng.uniform(0.0, self.stagger_s)
                    log.warning("processor unavailable; circuit open, next try in %.1f s", wait)
                    await self._sleep(stop, wait)
                elif not (report.answered or report.failed):
                    wait = self.poll_s if retry_at is None else min(self.poll_s, retry_at - loop.time())
                    await self._wait_for_capture(stop, captured, max(wait, 0.0))
        finally:
            unsubscribe()

    @staticmethod
    async def _sleep(stop: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=seconds)

    @staticmethod
    async def _wait_for_capture(stop: asyncio.Event, captured: asyncio.Event, seconds: float) -> None:
        """Return when ``stop`` or ``captured`` is set, or after ``seconds``."""
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(captured.wait())]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
