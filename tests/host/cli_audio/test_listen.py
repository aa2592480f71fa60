"""``posbridge listen`` on all four sources, ``posbridge devices``, and the clean failures (issue 3)."""

from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from posbridge.hardware.audio import encode_wav, read_wav, sample_format, write_wav
from posbridge.hardware.audio.device import file_capture_asoundrc
from posbridge.hardware.audio.virtual import VirtualAudioSource
from posbridge.host.cli import main

from .conftest import POSBRIDGE, Runner

VIRTUAL = "virtual://?swipes=3&seed=4"


def _expected_texts(url_seed: int = 4, swipes: int = 3) -> list[str]:
    return [swipe.tracks[0].text for swipe in VirtualAudioSource(swipes=swipes, seed=url_seed).expected]


def _session_pcm(tmp_path: Path, gap_s: float | None = None) -> tuple[Path, bytes]:
    source = VirtualAudioSource(swipes=3, seed=4, gap_s=gap_s)
    recording = np.concatenate([block.samples for block in source])
    path = tmp_path / "session.wav"
    write_wav(path, recording, source.rate)
    return path, sample_format("s16le").encode(read_wav(path)[0])


def test_listen_virtual_json_is_masked(posbridge: Runner) -> None:
    result = posbridge("listen", "--audio", VIRTUAL, "--json")
    assert result.code == 0, result.stderr
    records = result.json_lines()
    assert [sorted(record) for record in records] == [["card", "channel", "t", "tracks"]] * 3
    assert [record["t"] for record in records] == sorted(record["t"] for record in records)
    for record, text in zip(records, _expected_texts(), strict=True):
        pan = text[1:].split("^")[0]
        assert pan not in result.stdout
        assert record["card"]["pan"] == pan[:6] + "*" * (len(pan) - 10) + pan[-4:]
        assert record["tracks"][0]["text"] != text
        assert record["tracks"][0]["lrc_ok"] is True


