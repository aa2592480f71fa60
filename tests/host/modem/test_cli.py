"""``posbridge modem`` and ``posbridge emv`` end to end through main()."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from posbridge.host.cli import main

READ_RECORD = (
    "703357114761739001010119D221220117589288895F200C"
    "455850495245442F434152449F1F0E3137353839303936303030303030"
)


class _Stdin:
    def __init__(self, data: bytes) -> None:
        self.buffer = io.BytesIO(data)


def test_emv_decode_masks_unless_revealed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["emv", "decode", READ_RECORD]) == 0
    out = capsys.readouterr().out
    assert "57 Track 2 Equivalent Data" in out
    assert "476173******0119" in out
    assert "4761739001010119" not in out
    assert "EXPIRED/CARD" not in out
    assert main(["emv", "decode", READ_RECORD, "--reveal"]) == 0
    out = capsys.readouterr().out
    assert "4761739001010119" in out
    assert "EXPIRED/CARD" in out


def test_emv_decode_json_tree(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["emv", "decode", "--json", "77 0E 82 02 39 00 94 08 18 01 02 01 20 02 04 00"]) == 0
    tree = json.loads(capsys.readouterr().out)["tlv"]
    assert tree[0]["tag"] == "77"
    assert [child["tag"] for child in tree[0]["children"]] == ["82", "94"]
    assert tree[0]["children"][1]["offset"] == 6


@pytest.mark.parametrize("argv", [["emv", "decode", "70805A00"], ["emv", "decode", "XYZ"]])
def test_emv_decode_bad_input_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "Traceback" not in err


@pytest.mark.parametrize("profile", ["bell202", "fast"])
def test_modem_raw_round_trip(
    profile: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    data = np.random.default_rng(1).integers(0, 256, 300, dtype=np.uint8).tobytes()
    wav = tmp_path / "raw.wav"
    monkeypatch.setattr(sys, "stdin", _Stdin(data))
    assert main(["modem", "tx", "--profile", profile, "--raw", "-o", str(wav)]) == 0
    assert main(["modem", "rx", str(wav), "--profile", profile, "--raw"]) == 0
    assert capsysbinary.readouterr().out == data


def test_modem_framed_test_card_is_masked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wav = tmp_path / "chip.wav"
    assert main(["modem", "tx", "--profile", "fast", "--test-card", "--seed", "3", "-o", str(wav)]) == 0
    assert main(["modem", "rx", "--audio", f"wav://{wav}", "--profile", "fast", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    frame = lines[0]["frame"]
    assert frame["type"] == "CHIP"
    assert "*" in frame["card"]["pan"]
    assert frame["cryptogram"] == "ARQC"
    assert lines[-1]["summary"] == {"frames": 1, "dropped": 0, "bad_crc": 0}


def test_modem_framed_stdin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    wav = tmp_path / "framed.wav"
    monkeypatch.setattr(sys, "stdin", _Stdin(b"\x9f\x02\x06\x00\x00\x00\x00\x12\x34"))
    assert main(["modem", "tx", "--profile", "bell202", "-o", str(wav)]) == 0
    assert main(["modem", "rx", str(wav), "--profile", "bell202"]) == 0
    out = capsys.readouterr().out
    assert "frame 1 CHIP 9 bytes" in out
    assert "1 frames, 0 dropped" in out


def test_modem_rx_needs_one_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["modem", "rx", "--profile", "fast"]) == 2
    assert "PATH or --audio" in capsys.readouterr().err
