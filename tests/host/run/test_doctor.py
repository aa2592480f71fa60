"""``posbridge doctor``: names what is wrong, says how to fix it, exit 1 on a problem."""

from __future__ import annotations

import json
from pathlib import Path

from posbridge.host.cli.doctor import FAIL, OK, SKIP, diagnose
from posbridge.host.config import load_config

from .conftest import posbridge


def findings(tmp: Path, **overrides: object) -> dict[str, list[tuple[str, str, str]]]:
    config = load_config(environ={}, state_dir=tmp / "state", processor_url="http://127.0.0.1:9", **overrides)
    result: dict[str, list[tuple[str, str, str]]] = {}
    for finding in diagnose(config):
        result.setdefault(finding.check, []).append((finding.status, finding.detail, finding.fix))
    return result


def test_fresh_machine_without_hardware_passes(isolated_env: Path) -> None:
    found = findings(isolated_env, console_port=0)
    assert found["audio"][0][0] == SKIP
    assert found["serial"][0][0] == SKIP
    assert found["bluetooth"][0][0] == SKIP
    assert found["key file"][0][0] == OK
    assert found["disk"][0][0] == OK
    assert all(status != FAIL for entries in found.values() for status, _, _ in entries)


def test_readable_key_file_fails_with_chmod_fix(isolated_env: Path) -> None:
    key = isolated_env / "device.key"
    key.write_text("00" * 32)
    key.chmod(0o644)
    status, detail, fix = findings(isolated_env, key_file=str(key))["key file"][0]
    assert status == FAIL
    assert "mode 0644" in detail
    assert fix == f"chmod 600 {key}"
    key.chmod(0o600)
    assert findings(isolated_env, key_file=str(key))["key file"][0][0] == OK


def test_missing_serial_device_and_adapter(isolated_env: Path) -> None:
    found = findings(isolated_env, dongles_links=("/dev/posbridge-dongle-missing",), scanner_url="bleak://hci97")
    status, detail, fix = found["serial"][0]
    assert status == FAIL
    assert "does not exist" in detail
    assert "99-posbridge-dongle.rules" in fix
    status, detail, _ = found["bluetooth"][0]
    assert status == FAIL
    assert "hci97" in detail


def test_broken_audio_reader_is_reported(isolated_env: Path) -> None:
    status, detail, fix = findings(isolated_env, audio_readers=("wav://missing.wav",))["audio"][0]
    assert status == FAIL
    assert "missing.wav" in detail
    assert "posbridge devices" in fix


def test_cli_exit_codes(isolated_env: Path) -> None:
    key = isolated_env / "open.key"
    key.write_text("00" * 32)
    key.chmod(0o666)
    env = {"POSBRIDGE_STATE_DIR": str(isolated_env / "state"), "POSBRIDGE_CONSOLE_PORT": "0",
           "POSBRIDGE_PROCESSOR_URL": "http://127.0.0.1:9"}
    good = posbridge("doctor", env=env, cwd=isolated_env)
    assert good.returncode == 0, good.stdout + good.stderr
    assert good.stdout.rstrip().endswith("all checks passed")
    bad = posbridge("doctor", "--json", env={**env, "POSBRIDGE_KEY_FILE": str(key)}, cwd=isolated_env)
    assert bad.returncode == 1
    records = [json.loads(line) for line in bad.stdout.splitlines()]
    assert {"check": "key file", "status": "fail"}.items() <= next(
        r for r in records if r["check"] == "key file").items()


def test_registry_file_checked(isolated_env: Path) -> None:
    registry = isolated_env / "customers.json"
    beacon = "ibeacon:e2c56db5-dffb-48d2-b060-d0f5a71096e0:1:1"
    registry.write_text(json.dumps({"customers": [{"id": "c1", "name": "Ada", "beacons": [beacon]}]}))
    registry.chmod(0o644)
    status, detail, fix = findings(isolated_env, customers_registry=str(registry))["customers"][0]
    assert status == FAIL
    assert "account tokens" in detail
    assert fix == f"chmod 600 {registry}"
    registry.chmod(0o600)
    found = findings(isolated_env, customers_registry=str(registry))["customers"][0]
    assert found[:2] == (OK, f"{registry}: 1 customer(s)")
    registry.write_text('{"customers": 3}')
    status, detail, _ = findings(isolated_env, customers_registry=str(registry))["customers"][0]
    assert status == FAIL
    assert "list named 'customers'" in detail


def test_console_on_the_network_needs_a_token(isolated_env: Path) -> None:
    status, detail, fix = findings(isolated_env, console_host="0.0.0.0", console_port=0)["console"][0]
    assert status == FAIL
    assert "without a token" in detail
    assert "[console] token" in fix
    guarded = findings(isolated_env, console_host="0.0.0.0", console_port=0, console_token="x" * 32)
    assert guarded["console"][0][0] == OK
