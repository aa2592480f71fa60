"""deploy/: the systemd units parse, run the right command hardened, and the udev rule makes the symlink."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

DEPLOY = Path(__file__).parents[3] / "deploy"


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(DEPLOY / name, encoding="utf-8")
    return parser


def test_lane_unit_runs_posbridge_run_as_a_dedicated_user() -> None:
    service = unit("posbridge.service")["Service"]
    assert service["ExecStart"].endswith("posbridge run --config /etc/posbridge/posbridge.toml")
    assert service["User"] == "posbridge"
    assert service["Restart"] == "on-failure"
    assert service["RestartPreventExitStatus"] == "2"
    assert service["KillSignal"] == "SIGTERM"
    for option in ("NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp", "CapabilityBoundingSet"):
        assert option in service
    assert service["StateDirectory"] == "posbridge"


@pytest.mark.parametrize("name", ["posbridge.service", "posbridge-dongle.service"])
def test_units_verify(name: str) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    result = subprocess.run(["systemd-analyze", "verify", str(DEPLOY / name)], capture_output=True, text=True,
                            timeout=60, check=False)
    problems = [line for line in result.stderr.splitlines() if line.strip() and "not executable" not in line]
    assert problems == []


def test_udev_rule_names_the_stable_symlink() -> None:
    text = (DEPLOY / "99-posbridge-dongle.rules").read_text(encoding="utf-8").replace("\\\n", " ")
    rules = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    matching = [line for line in rules if 'SYMLINK+="posbridge-dongle"' in line]
    assert len(matching) == 2
    assert all('GROUP="posbridge"' in line and 'MODE="0660"' in line for line in matching)
    assert all(line.count('"') % 2 == 0 for line in rules)
