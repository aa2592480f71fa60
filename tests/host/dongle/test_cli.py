"""``posbridge dukpt derive`` and ``posbridge dongle provision`` / argument checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from posbridge.host.cli import main

TDES_KEYS = ["scheme", "ipek", "key", "pin_key", "mac_key", "data_key"]
AES_KEYS = ["scheme", "initial_key", "transaction_key", "pin_key", "mac_key", "data_key"]


def test_derive_tdes(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            ["dukpt", "derive", "--bdk", "0123456789ABCDEFFEDCBA9876543210", "--ksn", "FFFF9876543210E00001"]
        )
        == 0
    )
    record = json.loads(capsys.readouterr().out)
    assert list(record) == TDES_KEYS
    assert record["scheme"] == "tdes"
    assert record["ipek"] == "6AC292FAA1315B4D858AB3A3D7D5933A"
    assert record["pin_key"] == "042666B49184CF5C68DE9628D0397B36"


def test_derive_aes(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "dukpt",
                "derive",
                "--bdk",
                "fedcba9876543210f1f1f1f1f1f1f1f1",
                "--ksn",
                "123456789012345600000001",
            ]
        )
        == 0
    )
    record = json.loads(capsys.readouterr().out)
    assert list(record) == AES_KEYS
    assert record["scheme"] == "aes128"
    assert record["mac_key"] == "A2DC23DE6FDE0824A2BC321E08E4B8B7"
    assert record["data_key"] == "A35C412EFD41FDB98B69797C02DCD08F"


@pytest.mark.parametrize(
    ("bdk", "ksn", "message"),
    [
        ("XYZ", "123456789012345600000001", "not valid hex"),
        ("FEDCBA9876543210F1F1F1F1F1F1F1F1", "1234", "must be 10 or 12 bytes"),
        ("FEDCBA98", "123456789012345600000001", "must be 16, 24 or 32 bytes"),
        ("FEDCBA9876543210F1F1F1F1F1F1F1F1", "12345678901234560001FFFF", "more than 16 one-bits"),
        ("FEDCBA9876543210F1F1F1F1F1F1F1F1", "123456789012345600000000", "counter 0"),
    ],
)
def test_derive_bad_input_exits_2_with_one_line(
    capsys: pytest.CaptureFixture[str], bdk: str, ksn: str, message: str
) -> None:
    assert main(["dukpt", "derive", "--bdk", bdk, "--ksn", ksn]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert message in captured.err
    assert captured.err.count("\n") == 1


def test_provision_then_refuse_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bdk_file = tmp_path / "bdk.hex"
    bdk_file.write_text("FEDCBA9876543210F1F1F1F1F1F1F1F1\n")
    key_file = tmp_path / "key.json"
    args = ["dongle", "provision", "--bdk-file", str(bdk_file), "--key-id", "1234567890123456"]
    assert main([*args, "--key-file", str(key_file)]) == 0
    assert "123456789012345600000000" in capsys.readouterr().out
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert main([*args, "--key-file", str(key_file)]) == 2
    assert "--force" in capsys.readouterr().err
    assert main([*args, "--key-file", str(key_file), "--force"]) == 0


def test_provision_bad_inputs_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bdk_file = tmp_path / "bdk.hex"
    bdk_file.write_text("nothex")
    key = str(tmp_path / "k")
    assert (
        main(["dongle", "provision", "--bdk-file", str(bdk_file), "--key-id", "12", "--key-file", key]) == 2
    )
    assert (
        main(
            ["dongle", "provision", "--bdk-file", str(tmp_path / "none"), "--key-id", "12", "--key-file", key]
        )
        == 2
    )
    assert "Traceback" not in capsys.readouterr().err


def test_dongle_needs_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dongle", "--audio", "virtual://"]) == 2
    assert "--link" in capsys.readouterr().err
