"""The forwarder against a real processor-sim over loopback HTTP: exactly once under faults."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import aiohttp
import pytest
from posbridge.host.customers import Customer
from posbridge.host.forwarder import CircuitBreaker, Forwarder, RetryPolicy
from posbridge.host.processor_sim import TEST_BDK, ProcessorSim
from posbridge.host.queue import OfflineLimits, TransactionQueue
from posbridge.protocols.dukpt import derive_aes_initial_key, encrypt_tracks
from posbridge.protocols.types import BeaconId, Card, CheckIn, Track, TrackFormat, TransactionState, Zone

from ..queue.conftest import ManualClock

Sim = tuple[ProcessorSim, str]
State = TransactionState


@pytest.fixture
def queue(make_queue: Callable[..., TransactionQueue], clock: ManualClock) -> TransactionQueue:
    clock.now = __import__("time").time()
    return make_queue(limits=OfflineLimits(10**7, 10**9, 10**5))


def _fill(queue: TransactionQueue, pans: Iterator[str], count: int) -> list[str]:
    return [
        queue.capture(1000 + i, "USD", Card(next(pans), "3012", "101"), keyed=True).key for i in range(count)
    ]


def _forwarder(queue: TransactionQueue, url: str, **options: object) -> Forwarder:
    settings: dict[str, object] = {
        "stagger_s": 0.0,
        "lease_s": 0.0,
        "rng": random.Random(1),
        "retry": RetryPolicy(base_s=0.0, max_s=0.0),
    }
    settings.update(options)
    return Forwarder(queue, url, **settings)  # type: ignore[arg-type]


def _charges(sim: ProcessorSim) -> dict[str, int]:
    return {key: record.charges for key, record in sim.records.items()}


async def test_drain_approves_each_once(queue: TransactionQueue, pans: Iterator[str], sim: Sim) -> None:
    processor, url = sim
    keys = _fill(queue, pans, 40)
    async with _forwarder(queue, url) as forwarder:
        report = await forwarder.drain()
    assert sorted(report.approved) == sorted(keys)
    assert _charges(processor) == dict.fromkeys(keys, 1)
    assert all(t.state is State.APPROVED and t.processor_ref for t in queue.list())
    assert processor.requests == 40


@pytest.mark.parametrize("mode", ["timeout", "drop", "fail"])
async def test_unknown_outcome_is_looked_up_not_recreated(
    mode: str, queue: TransactionQueue, pans: Iterator[str], sim: Sim
) -> None:
    processor, url = sim
    keys = _fill(queue, pans, 6)
    processor.set_fault(mode, count=6, delay_s=1.0)
    async with _forwarder(queue, url, timeout_s=0.3, breaker=CircuitBreaker(100)) as forwarder:
        first = await forwarder.forward_once()
        assert sorted(first.deferred) == sorted(keys)
        assert all(t.state is State.FORWARDING for t in queue.list())
        second = await forwarder.drain()
    assert sorted(second.approved) == sorted(keys)
    assert _charges(processor) == dict.fromkeys(keys, 1)
    if mode != "fail":
        assert processor.requests == 6


async def test_answer_sent_twice_is_applied_once(
    queue: TransactionQueue, pans: Iterator[str], sim: Sim
) -> None:
    processor, url = sim
    keys = _fill(queue, pans, 3)
    processor.set_fault("twice")
    async with _forwarder(queue, url) as forwarder:
        report = await forwarder.drain()
    assert sorted(report.approved) == sorted(keys)
    assert [len(queue.audit(key)) for key in keys] == [3, 3, 3]


async def test_slow_processor_still_answers(queue: TransactionQueue, pans: Iterator[str], sim: Sim) -> None:
    processor, url = sim
    _fill(queue, pans, 4)
    processor.set_fault("slow", delay_s=0.05)
    async with _forwarder(queue, url) as forwarder:
        assert len((await forwarder.drain()).approved) == 4


async def test_circuit_opens_and_recovers(
    queue: TransactionQueue, pans: Iterator[str], sim: Sim, clock: ManualClock
) -> None:
    processor, url = sim
    _fill(queue, pans, 10)
    processor.set_fault("fail")
    breaker = CircuitBreaker(failure_threshold=3, reset_after_s=60.0, clock=clock)
    async with _forwarder(queue, url, breaker=breaker, concurrency=1, batch=10) as forwarder:
        report = await forwarder.forward_once()
        assert breaker.state == "open"
        assert not forwarder.online
        assert len(report.deferred) == 10
        assert processor.requests == 3
        assert (await forwarder.forward_once()).deferred == []
        processor.set_fault("ok")
        clock.advance(61)
        assert breaker.state == "half_open"
        report = await forwarder.drain()
    assert len(report.approved) == 10
    assert breaker.state == "closed"


async def test_decline_rules(queue: TransactionQueue, pans: Iterator[str], sim: Sim) -> None:
    processor, url = sim
    processor.decline_amounts.add(1313)
    declined = queue.capture(1313, "USD", Card(next(pans), "3012", "101"), keyed=True).key
    approved = queue.capture(1314, "USD", Card(next(pans), "3012", "101"), keyed=True).key
    async with _forwarder(queue, url) as forwarder:
        await forwarder.drain()
    assert queue.get(declined).state is State.DECLINED
    assert queue.get(declined).reason == "do not honor"
    assert queue.get(approved).state is State.APPROVED
    assert _charges(processor)[declined] == 0


async def test_dukpt_payload_is_decrypted_by_the_processor(
    queue: TransactionQueue, pans: Iterator[str], sim: Sim
) -> None:
    processor, url = sim
    pan = next(pans)
    card = Card(pan, "3012", "101")
    ksn = bytes.fromhex("123456789012345600000001")
    initial_key = derive_aes_initial_key(TEST_BDK, ksn[:8])
    tracks = (Track(2, TrackFormat.BCD, f"{pan}=3012101000"),)
    good = queue.capture(500, "USD", encrypt_tracks(initial_key, ksn, tracks, card.masked), key="good")
    wrong_key = derive_aes_initial_key(bytes(16), ksn[:8])
    bad = queue.capture(501, "USD", encrypt_tracks(wrong_key, ksn, tracks, card.masked), key="bad")
    async with _forwarder(queue, url) as forwarder:
        await forwarder.drain()
    assert queue.get(good.key).state is State.APPROVED
    assert queue.get(bad.key).state is State.DECLINED
    assert queue.get(bad.key).reason == "cannot decrypt card data"
    assert processor.records["good"].masked_pan == card.masked.masked_pan


@pytest.mark.parametrize("present", ["track1", "track2", "both"])
async def test_dukpt_payload_with_any_track_present_is_approved(
    present: str, queue: TransactionQueue, pans: Iterator[str], sim: Sim
) -> None:
    processor, url = sim
    pan = next(pans)
    card = Card(pan, "3012", "101")
    ksn = bytes.fromhex("123456789012345600000002")
    track1 = Track(1, TrackFormat.ALPHA, f"B{pan}^TEST/CARDHOLDER^3012101000000")
    track2 = Track(2, TrackFormat.BCD, f"{pan}=3012101000")
    tracks = {"track1": (track1,), "track2": (track2,), "both": (track1, track2)}[present]
    initial_key = derive_aes_initial_key(TEST_BDK, ksn[:8])
    expired_track1 = Track(1, TrackFormat.ALPHA, f"B{next(pans)}^TEST/CARDHOLDER^1901101000000")
    queue.capture(700, "USD", encrypt_tracks(initial_key, ksn, tracks, card.masked), key="swipe")
    queue.capture(
        701, "USD", encrypt_tracks(initial_key, ksn[:-1] + b"\x03", (expired_track1,), card.masked), key="old"
    )
    async with _forwarder(queue, url) as forwarder:
        await forwarder.drain()
    assert queue.get("swipe").state is State.APPROVED
    assert processor.records["swipe"].masked_pan == card.masked.masked_pan
    assert (queue.get("old").state, queue.get("old").reason) == (State.DECLINED, "expired card")


async def test_pay_by_check_in_charges_the_account(queue: TransactionQueue, sim: Sim) -> None:
    processor, url = sim
    beacon = BeaconId("ibeacon:f7826da6-4fa2-4e98-8024-bc5b71e0893e:1:7")
    queue.record_presence(CheckIn(t=0.0, beacon=beacon, customer="c1", zone=Zone.COUNTER, distance_m=0.3))
    queue.capture(2500, "USD", Customer("c1", "Alice", (), "tok_alice"), key="s1")
    queue.capture(9000, "USD", Customer("c1", "Alice", (), "tok_alice"), key="s2")
    async with _forwarder(queue, url) as forwarder:
        await forwarder.drain()
    assert queue.get("s1").state is State.APPROVED
    assert (queue.get("s2").state, queue.get("s2").reason) == (State.DECLINED, "insufficient funds")
    assert processor.accounts["tok_alice"] == 7_500


async def test_processor_is_idempotent_on_the_key(sim: Sim, pans: Iterator[str]) -> None:
    processor, url = sim
    body = {"key": "k", "amount": 100, "currency": "USD", "card": {"pan": next(pans), "expiry": "3012"}}
    async with aiohttp.ClientSession() as session:
        answers = []
        for _ in range(3):
            async with session.post(
                f"{url}/v1/authorizations", json=body, headers={"Idempotency-Key": "k"}
            ) as r:
                answers.append(await r.json())
        async with session.post(
            f"{url}/v1/authorizations", json={**body, "amount": 101}, headers={"Idempotency-Key": "k"}
        ) as r:
            assert r.status == 409
        async with session.post(f"{url}/v1/authorizations", json=body, headers={"Idempotency-Key": "x"}) as r:
            assert r.status == 400
        async with session.get(f"{url}/v1/authorizations/k") as r:
            assert (await r.json())["status"] == "approved"
        async with session.get(f"{url}/v1/authorizations/none") as r:
            assert r.status == 404
        async with session.post(f"{url}/v1/admin/faults", json={"mode": "explode"}) as r:
            assert r.status == 400
    assert [a["replayed"] for a in answers] == [False, True, True]
    assert processor.records["k"].charges == 1
    ledger = processor.ledger()
    assert ledger["charged_total"] == 100
    assert body["card"]["pan"] not in str(ledger)  # type: ignore[index]


async def test_rejected_request_fails_and_keeps_card_data_for_retry(
    queue: TransactionQueue, pans: Iterator[str], sim: Sim
) -> None:
    _processor, url = sim
    key = queue.capture(100, "USD", Card(next(pans), "3012", "101"), keyed=True).key
    async with aiohttp.ClientSession() as session:
        body = {"key": key, "amount": 999, "currency": "USD", "card": {"pan": next(pans), "expiry": "3012"}}
        await session.post(f"{url}/v1/authorizations", json=body, headers={"Idempotency-Key": key})
    async with _forwarder(queue, url) as forwarder:
        report = await forwarder.drain()
        assert report.failed == [key]
        assert "HTTP 409" in (queue.get(key).reason or "")
        assert queue.retry() == [key]
        assert queue.get(key).state is State.CAPTURED


def test_backoff_is_bounded_and_grows() -> None:
    policy = RetryPolicy(base_s=0.5, factor=2.0, max_s=8.0)
    rng = random.Random(3)
    for attempt in range(1, 12):
        ceiling = min(8.0, 0.5 * 2 ** (attempt - 1))
        delays = [policy.delay(attempt, rng) for _ in range(50)]
        assert all(0.0 <= delay <= ceiling for delay in delays)
        assert max(delays) > ceiling / 2
