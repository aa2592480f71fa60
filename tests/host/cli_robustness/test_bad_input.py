"""Bad input to any ``posbridge`` subcommand: exit 2, one stderr line, no traceback, no hang.

Each case runs the real console script in a temporary directory under a timeout (DESIGN.md,
"The command line": 2 for bad input or usage, one clear line on stderr).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

POSBRIDGE = str(Path(sys.executable).with_name("posbridge"))
TIMEOUT_S = 20


def run_posbridge(args: list[str], cwd: Path, stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
    """Run ``posbridge ARGS`` in ``cwd`` with ``stdin``; fail the test on a hang."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("POSBRIDGE_")}
    completed = subprocess.run(
        [POSBRIDGE, *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        timeout=TIMEOUT_S,
        env=environment,
        check=False,
    )
    return subprocess.CompletedProcess(
        completed.args,
        completed.returncode,
        completed.stdout.decode(errors="replace"),
        completed.stderr.decode(errors="replace"),
    )


def assert_usage_error(result: subprocess.CompletedProcess[str]) -> None:
    """Exit 2 with exactly one line on stderr and no traceback."""
    assert "Traceback" not in result.stderr
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert "internal error" not in result.stderr


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A temporary directory holding a directory, an empty file and a garbage file."""
    (tmp_path / "adir").mkdir()
    (tmp_path / "empty.bin").write_bytes(b"")
    (tmp_path / "garbage.bin").write_bytes(bytes(range(128, 256)) * 20)
    return tmp_path


@pytest.mark.parametrize(
    "args",
    [
        ["listen", "--link", "socket://"],
        ["listen", "--link", "socket://host:port"],
        ["listen", "--link", "/dev/posbridge-no-such-tty"],
        ["listen", "--audio", "wav://missing.wav"],
    ],
)
def test_bad_link_or_missing_device_is_a_usage_error(args: list[str], workdir: Path) -> None:
    assert_usage_error(run_posbridge(args, workdir))


@pytest.mark.parametrize("target", ["adir", "garbage.bin"])
@pytest.mark.parametrize(
    "command", [["listen", "--audio"], ["modem", "rx", "--profile", "bell202", "--audio"]]
)
def test_wav_url_to_a_directory_or_garbage_is_a_usage_error(
    command: list[str], target: str, workdir: Path
) -> None:
    assert_usage_error(run_posbridge([*command, f"wav://{target}"], workdir))


@pytest.mark.parametrize(
    "args",
    [
        ["modem", "rx", "--profile", "bell202", "missing.wav"],
        ["modem", "rx", "--profile", "bell202", "adir"],
        ["modem", "tx", "--profile", "bell202", "--test-card", "-o", "adir"],
        ["modem", "tx", "--profile", "bell202", "--test-card", "-o", "no-such-folder/out.wav"],
    ],
)
def test_modem_files_that_are_missing_or_directories(args: list[str], workdir: Path) -> None:
    assert_usage_error(run_posbridge(args, workdir))


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--config", "garbage.bin", "--check"],
        ["doctor", "--config", "garbage.bin"],
        ["checkin", "--scanner", "virtual://demo", "--registry", "garbage.bin"],
        ["ble", "scan", "--scanner", "replay://garbage.bin"],
        ["dongle", "provision", "--bdk-file", "garbage.bin", "--key-id", "FFFF9876543210", "--key-file", "k"],
        ["queue", "list", "--queue", "q.db?key_file=garbage.bin"],
    ],
)
def test_binary_garbage_where_text_is_expected(args: list[str], workdir: Path) -> None:
    result = run_posbridge(args, workdir)
    assert_usage_error(result)
    assert "0x" not in result.stderr  # no byte of the file quoted back (it may be key material)


@pytest.mark.parametrize(
    "args",
    [
        ["processor-sim", "--port", "-1"],
        ["processor-sim", "--port", "99999"],
        ["processor-sim", "--bdk", "00"],
        ["processor-sim", "--max-amount", "-5"],
    ],
)
def test_processor_sim_refuses_bad_settings_instead_of_serving(args: list[str], workdir: Path) -> None:
    assert_usage_error(run_posbridge(args, workdir))


@pytest.mark.parametrize("option", [["--state", "BOGUS"], ["--limit", "-1"]])
def test_queue_list_refuses_an_unknown_state_or_a_negative_limit(option: list[str], workdir: Path) -> None:
    assert_usage_error(run_posbridge(["queue", "list", "--queue", "q.db", *option], workdir))


@pytest.mark.parametrize(
    "args",
    [
        ["listen", "--audio", "virtual://", "--duration", "-5"],
        ["listen", "--audio", "virtual://", "--duration", "0"],
        ["listen", "--link", "loop://", "--count", "0"],
        ["demo", "--duration", "-5"],
        ["demo", "--duration", "0"],
        ["ble", "scan", "--scanner", "virtual://demo", "--duration", "nan"],
        ["dongle", "--audio", "virtual://", "--link", "loop://", "--key-file", "k", "--heartbeat", "nan"],
        ["dongle", "--audio", "virtual://", "--link", "loop://", "--key-file", "k", "--heartbeat", "0"],
    ],
)
def test_durations_and_counts_that_cannot_be_run(args: list[str], workdir: Path) -> None:
    assert_usage_error(run_posbridge(args, workdir))


@pytest.mark.parametrize(
    "args",
    [
        ["listen", "--audio", "virtual://", "--reveal", "--save-swipes", "garbage.bin"],
        ["demo", "--duration", "1", "--console", "127.0.0.1:0", "--state-dir", "garbage.bin"],
        ["ble", "record", "-o", "adir", "--scanner", "virtual://demo", "--duration", "1"],
    ],
)
def test_a_file_where_a_directory_is_expected_or_the_reverse(args: list[str], workdir: Path) -> None:
    assert_usage_error(run_posbridge(args, workdir))


@pytest.mark.parametrize(
    "options",
    [["--snr", "nan"], ["--hum", "inf"], ["--expiry", "2901"], ["--name", "DOE"], ["--service-code", "2"]],
)
def test_synth_refuses_non_finite_levels_and_card_fields_without_pan(
    options: list[str], workdir: Path
) -> None:
    result = run_posbridge(["synth", *options, "out.wav"], workdir)
    assert_usage_error(result)
    assert not (workdir / "out.wav").exists()


def test_modem_tx_refuses_a_sample_rate_no_sound_card_has(workdir: Path) -> None:
    args = ["modem", "tx", "--profile", "bell202", "--test-card", "--rate", "1000000000", "-o", "x.wav"]
    assert_usage_error(run_posbridge(args, workdir))


def test_ctrl_c_stops_run_cleanly_with_exit_130(tmp_path: Path) -> None:
    import signal
    import time

    (tmp_path / "posbridge.toml").write_text("")
    environment = {key: value for key, value in os.environ.items() if not key.startswith("POSBRIDGE_")}
    environment.update(POSBRIDGE_CONSOLE_PORT="0", POSBRIDGE_STATE_DIR=str(tmp_path / "state"))
    process = subprocess.Popen(
        [POSBRIDGE, "run", "--config", "posbridge.toml"],
        cwd=tmp_path,
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert process.stderr is not None
        deadline = time.monotonic() + TIMEOUT_S
        while "console on" not in process.stderr.readline() and time.monotonic() < deadline:
            pass
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "stopped" in stderr


@pytest.mark.parametrize(
    "args",
    [
        ["queue", "list", "--queue", "sqlite:///{dir}/q.db?bogus=1"],
        ["queue", "forward", "--queue", "sqlite:///{dir}/q.db", "--processor", "foo://x", "--once"],
        ["queue", "forward", "--queue", "sqlite:///{dir}/q.db", "--concurrency", "0", "--once"],
        ["queue", "export", "--queue", "sqlite:///{dir}/q.db", "--output", "adir"],
        ["queue", "export", "--queue", "sqlite:///{dir}/q.db", "--output", "no-such-folder/x.csv"],
    ],
)
def test_queue_refuses_bad_urls_settings_and_outputs(args: list[str], workdir: Path) -> None:
    assert_usage_error(run_posbridge([arg.format(dir=workdir) for arg in args], workdir))


def test_queue_capture_of_an_amount_too_large_for_the_database(workdir: Path) -> None:
    line = b'{"amount": 99999999999999999999999, "pan": "4111111111111111", "expiry": "3012"}\n'
    result = run_posbridge(["queue", "capture", "--queue", f"sqlite:///{workdir}/q.db"], workdir, stdin=line)
    assert_usage_error(result)
    assert '"state":"invalid"' in result.stdout


@pytest.mark.parametrize(
    "args",
    [["emv", "decode", ""], ["emv", "decode", " "], ["modem", "tx", "--profile", "bell202", "-o", "x.wav"]],
)
def test_nothing_to_decode_or_send_is_a_usage_error(args: list[str], workdir: Path) -> None:
    assert_usage_error(run_posbridge(args, workdir))
    assert not (workdir / "x.wav").exists()


@pytest.mark.parametrize(
    "command", [["synth", "x.wav"], ["demo", "--duration", "1", "--console", "127.0.0.1:0"]]
)
def test_a_negative_seed_is_a_usage_error(command: list[str], workdir: Path) -> None:
    assert_usage_error(run_posbridge([*command, "--seed", "-1"], workdir))


@pytest.mark.parametrize("beacon", ["zzz", None])
def test_queue_capture_refuses_a_check_in_without_a_valid_beacon(beacon: str | None, workdir: Path) -> None:
    event = {"event": "check_in", "customer": "c1", **({"beacon": beacon} if beacon else {})}
    line = (json.dumps(event) + "\n").encode()
    result = run_posbridge(["queue", "capture", "--queue", f"sqlite:///{workdir}/q.db"], workdir, stdin=line)
    assert_usage_error(result)
    assert '"state":"invalid"' in result.stdout


def test_queue_show_of_an_unknown_key_is_a_usage_error(workdir: Path) -> None:
    args = ["queue", "show", "--queue", f"sqlite:///{workdir}/q.db", "nokey"]
    assert_usage_error(run_posbridge(args, workdir))


def test_ctrl_c_stops_the_dongle_firmware_with_exit_130(tmp_path: Path) -> None:
    import pty
    import signal
    import time

    (tmp_path / "bdk.hex").write_text("0123456789ABCDEFFEDCBA9876543210\n")
    provision = ["dongle", "provision", "--bdk-file", "bdk.hex", "--key-id", "FFFF9876543210E0"]
    provision += ["--key-file", "k"]
    assert run_posbridge(provision, tmp_path).returncode == 0
    controller, device = pty.openpty()
    firmware = [POSBRIDGE, "dongle", "--audio", "virtual://?swipes=100", "--key-file", "k"]
    try:
        process = subprocess.Popen(
            [*firmware, "--link", os.ttyname(device)],
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        time.sleep(1.5)
        process.send_signal(signal.SIGINT)
        try:
            _, stderr = process.communicate(timeout=TIMEOUT_S)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    finally:
        os.close(controller)
        os.close(device)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
