"""``posbridge queue`` and ``posbridge processor-sim`` as a user runs them, then a scan of every file
they wrote (database, WAL, shared memory, logs, outputs) for the test PANs: none may appear."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from posbridge.host.queue import DeviceKey, OfflineLimits, TransactionQueue
from posbridge.protocols.cards import generate_test_pan, luhn_check_digit
from posbridge.protocols.logs import RedactingFilter
from posbridge.protocols.types import Card

from .conftest import ProcessorSimProcess


def _posbridge(
    *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "posbridge.host", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def _lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture
def card_numbers() -> list[str]:
    rng = random.Random(99)
    return [generate_test_pan(rng, prefix=prefix) for prefix in ("400000", "411111", "555555", "601111")]


def test_capture_answers_each_line_as_soon_as_it_is_durable(tmp_path: Path, card_numbers: list[str]) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    process = subprocess.Popen(
        [sys.executable, "-m", "posbridge.host", "queue", "capture", "--queue", url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    for index, pan in enumerate(card_numbers):
        process.stdin.write(
            json.dumps({"key": f"k{index}", "amount": 100, "pan": pan, "expiry": "3012"}) + "\n"
        )
        process.stdin.flush()
        assert json.loads(process.stdout.readline()) == {"key": f"k{index}", "state": "captured"}
        with TransactionQueue(tmp_path / "q.db") as queue:
            assert queue.get(f"k{index}").amount == 100
    process.stdin.close()
    assert process.wait(30) == 0
    process.stdout.close()
    assert process.stderr is not None
    process.stderr.close()


def test_cli_end_to_end_and_no_pan_anywhere(
    tmp_path: Path, card_numbers: list[str], processor_sim: ProcessorSimProcess
) -> None:
    db = tmp_path / "lane.db"
    url = f"sqlite:///{db}?max_amount=20000"
    visa, visa2, master, discover = card_numbers
    typo = visa[:-1] + str((int(luhn_check_digit(visa[:-1])) + 1) % 10)
    lines = [
        {"key": "s1", "amount": 1250, "currency": "USD", "track2": f"{visa}=30121011234567"},
        {"key": "s1", "amount": 1250, "currency": "USD", "track2": f"{visa}=30121011234567"},
        {"key": "k2", "amount": 990, "pan": visa2, "expiry": "3001"},
        {"key": "big", "amount": 99_999, "pan": master, "expiry": "3001"},
        {"key": "old", "amount": 500, "pan": discover, "expiry": "2001"},
        {"key": "dup", "amount": 1250, "currency": "USD", "track2": f"{visa}=30121011234567"},
        {"key": "typo", "amount": 700, "pan": typo, "expiry": "3001"},
        {"key": "chip", "amount": 800, "track2": f"{master}=30122011234"},
        {"key": "k3", "amount": 4000, "pan": master, "expiry": "3001"},
    ]
    captured = _posbridge(
        "queue", "capture", "--queue", url, stdin="\n".join(json.dumps(x) for x in lines) + "\n"
    )
    assert captured.returncode == 0, captured.stderr
    results = {(r["key"], r["state"]) for r in _lines(captured.stdout)}
    assert results == {
        ("s1", "captured"),
        ("k2", "captured"),
        ("big", "refused"),
        ("old", "refused"),
        ("dup", "needs_confirmation"),
        ("typo", "refused"),
        ("chip", "needs_confirmation"),
        ("k3", "captured"),
    }
    assert len(_lines(captured.stdout)) == len(lines)

    listed = _lines(_posbridge("queue", "list", "--queue", url, "--json").stdout)
    assert [(r["key"], r["state"]) for r in listed] == [
        ("s1", "captured"),
        ("k2", "captured"),
        ("big", "refused"),
        ("old", "refused"),
        ("typo", "refused"),
        ("k3", "captured"),
    ]
    assert listed[0]["card"]["pan"] == visa[:6] + "******" + visa[-4:]
    status = _lines(_posbridge("queue", "status", "--queue", url, "--json").stdout)[0]
    assert (status["offline_count"], status["offline_total"], status["max_transaction"]) == (3, 6240, 20000)

    forwarded = _posbridge(
        "queue", "forward", "--once", "--queue", url, "--processor", processor_sim.url, "--json"
    )
    assert forwarded.returncode == 0, forwarded.stderr
    assert _lines(forwarded.stdout)[0]["approved"] == 3
    shown = _lines(_posbridge("queue", "show", "s1", "--queue", url, "--json").stdout)[0]
    assert shown["state"] == "approved"
    assert [entry["to"] for entry in shown["audit"]] == ["captured", "forwarding", "approved"]
    settled = _posbridge("queue", "settle", "--queue", url, "--json")
    assert {r["state"] for r in _lines(settled.stdout)} == {"settled"}
    exported = _posbridge("queue", "export", "--queue", url).stdout
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert [row["key"] for row in rows] == ["s1", "k2", "big", "old", "typo", "k3"]
    assert rows[0]["card"] == listed[0]["card"]["pan"]
    assert _posbridge("queue", "show", "nope", "--queue", url).returncode == 2  # an unknown key is bad input
    assert _posbridge("queue", "list", "--queue", "redis://x").returncode == 2
    assert _posbridge("processor-sim", "--account", "nonsense").returncode == 2

    in_process_log = tmp_path / "posbridge.log"
    handler = logging.FileHandler(in_process_log)
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    previous = root.level
    root.setLevel(logging.DEBUG)
    try:
        with TransactionQueue(
            tmp_path / "second.db", device_key=DeviceKey.generate(), limits=OfflineLimits()
        ) as queue:
            for pan in card_numbers:
                queue.capture(300, "USD", Card(pan, "3012", "101"), keyed=True)
            logging.getLogger("posbridge.test").warning("a careless line with %s inside", visa)
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
        handler.close()

    outputs = captured.stdout + captured.stderr + forwarded.stdout + forwarded.stderr + exported
    files = [path for path in tmp_path.iterdir() if path.is_file()]
    assert {"lane.db", "second.db", "posbridge.log", "processor-sim.log"} <= {path.name for path in files}
    for pan in [*card_numbers, typo]:
        assert pan not in outputs
        for path in files:
            assert pan.encode() not in path.read_bytes(), f"{pan[:6]}... found in {path.name}"
