"""``posbridge synth`` and ``posbridge decode``: exit codes, the JSON shape, masking (issue 2 item 5)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from posbridge.hardware.audio import read_wav, sample_format, write_wav
from posbridge.host.cli import main

from .conftest import Runner

PAN = "4111111111111111"
TRACK1 = f"B{PAN}^TEST/CARD^3012101000000"


def _decode_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[dict[str, object]], str]:
    code = main(["decode", "--json", *argv])
    captured = capsys.readouterr()
    return code, [json.loads(line) for line in captured.out.splitlines()], captured.err


def test_decode_json_reveal_follows_the_format_exactly(
    synth_file: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = synth_file("one.wav", "--pan", PAN, "--seed", "1")
    code, records, _ = _decode_json(capsys, "--reveal", str(path))
    assert code == 0
    assert records == [
        {
            "file": str(path),
            "rate": 48000,
            "swipes": [
                {
                    "start_s": records[0]["swipes"][0]["start_s"],  # type: ignore[index]
                    "end_s": records[0]["swipes"][0]["end_s"],  # type: ignore[index]
                    "channel": 0,
                    "tracks": [{"format": "alpha", "text": TRACK1, "direction": "forward", "lrc_ok": True}],
                    "card": {
                        "pan": "411111******1111",
                        "brand": "visa",
                        "expiry": "3012",
                        "service_code": "101",
                    },
                }
            ],
        }
    ]
    swipe = records[0]["swipes"][0]  # type: ignore[index]
    assert 0 < swipe["start_s"] < swipe["end_s"] < 0.5


def test_decode_masks_card_data_without_reveal(
    synth_file: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = synth_file("one.wav", "--pan", PAN, "--channels", "2", "--reverse")
    code, records, _ = _decode_json(capsys, str(path))
    assert code == 0
    tracks = records[0]["swipes"][0]["tracks"]  # type: ignore[index]
    assert [track["text"] for track in tracks] == [
        "B411111******1111^*********^3012101******",
        "411111******1111=3012101******",
    ]
    assert {track["direction"] for track in tracks} == {"reverse"}
    assert main(["decode", str(path)]) == 0
    human = capsys.readouterr().out
    assert PAN not in human
    assert "VISA 411111******1111 exp 12/30" in human


def test_decode_directory_with_an_unreadable_file(
    tmp_path: Path, synth_file: Callable[..., Path], posbridge: Runner
) -> None:
    folder = tmp_path / "recordings"
    folder.mkdir()
    synth_file("recordings/a.wav", "--seed", "5")
    synth_file("recordings/b.wav", "--seed", "6", "--bits", "24", "--rate", "44100")
    write_wav(folder / "c_silence.wav", np.zeros(4800, dtype=np.float32), 48_000)
    (folder / "d_broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk")
    (folder / "notes.txt").write_text("not audio")
    result = posbridge("decode", "--json", str(folder))
    assert result.code == 2
    records = result.json_lines()
    assert [Path(record["file"]).name for record in records] == ["a.wav", "b.wav", "c_silence.wav"]
    assert [len(record["swipes"]) for record in records] == [1, 1, 0]
    assert records[1]["rate"] == 44100
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1
    assert "d_broken.wav" in errors[0]
    assert "Traceback" not in result.stderr


def test_decode_missing_file_is_one_line_and_exit_2(posbridge: Runner, tmp_path: Path) -> None:
    result = posbridge("decode", str(tmp_path / "missing.wav"))
    assert result.code == 2
    assert result.stderr.strip().splitlines() == [
        f"posbridge: error: {tmp_path / 'missing.wav'}: no such file or directory"
    ]


def test_decode_raw_pcm(
    tmp_path: Path, synth_file: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    samples, _ = read_wav(synth_file("x.wav", "--pan", PAN, "--rate", "32000"))
    raw = tmp_path / "x.raw"
    raw.write_bytes(sample_format("s16be").encode(samples))
    code, records, _ = _decode_json(
        capsys, "--raw", "--rate", "32000", "--format", "s16be", "--reveal", str(raw)
    )
    assert code == 0
    assert records[0]["swipes"][0]["tracks"][0]["text"] == TRACK1  # type: ignore[index]


@pytest.mark.parametrize(
    "argv",
    [
        ["decode", "--rate", "48000", "x.wav"],
        ["decode", "--raw", "x.raw"],
        ["decode", "--raw", "--rate", "8000", "--format", "s13le", "x.raw"],
        ["synth", "out.wav", "--pan", "4111111111111112"],
        ["synth", "out.wav", "--track", "1", "--track", "2"],
        ["synth", "out.wav", "--speed", "0"],
    ],
)
def test_bad_arguments_exit_2_with_one_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "4111111111111112" not in err


def test_synth_json_is_masked_and_reveal_shows_the_tracks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "t2.wav"
    assert (
        main(["synth", str(out), "--track", "2", "--seed", "9", "--speed", "60", "--snr", "25", "--json"])
        == 0
    )
    masked = json.loads(capsys.readouterr().out)
    assert masked["tracks"][0]["format"] == "bcd"
    assert "*" in masked["tracks"][0]["text"]
    assert (
        main(
            [
                "synth",
                str(out),
                "--track",
                "2",
                "--seed",
                "9",
                "--speed",
                "60",
                "--snr",
                "25",
                "--json",
                "--reveal",
            ]
        )
        == 0
    )
    clear = json.loads(capsys.readouterr().out)
    assert clear["card"] == masked["card"]
    assert clear["tracks"][0]["text"].startswith(masked["card"]["pan"][:6])
    assert "*" not in clear["tracks"][0]["text"]
    assert main(["decode", "--json", "--reveal", str(out)]) == 0
    decoded = json.loads(capsys.readouterr().out)
    assert decoded["swipes"][0]["tracks"][0]["text"] == clear["tracks"][0]["text"]


def _bad_recordings() -> dict[str, tuple[bytes, int]]:
    """name -> (file bytes, expected exit code): 0 means read and no swipe, 2 a one-line error."""
    import struct

    from posbridge.hardware.audio import encode_wav

    silence = encode_wav(np.zeros(48_000, dtype=np.float32), 48_000)
    noise = encode_wav(np.random.default_rng(1).uniform(-0.8, 0.8, 48_000).astype(np.float32), 48_000)
    nan = bytearray(encode_wav(np.zeros(100, dtype=np.float32), 48_000, "f32le"))
    nan[-4:] = struct.pack("<f", float("nan"))
    inf = bytearray(encode_wav(np.zeros(100, dtype=np.float32), 48_000, "f64le"))
    inf[-8:] = struct.pack("<d", float("inf"))
    rate_zero = bytearray(silence)
    rate_zero[24:28] = b"\0\0\0\0"
    lying = bytearray(silence[:1000])
    lying[40:44] = struct.pack("<I", 10**8)
    return {
        "empty": (b"", 2),
        "one-sample": (encode_wav(np.array([0.5], dtype=np.float32), 48_000), 0),
        "nan": (bytes(nan), 2),
        "inf": (bytes(inf), 2),
        "silence": (silence, 0),
        "noise": (noise, 0),
        "truncated": (silence[:777], 0),
        "lying-header": (bytes(lying), 0),
        "rate-zero": (bytes(rate_zero), 2),
        "text": (b"this is not audio at all", 2),
    }


@pytest.mark.parametrize("name", sorted(_bad_recordings()))
def test_decode_bad_recordings_give_no_swipe_or_one_error_line(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, expected_code = _bad_recordings()[name]
    path = tmp_path / f"{name}.wav"
    path.write_bytes(data)
    code = main(["decode", "--json", str(path)])
    captured = capsys.readouterr()
    assert code == expected_code
    if code == 0:
        assert json.loads(captured.out)["swipes"] == []
    else:
        assert captured.out == ""
        assert len(captured.err.strip().splitlines()) == 1
        assert name in captured.err
