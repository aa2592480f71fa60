"""Crash safety: kill -9 during capture and during forwarding, over 200 times in all.

Each round forks a child that works on the real database file (and, for forwarding, against
``posbridge processor-sim`` in its own process) and kills it with SIGKILL at a random moment.
The parent then checks the invariants: every capture the child acknowledged (it writes the key
to a pipe only after ``capture`` returned, i.e. after the commit) is present exactly once; the
next child resends everything unacknowledged -- and some acknowledged ones -- with the same keys;
and at the end the processor has charged every transaction exactly once.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import select
import signal
import sqlite3
import time
import urllib.request
from pathlib import Path
from typing import Any

from posbridge.host.forwarder import Forwarder, RetryPolicy
from posbridge.host.queue import CaptureRequest, DeviceKey, OfflineLimits, RiskRules, TransactionQueue
from posbridge.protocols.cards import generate_test_pan
from posbridge.protocols.types import Card, TransactionState

from .conftest import ProcessorSimProcess, child_exit

CAPTURE_KILLS = 150
FORWARD_KILLS = 60
DEVICE_KEY = DeviceKey(bytes(range(1, 33)))
LIMITS = OfflineLimits(10**7, 10**12, 10**6)
RULES = RiskRules(velocity_max=10**6)


def _open(path: Path) -> TransactionQueue:
    return TransactionQueue(path, device_key=DEVICE_KEY, limits=LIMITS, rules=RULES)


def _requests(count: int, rng: random.Random) -> list[dict[str, Any]]:
    pans: set[str] = set()
    while len(pans) < count:
        pans.add(generate_test_pan(rng, prefix="400000"))
    return [
        {"key": f"c{i:05d}", "amount": 100 + i, "currency": "USD", "track2": f"{pan}=3012101000{i % 10}"}
        for i, pan in enumerate(sorted(pans))
    ]


def _fork(work: Any, *args: Any) -> tuple[int, int]:
    """Fork a child running ``work(*args, ack_fd)``; returns (pid, read end of its ack pipe)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        try:
            work(*args, write_end)
            child_exit(0)
        except BaseException:
            child_exit(3)
    os.close(write_end)
    return pid, read_end


def _kill_and_collect(pid: int, read_end: int, after_acks: int | None, extra_s: float = 0.0) -> list[str]:
    """Wait until the child acknowledged ``after_acks`` items (plus ``extra_s``), kill -9 it, and
    return every acknowledgement it wrote; ``after_acks=None`` lets it finish."""
    received = b""
    if after_acks is not None:
        deadline = time.monotonic() + 30.0
        while received.count(b"\n") < after_acks and time.monotonic() < deadline:
            ready, _, _ = select.select([read_end], [], [], 0.5)
            if ready:
                chunk = os.read(read_end, 65536)
                if not chunk:
                    break
                received += chunk
        time.sleep(extra_s)
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    if after_acks is None:
        assert os.WIFEXITED(status)
        assert os.WEXITSTATUS(status) == 0
    while chunk := os.read(read_end, 65536):
        received += chunk
    os.close(read_end)
    return [line for line in received.decode().split("\n")[:-1] if line]


def _capture_child(path: Path, records: list[dict[str, Any]], ack_fd: int) -> None:
    queue = _open(path)
    for record in records:
        transaction = queue.capture_request(CaptureRequest.from_json(record))
        os.write(ack_fd, f"{transaction.key}\n".encode())


def _stored(path: Path) -> dict[str, int]:
    db = sqlite3.connect(path)
    try:
        if db.execute("SELECT 1 FROM sqlite_master WHERE name='transactions'").fetchone() is None:
            return {}
        rows = db.execute("SELECT key, amount FROM transactions").fetchall()
        assert db.execute("PRAGMA quick_check").fetchone() == ("ok",)
    finally:
        db.close()
    stored = dict(rows)
    assert len(stored) == len(rows)
    return stored


