"""Transaction queue benchmark (issue 7, "Targets"), side by side in one run.

    .venv/bin/python benchmarks/transaction_queue.py [--captures 2000] [--forward 3000] \
        [--jetstream 5000] [--json]

- Durable captures/s and capture latency (p50/p99) of :class:`TransactionQueue`: SQLite WAL,
  ``synchronous=FULL``, one ``BEGIN IMMEDIATE`` transaction per capture, card data sealed with
  AES-GCM under a per-record key, risk rules and offline limits checked. Target: at least
  persist-queue's durable puts/s on the same machine and disk; p99 <= 10 ms.
- persist-queue's durable puts/s: ``persistqueue.SQLiteQueue(auto_commit=True)`` as its README
  sets it up (WAL, SQLite's default ``synchronous=FULL``: a commit and fdatasync per put; both
  connections' modes are read back and checked), a payload of the same size, the same directory.
  Captures and puts alternate one by one so both meet the same disk load; each side's rate is
  operations per second of all the time it spent, WAL checkpoints included. The CPU time each
  operation costs its caller's thread is printed too: it decides the ratio when syncs are fast;
  the rest of each operation's latency is time off the CPU, mostly waiting for the disk's sync.
  So are the WAL frames (pages) each side writes and syncs per commit, from fresh stores, and
  a capture's CPU by phase (each SQL statement, the rest in Python) from a separate pass.
- A second figure, not the target: the same side-by-side run capturing dongle payloads, which
  arrive DUKPT-encrypted from the reader and are stored as they arrived (no sealing, no PAN to
  fingerprint or check), with the same lookup, rules on the masked card, row, indexes and audit.
- Forwarding tx/s: a full queue drained by :class:`Forwarder` against ``posbridge processor-sim``
  running in its own process on loopback. Target: >= 500 tx/s.
- JetStream ingest tx/s: a lane's outbox published to a real ``nats-server -js`` (file storage),
  each message acknowledged by the server and marked in the outbox. Target: >= 2,000 tx/s.

Everything runs in a temporary directory next to the current one (same disk as the checkout).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _figures import percentile
from posbridge.host.forwarder import Forwarder
from posbridge.host.queue import DeviceKey, OfflineLimits, RiskRules, TransactionQueue
from posbridge.protocols.cards import generate_test_pan
from posbridge.protocols.types import Card, EncryptedCardData

LIMITS = OfflineLimits(10**8, 10**14, 10**7)
RULES = RiskRules(velocity_max=10**6)
DEVICE_KEY = DeviceKey(bytes(range(32)))


def cards(count: int, seed: int) -> list[Card]:
    rng = random.Random(seed)
    pans: set[str] = set()
    while len(pans) < count:
        pans.add(generate_test_pan(rng, prefix="400000"))
    return [Card(pan, "3012", "101") for pan in sorted(pans)]


def fill(queue: TransactionQueue, count: int, seed: int) -> list[float]:
    latencies = []
    for index, card in enumerate(cards(count, seed)):
        started = time.perf_counter()
        queue.capture(100 + index, "USD", card, keyed=True)
        latencies.append(time.perf_counter() - started)
    return latencies


def summary(latencies: list[float], upkeep_s: float = 0.0) -> dict[str, float]:
    """Rate (per second of time spent in the operations and ``upkeep_s``), p50 and p99 latency in ms."""
    return {
        "per_s": len(latencies) / (sum(latencies) + upkeep_s),
        "p50_ms": statistics.median(latencies) * 1e3,
        "p99_ms": percentile(latencies, 0.99) * 1e3,
    }


def durability(db: Any) -> str:
    """``journal_mode/synchronous`` of a SQLite connection, e.g. ``wal/2`` (2 = FULL)."""
    journal = db.execute("PRAGMA journal_mode").fetchone()[0]
    return f"{journal}/{db.execute('PRAGMA synchronous').fetchone()[0]}"


def dongle_payloads(count: int, seed: int) -> list[EncryptedCardData]:
    """Card reads as the dongle sends them: DUKPT-encrypted at the reader (a 12-byte AES DUKPT KSN,
    48 bytes of ciphertext) with the masked card; the queue stores them as they arrived."""
    rng = random.Random(seed)
    return [
        EncryptedCardData(rng.randbytes(12), rng.randbytes(48), card.masked) for card in cards(count, seed)
    ]


def bench_captures_vs_persist_queue(
    workdir: Path, count: int, sources: list[Card] | list[EncryptedCardData] | None = None
) -> dict[str, dict[str, Any]]:
    """Captures and persist-queue puts one after the other, so both meet the same disk conditions.

    ``sources`` are what is captured: keyed test cards by default (sealed at rest), or dongle
    payloads for the second figure.

    Each side's rate counts every second it spent: its operations, the WAL checkpoints it ran
    (inside puts for persist-queue, on the queue's background thread for captures) and a final
    ``wal_checkpoint(TRUNCATE)`` that folds what is left of its WAL into its database.
    """
    import persistqueue

    name = "captures" if sources is None else "dongle-captures"
    queue = TransactionQueue(workdir / f"{name}.db", device_key=DEVICE_KEY, limits=LIMITS, rules=RULES)
    baseline = persistqueue.SQLiteQueue(str(workdir / f"{name}-persist-queue"), auto_commit=True)
    modes = {"captures": durability(queue._db), "persist_queue": durability(baseline._putter)}
    if set(modes.values()) != {"wal/2"}:
        raise SystemExit(f"both sides must commit durably (WAL, synchronous=FULL): {modes}")
    payload = {"key": "tx_" + "0" * 32, "amount": 1234, "currency": "USD", "sealed": os.urandom(160)}
    all_cards = cards(count, 1) if sources is None else sources
    captures: list[float] = []
    puts: list[float] = []
    cpu = {"captures": 0.0, "persist_queue": 0.0}
    for index in range(count):
        began, began_cpu = time.perf_counter(), time.thread_time()
        queue.capture(100 + index, "USD", all_cards[index], keyed=True)
        captures.append(time.perf_counter() - began)
        cpu["captures"] += time.thread_time() - began_cpu
        began, began_cpu = time.perf_counter(), time.thread_time()
        baseline.put(payload)
        puts.append(time.perf_counter() - began)
        cpu["persist_queue"] += time.thread_time() - began_cpu
    began = time.perf_counter()
    queue.close()
    capture_upkeep = time.perf_counter() - began + queue.checkpointer.busy_s
    began = time.perf_counter()
    baseline._putter.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    baseline.close()
    put_upkeep = time.perf_counter() - began
    return {
        "captures": {
            **summary(captures, capture_upkeep),
            "cpu_us": cpu["captures"] / count * 1e6,
            "off_cpu_us": (sum(captures) - cpu["captures"]) / count * 1e6,
            "durability": modes["captures"],
        },
        "persist_queue": {
            **summary(puts, put_upkeep),
            "cpu_us": cpu["persist_queue"] / count * 1e6,
            "off_cpu_us": (sum(puts) - cpu["persist_queue"]) / count * 1e6,
            "durability": modes["persist_queue"],
        },
    }


def wal_frames_per_commit(workdir: Path, count: int = 200, warm: int = 1000) -> dict[str, dict[str, float]]:
    """WAL frames (pages) each commit writes and syncs, captures against persist-queue puts.

    Fresh stores on the same disk, warmed with ``warm`` operations, their WALs truncated, then
    ``count`` operations each: the WAL's growth divided by the frame size (24-byte header + page).
    Checkpoints cannot rewind a WAL in between (the queue's background checkpoints are set
    beyond ``count``; persist-queue's automatic one comes at 1,000 pages).
    """
    import persistqueue

    queue = TransactionQueue(
        workdir / "frames.db",
        device_key=DEVICE_KEY,
        limits=LIMITS,
        rules=RULES,
        checkpoint_after_commits=10 * (warm + count),
    )
    baseline = persistqueue.SQLiteQueue(str(workdir / "frames-persist-queue"), auto_commit=True)
    payload = {"key": "tx_" + "0" * 32, "amount": 1234, "currency": "USD", "sealed": os.urandom(160)}
    all_cards = cards(warm + count, 4)
    sides = {"captures": queue._db, "persist_queue": baseline._putter}
    try:
        for index in range(warm):
            queue.capture(100 + index, "USD", all_cards[index], keyed=True)
            baseline.put(payload)
        for db in sides.values():
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        for index in range(warm, warm + count):
            queue.capture(100 + index, "USD", all_cards[index], keyed=True)
            baseline.put(payload)
        result = {}
        for side, db in sides.items():
            page_size = db.execute("PRAGMA page_size").fetchone()[0]
            database = db.execute("PRAGMA database_list").fetchone()[2]
            grown = Path(database + "-wal").stat().st_size - 32
            result[side] = {"frames": grown / (page_size + 24) / count, "page_size": page_size}
        return result
    finally:
        queue.close()
        baseline.close()


class _TimedCursor:
    """A stand-in for the queue's capture cursor that adds up the CPU time of each statement kind."""

    def __init__(self, cursor: Any, spent: dict[str, float]) -> None:
        self._cursor = cursor
        self._spent = spent

    def execute(self, sql: str, parameters: Any = ()) -> Any:
        began = time.thread_time()
        try:
            return self._cursor.execute(sql, parameters)
        finally:
            kind = sql.split(None, 1)[0].upper()
            self._spent[kind] = self._spent.get(kind, 0.0) + time.thread_time() - began


def capture_phases(workdir: Path, count: int = 500, warm: int = 1000) -> dict[str, float]:
    """CPU microseconds per capture by phase, from a separate profiling pass (not the timed run).

    ``BEGIN`` (BEGIN IMMEDIATE: the write lock), ``SELECT`` (the one lookup: key, card history,
    offline position), ``INSERT`` (the row, its indexes and its audit entry by trigger),
    ``COMMIT`` (WAL frames written and fdatasync'd), and ``python``: everything else in
    :meth:`TransactionQueue.capture` -- the request, masking, Luhn and the other rules, the card
    fingerprint, sealing, the returned :class:`Transaction` and its event, plus the few
    microseconds the timing of the statements itself costs.
    """
    queue = TransactionQueue(workdir / "phases.db", device_key=DEVICE_KEY, limits=LIMITS, rules=RULES)
    all_cards = cards(warm + count, 5)
    spent: dict[str, float] = {}
    try:
        for index in range(warm):
            queue.capture(100 + index, "USD", all_cards[index], keyed=True)
        queue._capture_cursor = _TimedCursor(queue._capture_cursor, spent)  # type: ignore[assignment]
        began = time.thread_time()
        for index in range(warm, warm + count):
            queue.capture(100 + index, "USD", all_cards[index], keyed=True)
        total = time.thread_time() - began
    finally:
        queue.close()
    phases = {kind: seconds / count * 1e6 for kind, seconds in spent.items()}
    phases["python"] = total / count * 1e6 - sum(phases.values())
    return phases


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def bench_forwarding(workdir: Path, count: int) -> dict[str, float]:
    queue = TransactionQueue(workdir / "forward.db", device_key=DEVICE_KEY, limits=LIMITS, rules=RULES)
    fill(queue, count, 2)
    sim = subprocess.Popen(
        [sys.executable, "-m", "posbridge.host", "processor-sim", "--port", "0", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert sim.stdout is not None
        url = json.loads(sim.stdout.readline())["url"]

        async def drain() -> tuple[int, float]:
            async with Forwarder(queue, url, concurrency=64, batch=256, stagger_s=0.0) as forwarder:
                started = time.perf_counter()
                report = await forwarder.drain()
                return report.answered, time.perf_counter() - started

        answered, elapsed = asyncio.run(drain())
    finally:
        sim.terminate()
        sim.wait()
        queue.close()
    if answered != count:
        raise SystemExit(f"forwarding answered {answered} of {count}")
    return {"per_s": answered / elapsed}


def bench_jetstream(workdir: Path, count: int) -> dict[str, float] | None:
    binary = shutil.which("nats-server") or next(
        (p for p in ("/usr/sbin/nats-server", "/usr/bin/nats-server") if Path(p).exists()), None
    )
    if binary is None:
        return None
    from posbridge.host.queue.jetstream import JetStreamQueue

    port = free_port()
    server = subprocess.Popen(
        [binary, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(workdir / "js")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        queue = JetStreamQueue(
            workdir / "lane.db",
            server=f"nats://127.0.0.1:{port}",
            device_key=DEVICE_KEY,
            limits=LIMITS,
            rules=RULES,
        )
        fill(queue, count, 3)

        async def ingest() -> tuple[int, float]:
            async with queue:
                started = time.perf_counter()
                published = 0
                while batch := await queue.publish_pending(batch=1000):
                    published += batch
                return published, time.perf_counter() - started

        published, elapsed = asyncio.run(ingest())
    finally:
        server.terminate()
        server.wait()
    return {"per_s": published / elapsed}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--captures", type=int, default=2000)
    parser.add_argument("--forward", type=int, default=3000)
    parser.add_argument("--jetstream", type=int, default=5000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="posbridge-bench-", dir=os.getcwd()))
    try:
        results: dict[str, Any] = {
            **bench_captures_vs_persist_queue(workdir, args.captures),
            "dongle": bench_captures_vs_persist_queue(
                workdir, args.captures, dongle_payloads(args.captures, 6)
            ),
            "wal_frames": wal_frames_per_commit(workdir),
            "capture_phases": capture_phases(workdir),
            "forwarding": bench_forwarding(workdir, args.forward),
            "jetstream": bench_jetstream(workdir, args.jetstream),
        }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        print(json.dumps(results))
        return 0
    captures, persist = results["captures"], results["persist_queue"]
    print(
        f"durable captures (SQLite FULL, sealed): {captures['per_s']:8.0f}/s  p50 {captures['p50_ms']:.2f} ms"
        f"  p99 {captures['p99_ms']:.2f} ms  (target p99 <= 10 ms)"
    )
    print(
        f"persist-queue durable puts:             {persist['per_s']:8.0f}/s  p50 {persist['p50_ms']:.2f} ms"
        f"  p99 {persist['p99_ms']:.2f} ms"
    )
    print(
        f"journal/synchronous of each side:       captures {captures['durability']},"
        f" persist-queue {persist['durability']} (wal/2 = WAL, FULL)"
    )
    print(
        f"CPU per operation (caller's thread):    captures {captures['cpu_us']:.0f} us,"
        f" persist-queue puts {persist['cpu_us']:.0f} us (user + system, fsync included)"
    )
    print(
        f"off the CPU per operation (disk waits): captures {captures['off_cpu_us']:.0f} us,"
        f" persist-queue puts {persist['off_cpu_us']:.0f} us (latency - CPU: mostly waiting for fdatasync)"
    )
    phases = results["capture_phases"]
    shown = ("BEGIN", "SELECT", "INSERT", "COMMIT", "python")
    print(
        "CPU per capture by phase (alone):       "
        + ", ".join(f"{kind} {phases[kind]:.0f} us" for kind in shown)
        + f" (sum {sum(phases.values()):.0f} us: captures back to back, no puts between)"
    )
    frames = results["wal_frames"]
    print(
        f"WAL frames per commit (synced at once): captures {frames['captures']['frames']:.1f}"
        f" x {frames['captures']['page_size']} B, persist-queue puts {frames['persist_queue']['frames']:.1f}"
        f" x {frames['persist_queue']['page_size']} B"
    )
    ratio = captures["per_s"] / persist["per_s"]
    print(f"captures / persist-queue puts:          {ratio:8.2f}    (target >= 1.00)")
    dongle = results["dongle"]
    print(
        f"second figure, dongle captures (DUKPT from the reader, stored as they arrived):"
        f" {dongle['captures']['per_s']:.0f}/s against {dongle['persist_queue']['per_s']:.0f} puts/s,"
        f" CPU {dongle['captures']['cpu_us']:.0f} us against {dongle['persist_queue']['cpu_us']:.0f} us:"
        f" ratio {dongle['captures']['per_s'] / dongle['persist_queue']['per_s']:.2f}"
    )
    print(
        f"forwarding to processor-sim:            {results['forwarding']['per_s']:8.0f} tx/s (target >= 500)"
    )
    if results["jetstream"] is None:
        print("JetStream ingest:                       skipped (nats-server not installed)")
    else:
        jetstream = results["jetstream"]["per_s"]
        print(f"JetStream ingest:                       {jetstream:8.0f} tx/s (target >= 2000)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
