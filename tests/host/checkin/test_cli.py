"""``posbridge checkin`` and ``posbridge ble`` end to end (record a scene, replay it, check in)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from posbridge.hardware.ble.scene import demo_scene
from posbridge.host.checkin import CheckInTracker
from posbridge.host.cli import main
from posbridge.host.customers import CustomerRegistry

from .conftest import feed

REGISTRY = """
[[customers]]
id = "cust-0001"
name = "Ada Lovelace"
account_token = "tok_test_ada"
beacons = ["ibeacon:e2c56db5-dffb-48d2-b060-d0f5a71096e0:1:1"]
"""


@pytest.fixture
def recording(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    path = tmp_path / "scan.jsonl"
    assert main(["ble", "record", "-o", str(path), "--scanner", "virtual://demo?seed=2"]) == 0
    capsys.readouterr()
    return path


def test_record_then_replay_gives_the_same_events_as_the_scene(
    recording: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry_path = tmp_path / "customers.toml"
    registry_path.write_text(REGISTRY)
    lines = recording.read_text().splitlines()
    assert all(set(json.loads(line)) >= {"t", "address", "rssi", "manufacturer_data"} for line in lines)

    code = main(["checkin", "--scanner", f"replay://{recording}", "--registry", str(registry_path), "--json"])
    captured = capsys.readouterr()
    assert code == 0
    events = [json.loads(line) for line in captured.out.splitlines()]
    assert [(event["event"], event["customer"], event["zone"]) for event in events] == [
        ("check_in", "cust-0001", "counter"),
        ("check_out", "cust-0001", "shop"),
    ]
    assert all(list(event) == ["t", "event", "beacon", "customer", "zone", "distance_m"] for event in events)
    assert "malformed ignored" in captured.err

    expected = feed(CheckInTracker(CustomerRegistry.load(registry_path)), demo_scene(seed=2).advertisements())
    assert [event["t"] for event in events] == [round(event.t, 3) for event in expected]


def test_human_output_names_the_customer(
    recording: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry_path = tmp_path / "customers.toml"
    registry_path.write_text(REGISTRY)
    assert main(["checkin", "--scanner", f"replay://{recording}", "--registry", str(registry_path)]) == 0
    out = capsys.readouterr().out
    assert "check_in" in out
    assert "Ada Lovelace [cust-0001]" in out
    assert "tok_test_ada" not in out


def test_any_beacon_checks_in_unregistered_beacons(
    recording: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["checkin", "--scanner", f"replay://{recording}", "--any-beacon", "--json"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert events
    assert {event["customer"] for event in events} == {None}


def test_cautious_check_in_mode_is_a_cli_choice(recording: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["checkin", "--scanner", f"replay://{recording}", "--any-beacon", "--json"]
    argv += ["--check-in", "cautious"]
    assert main(argv) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [event["event"] for event in events].count("check_in") >= 1
    with pytest.raises(SystemExit) as stop:
        main(["checkin", "--scanner", f"replay://{recording}", "--any-beacon", "--check-in", "maybe"])
    assert stop.value.code == 2


def test_check_in_choices_are_the_tracker_modes() -> None:
    import argparse

    from posbridge.host.checkin import CHECK_IN_MODES
    from posbridge.host.cli import checkin as checkin_cli
    from posbridge.host.config import load_config

    parser = argparse.ArgumentParser()
    checkin_cli.register(parser)
    choices = next(action.choices for action in parser._actions if action.dest == "check_in")
    assert choices is not None
    assert tuple(choices) == tuple(CHECK_IN_MODES)
    for mode in CHECK_IN_MODES:
        assert load_config(environ={}, scanner_check_in=mode).scanner.check_in == mode


def test_ble_scan_lists_beacons(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ble", "scan", "--scanner", "virtual://demo?duration=20", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {line["beacon"] for line in lines} >= {"ibeacon:e2c56db5-dffb-48d2-b060-d0f5a71096e0:1:1"}


@pytest.mark.parametrize(
    "argv",
    [
        ["checkin", "--scanner", "virtual://demo"],
        ["checkin", "--scanner", "nowhere", "--any-beacon"],
        ["checkin", "--scanner", "virtual://demo", "--registry", "/nonexistent/customers.toml"],
        ["ble", "record", "-o", "x.jsonl", "--scanner", "virtual://demo", "--duration", "-1"],
    ],
)
def test_bad_input_exits_2_with_one_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse refused an option value
        code = stop.code
    assert code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_a_missing_recording_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["checkin", "--scanner", f"replay://{tmp_path / 'gone.jsonl'}", "--any-beacon"]) == 2
    assert "does not exist" in capsys.readouterr().err
