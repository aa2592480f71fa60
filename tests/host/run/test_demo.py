"""``posbridge demo``: ends by itself, exit 0, tells the shop's story, and never shows a clear PAN."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from .conftest import clear_pans, posbridge


def test_demo_runs_the_shop_and_leaks_no_pan(isolated_env: Path) -> None:
    state = isolated_env / "state"
    result = posbridge("demo", "--duration", "20", "--console", "127.0.0.1:0", "--state-dir", str(state))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for expected in ("check-in: Alice", "approved 12.50 USD", "pay by check-in: Bob", "approved 4.20 USD",
                     "ALERT same card", "ALERT card expired", "network: processor unreachable",
                     "offline 15.00 USD", "chip reader: chip VISA 400000******",
                     "network: processor reachable",
                     "stored payment forwarded: approved 15.00 USD", "check-in: Carol", "demo over"):
        assert expected in out, expected
    assert "******" in out
    assert not clear_pans(out.encode() + result.stderr.encode())
    files = [path for path in state.rglob("*") if path.is_file()]
    assert any(path.name == "queue.db" for path in files)
    for path in files:
        assert not clear_pans(path.read_bytes()), path


def test_demo_rejects_a_bad_console_address(isolated_env: Path) -> None:
    result = posbridge("demo", "--duration", "1", "--console", "localhost")
    assert result.returncode == 2
    assert "--console must be HOST:PORT" in result.stderr


def test_demo_serves_the_console_elsewhere_when_8080_is_taken(isolated_env: Path) -> None:
    with socket.socket() as taken:
        try:
            taken.bind(("127.0.0.1", 8080))
        except OSError:
            pytest.skip("port 8080 is in use by something else; the fallback is then exercised anyway")
        taken.listen()
        result = posbridge("demo", "--duration", "3")
    assert result.returncode == 0, result.stderr
    served = [line for line in result.stdout.splitlines() if "console on http://127.0.0.1:" in line]
    assert served
    assert ":8080/" not in served[0]
