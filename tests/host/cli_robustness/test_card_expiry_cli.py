"""A bad card expiry (not YYMM with month 01-12) or service code (not three digits) at the command
line: a usage error, never a crash."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from posbridge.protocols.cards import generate_test_pan

from .test_bad_input import assert_usage_error, run_posbridge

PAN = generate_test_pan(random.Random(1113), prefix="411111")


@pytest.mark.parametrize(
    ("option", "value"),
    [("--expiry", value) for value in ("9999", "3013", "3000", "30x2", "")]
    + [("--service-code", value) for value in ("12", "1011", "1x1", "١٠١", "")],
)
def test_synth_refuses_a_bad_expiry_or_service_code(option: str, value: str, tmp_path: Path) -> None:
    """An expiry must be YYMM with month 01-12; a service code three digits (else ``12`` reads back
    as ``120``, or the track not at all)."""
    result = run_posbridge(["synth", "x.wav", "--pan", PAN, option, value], tmp_path)
    assert_usage_error(result)
    assert option in result.stderr
    assert PAN not in result.stderr + result.stdout
    assert not (tmp_path / "x.wav").exists()


def test_queue_capture_reports_a_bad_keyed_expiry_as_an_invalid_line(tmp_path: Path) -> None:
    good_pan = generate_test_pan(random.Random(1), prefix="555555")
    lines = [
        {"key": "bad-month", "amount": 100, "pan": PAN, "expiry": "9999"},
        {"key": "good", "amount": 100, "pan": good_pan, "expiry": "3012"},
    ]
    stdin = "".join(json.dumps(line) + "\n" for line in lines).encode()
    result = run_posbridge(["queue", "capture", "--queue", f"sqlite:///{tmp_path}/q.db"], tmp_path, stdin)
    assert_usage_error(result)
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(record["key"], record["state"]) for record in records] == [
        ("bad-month", "invalid"),
        ("good", "captured"),
    ]
    assert records[0]["reason"].startswith("line 1: ")
    assert "expiry" in records[0]["reason"]
    assert PAN not in result.stdout + result.stderr
