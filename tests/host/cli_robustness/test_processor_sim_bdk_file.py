"""``posbridge processor-sim --bdk-file PATH``: the BDK from a file, never on the command line.

A bad file (missing, a directory, not hex, the wrong length, too large) is a usage error: exit 2,
one stderr line that names the option and never quotes the file's contents.
"""

from __future__ import annotations

import json
import os
import pty
import random
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from posbridge.host.cli._keys import read_hex_key_file
from posbridge.protocols.cards import generate_test_pan
from posbridge.protocols.dukpt import derive_aes_initial_key, encrypt_tracks
from posbridge.protocols.errors import UsageError
from posbridge.protocols.types import MaskedCard, Track, TrackFormat

from .test_bad_input import POSBRIDGE, TIMEOUT_S, assert_usage_error, run_posbridge

#: A made-up AES-128 BDK for this test (not the X9.24-3 test BDK the simulator uses by default).
BDK_HEX = "00112233445566778899AABBCCDDEEFF"
PAN = generate_test_pan(random.Random(2417), prefix="411111")


def _authorize_dukpt(url: str, key: str, bdk: bytes) -> dict[str, Any]:
    ksn = bytes.fromhex("123456789012345600000001")
    tracks = (Track(2, TrackFormat.BCD, f"{PAN}=3012101000"),)
    encrypted = encrypt_tracks(derive_aes_initial_key(bdk, ksn[:8]), ksn, tracks, MaskedCard.from_pan(PAN))
    dukpt = {"ksn": encrypted.ksn.hex(), "ciphertext": encrypted.ciphertext.hex(), "scheme": "aes128"}
    body = {"key": key, "amount": 100, "currency": "USD", "dukpt": dukpt}
    request = urllib.request.Request(
        f"{url}/v1/authorizations",
        data=json.dumps(body).encode(),
        headers={"Idempotency-Key": key, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as answer:
        result: dict[str, Any] = json.load(answer)
        return result


def test_the_bdk_comes_from_the_file_and_stays_out_of_the_process_list(tmp_path: Path) -> None:
    key_file = tmp_path / "bdk.hex"
    key_file.write_text(f"  {BDK_HEX[:16]}\n{BDK_HEX[16:]}  \n")
    process = subprocess.Popen(
        [POSBRIDGE, "processor-sim", "--port", "0", "--json", "--bdk-file", str(key_file)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = json.loads(process.stdout.readline())["url"]
        command_line = Path(f"/proc/{process.pid}/cmdline").read_bytes().decode().upper()
        assert BDK_HEX not in command_line
        approved = _authorize_dukpt(url, "with-file-bdk", bytes.fromhex(BDK_HEX))
        assert (approved["status"], approved["reason"]) == ("approved", None)
        refused = _authorize_dukpt(url, "with-other-bdk", bytes(16))
        assert (refused["status"], refused["reason"]) == ("declined", "cannot decrypt card data")
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("missing.hex", None),
        ("adir", None),
        ("empty.hex", b""),
        ("short.hex", b"0011223344556677\n"),
        ("odd.hex", BDK_HEX[:-1].encode()),
        ("not-hex.hex", b"this is not a key file at all, 0011223344556677\n"),
        ("latin1.hex", BDK_HEX.encode() + b"\xe9"),
        ("huge.hex", b"00" * 5000),
    ],
)
def test_a_bad_bdk_file_is_a_usage_error(name: str, content: bytes | None, tmp_path: Path) -> None:
    (tmp_path / "adir").mkdir()
    if content is not None:
        (tmp_path / name).write_bytes(content)
    result = run_posbridge(["processor-sim", "--port", "0", "--bdk-file", name], tmp_path)
    assert_usage_error(result)
    assert "--bdk-file" in result.stderr
    assert name in result.stderr
    if content:
        assert content.decode(errors="replace").strip()[:16] not in result.stderr


@pytest.mark.parametrize("value", ["zz", "0011", BDK_HEX + "00"])
def test_a_bad_bdk_argument_is_a_usage_error(value: str, tmp_path: Path) -> None:
    result = run_posbridge(["processor-sim", "--port", "0", "--bdk", value], tmp_path)
    assert_usage_error(result)
    assert "--bdk" in result.stderr


def test_bdk_and_bdk_file_together_are_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "bdk.hex").write_text(BDK_HEX)
    result = run_posbridge(["processor-sim", "--bdk", BDK_HEX, "--bdk-file", "bdk.hex"], tmp_path)
    assert_usage_error(result)


def test_the_help_says_bdk_shows_in_the_process_list(tmp_path: Path) -> None:
    result = run_posbridge(["processor-sim", "--help"], tmp_path)
    assert result.returncode == 0
    help_text = " ".join(result.stdout.split())
    assert "--bdk-file PATH" in help_text
    assert "shows in the process list" in help_text


def test_a_bdk_file_that_is_a_terminal_is_a_usage_error_not_a_wait(tmp_path: Path) -> None:
    controller, terminal = pty.openpty()
    try:
        completed = subprocess.run(
            [POSBRIDGE, "processor-sim", "--port", "0", "--bdk-file", "/dev/stdin"],
            cwd=tmp_path,
            stdin=terminal,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    finally:
        os.close(terminal)
        os.close(controller)
    assert_usage_error(completed)
    assert "--bdk-file /dev/stdin" in completed.stderr
    assert "terminal" in completed.stderr


def _read_in_thread(path: Path, timeout_s: float) -> tuple[threading.Thread, list[object]]:
    outcome: list[object] = []

    def read() -> None:
        try:
            outcome.append(read_hex_key_file(str(path), "--bdk-file", "the BDK", (16,), timeout_s=timeout_s))
        except UsageError as error:
            outcome.append(error)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread, outcome


def test_a_fifo_nobody_writes_to_is_a_usage_error_after_the_timeout(tmp_path: Path) -> None:
    fifo = tmp_path / "bdk.fifo"
    os.mkfifo(fifo)
    thread, outcome = _read_in_thread(fifo, timeout_s=0.5)
    thread.join(TIMEOUT_S)
    hung = thread.is_alive()
    if hung:  # release the reader blocked in open() before failing
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    assert not hung
    assert len(outcome) == 1
    assert isinstance(outcome[0], UsageError)
    assert "--bdk-file" in str(outcome[0])
    assert str(fifo) in str(outcome[0])


def test_the_bdk_arrives_through_a_fifo_written_after_the_read_began(tmp_path: Path) -> None:
    fifo = tmp_path / "bdk.fifo"
    os.mkfifo(fifo)
    thread, outcome = _read_in_thread(fifo, timeout_s=TIMEOUT_S)
    time.sleep(0.2)
    with open(fifo, "w") as writer:
        writer.write(BDK_HEX[:10])
        writer.flush()
        time.sleep(0.1)
        writer.write(BDK_HEX[10:] + "\n")
    thread.join(TIMEOUT_S)
    assert outcome == [bytes.fromhex(BDK_HEX)]