def test_kill_9_during_capture(tmp_path: Path) -> None:
    rng = random.Random(20261126)
    path = tmp_path / "lane.db"
    records = _requests(1500, rng)
    amounts = {record["key"]: record["amount"] for record in records}
    acknowledged: set[str] = set()
    pans = [record["track2"].split("=")[0] for record in records]
    wal_scans: list[int] = []
    interrupted = 0
    for _ in range(CAPTURE_KILLS):
        resend = [r for r in records if r["key"] in acknowledged]
        batch = [r for r in records if r["key"] not in acknowledged]
        for again in rng.sample(resend, min(3, len(resend))):
            batch.insert(rng.randint(0, 6), again)
        pid, read_end = _fork(_capture_child, path, batch)
        before = len(acknowledged)
        acknowledged.update(_kill_and_collect(pid, read_end, rng.randint(0, 8), rng.uniform(0.0, 0.004)))
        interrupted += before < len(acknowledged) < len(records)
        wal = tmp_path / "lane.db-wal"
        if wal.exists() and wal.stat().st_size and len(wal_scans) < 10:
            wal_scans.append(wal.stat().st_size)
            for leftover in (path, wal):
                content = leftover.read_bytes()
                assert not any(pan.encode() in content for pan in pans), leftover.name
        stored = _stored(path)
        assert acknowledged <= set(stored)
        assert all(stored[key] == amounts[key] for key in stored)
    print(f"capture: {CAPTURE_KILLS} kills, {interrupted} in the middle of a run of captures")
    assert wal_scans
    pid, read_end = _fork(_capture_child, path, records)
    assert set(_kill_and_collect(pid, read_end, None)) == set(amounts)
    stored = _stored(path)
    assert stored == amounts
    with _open(path) as queue:
        assert len(queue.list()) == len(records)
        assert all(len(queue.audit(key)) == 1 for key in list(amounts)[:50])


def _admin(url: str, path: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{url}{path}", data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _forward_child(path: Path, url: str, ack_fd: int) -> None:
    async def forward() -> None:
        queue = _open(path)
        retry = RetryPolicy(base_s=0.01, max_s=0.05)
        async with Forwarder(
            queue, url, batch=24, concurrency=12, stagger_s=0.0, lease_s=0.0, retry=retry
        ) as forwarder:
            while (report := await forwarder.forward_once()).answered or report.deferred:
                os.write(ack_fd, "".join(f"{key}\n" for key in report.approved or ["-"]).encode())

    asyncio.run(forward())


def test_kill_9_during_forwarding(tmp_path: Path, processor_sim: ProcessorSimProcess) -> None:
    rng = random.Random(7)
    path = tmp_path / "lane.db"
    records = _requests(700, rng)
    with _open(path) as queue:
        for record in records:
            queue.capture_request(CaptureRequest.from_json(record))
        queue.capture(5, "USD", Card(generate_test_pan(rng), "3012", "101"), key="extra", keyed=True)
    _admin(processor_sim.url, "/v1/admin/faults", {"mode": "slow", "delay_s": 0.003})
    interrupted = charged = 0
    for _ in range(FORWARD_KILLS):
        pid, read_end = _fork(_forward_child, path, processor_sim.url)
        _kill_and_collect(pid, read_end, 1, rng.uniform(0.0, 0.015))
        ledger = _admin(processor_sim.url, "/v1/admin/ledger")
        assert all(record["charges"] <= 1 for record in ledger["records"].values())
        interrupted += charged < len(ledger["records"]) < len(records) + 1
        charged = len(ledger["records"])
    print(f"forwarding: {FORWARD_KILLS} kills, {interrupted} while payments were being charged")
    assert interrupted >= FORWARD_KILLS // 3
    _admin(processor_sim.url, "/v1/admin/faults", {"mode": "ok"})
    pid, read_end = _fork(_forward_child, path, processor_sim.url)
    _kill_and_collect(pid, read_end, None)

    ledger = _admin(processor_sim.url, "/v1/admin/ledger")
    with _open(path) as queue:
        transactions = queue.list()
    assert len(transactions) == len(records) + 1
    assert all(t.state is TransactionState.APPROVED for t in transactions)
    assert set(ledger["records"]) == {t.key for t in transactions}
    assert all(record["charges"] == 1 for record in ledger["records"].values())
    assert sorted(ledger["card_charges"].values()) == [1] * len(transactions)
    assert all(ledger["records"][t.key]["processor_ref"] == t.processor_ref for t in transactions)
