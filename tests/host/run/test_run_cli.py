"""``posbridge run``: a bad configuration exits 2 naming the key; SIGTERM mid-capture loses nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from posbridge.host.queue import open_queue

from .conftest import clear_pans, free_port, posbridge


def test_bad_config_exits_2_naming_the_key(isolated_env: Path) -> None:
    (isolated_env / "posbridge.toml").write_text('[queue]\nurl = "postgres://db"\n', encoding="utf-8")
    result = posbridge("run", "--config", "posbridge.toml", cwd=isolated_env)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "posbridge: error: posbridge.toml: [queue] url: must start with sqlite:/// or nats://"
    )
    assert "Traceback" not in result.stderr


def test_bad_environment_variable_exits_2(isolated_env: Path) -> None:
    result = posbridge("run", env={"POSBRIDGE_CONSOLE_PORT": "eighty"}, cwd=isolated_env)
    assert result.returncode == 2
    assert "POSBRIDGE_CONSOLE_PORT: must be a whole number" in result.stderr


def test_check_prints_resolved_configuration(isolated_env: Path) -> None:
    result = posbridge("run", "--check", "--json", env={"POSBRIDGE_LANE_ID": "lane-9"}, cwd=isolated_env)
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values["lane_id"] == "lane-9"
    assert values["console_port"] == 8080


def _get(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5) as response:
        data: dict[str, object] = json.loads(response.read())
        return data


def _post(url: str, body: dict[str, object]) -> dict[str, object]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        data: dict[str, object] = json.loads(response.read())
        return data


def _wait_for(predicate: object, timeout: float) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError("condition not reached")


def test_sigterm_mid_capture_loses_nothing(isolated_env: Path) -> None:
    state = isolated_env / "state"
    port = free_port()
    dead_processor = f"http://127.0.0.1:{free_port()}"
    swipe_times = [3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
    audio_url = "virtual://?realtime=1&seed=5&at=" + "%2C".join(f"{t:g}" for t in swipe_times)
    env = {
        **os.environ,
        "POSBRIDGE_STATE_DIR": str(state),
        "POSBRIDGE_CONSOLE_PORT": str(port),
        "POSBRIDGE_PROCESSOR_URL": dead_processor,
        "POSBRIDGE_AUDIO_READERS": audio_url,
    }
    process = subprocess.Popen([sys.executable, "-m", "posbridge.host", "run", "--json"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(lambda: _get(base + "/healthz")["ok"], 30)
        sales_opened = 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            sale = _get(base + "/api/state")["sale"]
            if sale is not None and sale["status"] == "confirm":  # type: ignore[index]
                _post(base + "/api/sale/cancel", {})  # a chip card swiped: the cashier declines
            elif sale is None or sale["status"] != "waiting":  # type: ignore[index]
                _post(base + "/api/sale", {"amount": 1000 + sales_opened})
                sales_opened += 1
                if sales_opened == 4:
                    break
            time.sleep(0.05)
        # three sales are captured, the fourth waits for the next swipe: stop while it is on its way
        time.sleep(0.7)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    events = [json.loads(line)["event"] for line in stdout.splitlines() if line.startswith("{")]
    announced = [e for e in events if e.startswith("captured ")]
    decoded = [e for e in events if ": swipe " in e]
    ignored = [e for e in events if "no sale open" in e]
    refused = [e for e in events if e.startswith(("refused ", "needs the cashier's confirmation"))]
    assert len(announced) + len(refused) >= 3, events
    assert len(decoded) == len(announced) + len(refused) + len(ignored), events
    assert events[-1] == "lane lane-1 stopped"
    queue = open_queue(f"sqlite:///{state / 'queue.db'}", key_path=state / "posbridge.key")
    try:
        stored = queue.list()
    finally:
        queue.close()
    pending = [t for t in stored if t.state.value in ("captured", "forwarding")]
    assert len(pending) == len(announced)
    assert {t.amount for t in pending} == {int(e.split()[1].replace(".", "")) for e in announced}
    assert not clear_pans(stdout.encode() + stderr.encode())
