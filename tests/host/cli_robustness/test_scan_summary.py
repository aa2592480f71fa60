"""The scan summary of ``posbridge ble`` and ``posbridge checkin`` (one line on stderr after a run)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from posbridge.hardware.ble.scanner import ScanStats
from posbridge.host.cli import main
from posbridge.host.cli._scan import run_scan


class _Scanner:
    def __init__(self) -> None:
        self.stats = ScanStats()


def _counts(stats: ScanStats) -> str:
    return f"{stats.adverts} adverts"


def test_the_summary_follows_a_run_with_the_counts_at_its_end(capsys: pytest.CaptureFixture[str]) -> None:
    scanner = _Scanner()

    async def work() -> None:
        scanner.stats.adverts = 7

    assert run_scan("ble", scanner, work(), _counts) == 0
    assert capsys.readouterr().err == "posbridge ble: 7 adverts\n"


def test_ctrl_c_prints_the_summary_and_still_interrupts(capsys: pytest.CaptureFixture[str]) -> None:
    scanner = _Scanner()

    async def work() -> None:
        scanner.stats.adverts = 3
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_scan("checkin", scanner, work(), _counts)
    assert capsys.readouterr().err == "posbridge checkin: 3 adverts\n"


def test_an_error_leaves_no_summary(capsys: pytest.CaptureFixture[str]) -> None:
    async def work() -> None:
        raise OSError("adapter gone")

    with pytest.raises(OSError, match="adapter gone"):
        run_scan("ble", _Scanner(), work(), _counts)
    assert capsys.readouterr().err == ""


def test_ble_and_checkin_print_their_summaries(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recording = tmp_path / "scan.jsonl"
    scene = "virtual://demo?seed=3&duration=30"
    assert main(["ble", "record", "-o", str(recording), "--scanner", scene]) == 0
    ble = capsys.readouterr().err
    assert re.fullmatch(r"posbridge ble: [1-9]\d* adverts, \d+ malformed\n", ble), ble
    assert main(["checkin", "--scanner", f"replay://{recording}", "--any-beacon", "--json"]) == 0
    checkin = capsys.readouterr().err
    pattern = r"posbridge checkin: [1-9]\d* adverts, \d+ beacon, \d+ malformed ignored, \d+ scan restarts\n"
    assert re.fullmatch(pattern, checkin), checkin