def test_listen_reveal_count_and_wav_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = _session_pcm(tmp_path)
    assert main(["listen", "--audio", f"wav://{path}", "--json", "--reveal", "--count", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert [line.split('"text":"')[1].split('"')[0] for line in lines] == _expected_texts()[:2]


def test_listen_stdin_pipe_gives_the_same_tracks_as_decode(tmp_path: Path, posbridge: Runner) -> None:
    path, pcm = _session_pcm(tmp_path)
    piped = posbridge(
        "listen", "--audio", "stdin://?rate=48000&format=s16le&channels=1", "--json", "--reveal", input=pcm
    )
    assert piped.code == 0, piped.stderr
    decoded = posbridge("decode", "--json", "--reveal", str(path))
    batch = [swipe["tracks"] for swipe in decoded.json_lines()[0]["swipes"]]
    assert [record["tracks"] for record in piped.json_lines()] == batch
    assert [tracks[0]["text"] for tracks in batch] == _expected_texts()


@pytest.mark.parametrize(
    ("data", "url", "message"),
    [
        (b"", "stdin://?rate=48000", "ended before any audio"),
        (b"\xff\xff\xff\x7f" * 1000, "stdin://?rate=48000&format=f32le", "NaN"),
        (encode_wav(np.zeros(480, dtype=np.float32), 44_100), "stdin://?rate=48000", "sample-rate mismatch"),
        (b"\x00", "stdin://?rate=48000&format=mp3", "unknown sample format"),
        (b"\x00", "stdin://?rate=48000&colour=1", "unknown audio URL option"),
    ],
)
def test_listen_bad_input_is_one_clean_line_and_exit_2(
    posbridge: Runner, data: bytes, url: str, message: str
) -> None:
    result = posbridge("listen", "--audio", url, input=data)
    assert result.code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr


def test_listen_stdin_garbage_and_a_cut_frame_end_cleanly(posbridge: Runner) -> None:
    garbage = np.random.default_rng(1).integers(0, 256, 48_000 * 2 + 1, dtype=np.uint8).tobytes()
    result = posbridge("listen", "--audio", "stdin://?rate=48000", "--json", input=garbage)
    assert result.code == 0
    assert result.stdout == ""
    assert "mid-frame" in result.stderr


def test_save_swipes_needs_reveal_and_warns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "saved"
    assert main(["listen", "--audio", VIRTUAL, "--save-swipes", str(folder)]) == 2
    assert "needs --reveal" in capsys.readouterr().err
    assert not folder.exists()
    assert main(["listen", "--audio", VIRTUAL, "--save-swipes", str(folder), "--reveal", "--json"]) == 0
    assert "hold clear card data" in capsys.readouterr().err
    saved = sorted(folder.glob("*.wav"))
    assert len(saved) == 3
    assert main(["decode", "--json", "--reveal", *map(str, saved)]) == 0
    texts = [line.split('"text":"')[1].split('"')[0] for line in capsys.readouterr().out.splitlines()]
    assert texts == _expected_texts()


@pytest.mark.parametrize("argv", [[], ["--audio", VIRTUAL, "--link", "loop://"]])
def test_listen_needs_exactly_one_source(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["listen", *argv])
    assert exit_info.value.code == 2
    assert "--audio" in capsys.readouterr().err


def test_listen_count_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["listen", "--audio", VIRTUAL, "--count", "0"]) == 2
    assert "--count" in capsys.readouterr().err


def test_listen_shows_a_level_meter_only_on_a_terminal(posbridge: Runner) -> None:
    url = "virtual://?swipes=1&seed=4&realtime=1"
    piped = posbridge("listen", "--audio", url.replace("&realtime=1", ""))
    assert "dBFS" not in piped.stdout
    controller, terminal = pty.openpty()
    command = [str(POSBRIDGE)] if POSBRIDGE.exists() else [sys.executable, "-m", "posbridge.host"]
    process = subprocess.Popen([*command, "listen", "--audio", url], stdout=terminal, stderr=subprocess.PIPE)
    os.close(terminal)
    shown = b""
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    assert process.wait(timeout=60) == 0
    os.close(controller)
    assert b"dBFS" in shown
    assert b"VISA" in shown or b"AMEX" in shown or b"DISCOVER" in shown or b"MASTERCARD" in shown


# --- the real device path: sounddevice -> PortAudio -> ALSA's file plugin, in a temporary HOME.


def test_devices_lists_the_alsa_input(tmp_path: Path, posbridge: Runner) -> None:
    raw = tmp_path / "in.s16le"
    raw.write_bytes(b"\0\0" * 4800)
    (tmp_path / ".asoundrc").write_text(file_capture_asoundrc("swipein", raw))
    result = posbridge("devices", env={"HOME": str(tmp_path)})
    assert result.code == 0, result.stderr
    assert "swipein" in result.stdout
    assert "device://swipein" in result.stdout
    listed = posbridge("devices", "--json", env={"HOME": str(tmp_path)}).json_lines()
    assert any(device["name"] == "swipein" and 48000 in device["rates"] for device in listed)


def test_listen_decodes_swipes_recorded_through_alsa(tmp_path: Path, posbridge: Runner) -> None:
    # ALSA's null PCM runs faster than real time: the source queue keeps the first 5 s in order and
    # counts the rest as overruns, so the session is kept shorter than that.
    _, pcm = _session_pcm(tmp_path, gap_s=0.5)
    raw = tmp_path / "swipes.s16le"
    raw.write_bytes(pcm)
    (tmp_path / ".asoundrc").write_text(file_capture_asoundrc("swipein", raw))
    result = posbridge(
        "listen",
        "--audio",
        "device://swipein?rate=48000&channels=1",
        "--json",
        "--reveal",
        "--count",
        "3",
        env={"HOME": str(tmp_path)},
        timeout=120,
    )
    assert result.code == 0, result.stderr
    assert [record["tracks"][0]["text"] for record in result.json_lines()] == _expected_texts()
    assert "audio input overrun" in result.stderr


def test_listen_duration_stops_the_stream(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["listen", "--audio", VIRTUAL, "--json", "--duration", "0.3"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["listen", "--audio", VIRTUAL, "--json", "--duration", "2.0"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1


def test_listen_stdin_from_a_terminal_is_a_usage_error() -> None:
    controller, terminal = pty.openpty()
    command = [str(POSBRIDGE)] if POSBRIDGE.exists() else [sys.executable, "-m", "posbridge.host"]
    try:
        result = subprocess.run(
            [*command, "listen", "--audio", "stdin://?rate=48000"],
            stdin=terminal,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(terminal)
        os.close(controller)
    assert result.returncode == 2
    assert "standard input is a terminal" in result.stderr


@pytest.mark.skipif(shutil.which("arecord") is None, reason="alsa-utils is not installed")
def test_arecord_piped_into_listen(tmp_path: Path) -> None:
    _, pcm = _session_pcm(tmp_path, gap_s=0.5)
    raw = tmp_path / "swipes.s16le"
    raw.write_bytes(pcm)
    (tmp_path / ".asoundrc").write_text(file_capture_asoundrc("swipein", raw))
    command = [str(POSBRIDGE)] if POSBRIDGE.exists() else [sys.executable, "-m", "posbridge.host"]
    pipeline = (
        "arecord -q -D swipein -f S16_LE -r 48000 -c 1 -d 4 | "
        + " ".join(command)
        + " listen --audio 'stdin://?rate=48000' --json --reveal"
    )
    result = subprocess.run(
        ["sh", "-c", pipeline],
        env={**os.environ, "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    texts = [json.loads(line)["tracks"][0]["text"] for line in result.stdout.splitlines()]
    assert texts == _expected_texts()
    assert "WAV data chunk" not in result.stderr
