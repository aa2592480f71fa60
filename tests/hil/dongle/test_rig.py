"""The Pi-to-desktop path end to end (issue 4, "Tests"): faults, SIGKILLs, and no clear PAN on the host."""

from __future__ import annotations

import random
import signal
import subprocess
import time
from typing import Any

import pytest
from posbridge.hardware.audio import open_audio
from posbridge.protocols import dukpt
from posbridge.protocols.types import EncryptedCardData, MaskedCard

from .conftest import TEST_BDK_HEX, Rig, stop

pytestmark = pytest.mark.slow

FAULTS = "corrupt=0.01&drop=0.01&duplicate=0.01"
KILLS = 6


def _expected(audio_url: str) -> list[Any]:
    with open_audio(audio_url) as source:
        return list(source.expected)  # type: ignore[attr-defined]


def _decrypt(record: dict[str, Any]) -> str:
    card = record["card"]
    data = EncryptedCardData(
        ksn=bytes.fromhex(record["ksn"]),
        ciphertext=bytes.fromhex(record["ciphertext"]),
        masked=MaskedCard(card["pan"][:6], card["pan"][-4:], len(card["pan"]), card["brand"]),
        scheme=record["scheme"],
    )
    tracks = dukpt.decrypt_tracks(bytes.fromhex(TEST_BDK_HEX), data)
    return tracks[0].text


def _check_exactly_once_in_order(rig: Rig, expected: list[Any]) -> None:
    records = rig.host_records()
    assert len(records) == len(expected)
    seqs = [record["seq"] for record in records]
    assert seqs == sorted(set(seqs)), "every swipe once, in order"
    assert len({record["ksn"] for record in records}) == len(records), "no KSN used twice"
    for record, swipe in zip(records, expected, strict=True):
        assert _decrypt(record) == swipe.tracks[0].text
        assert record["card"]["pan"] == swipe.card.masked.masked_pan
    written = rig.host_output()
    for swipe in expected:
        assert swipe.card.pan not in written, "the host wrote a clear PAN"
        assert swipe.tracks[0].text not in written


def test_clean_link_delivers_and_the_dongle_exits_when_idle(rig: Rig) -> None:
    audio = "virtual://?swipes=5&seed=40&gap=0.4"
    host = rig.start_host(count=5)
    dongle = rig.start_dongle(audio, rig.cable.paths[0])
    expected = _expected(audio)
    assert host.wait(timeout=90) == 0
    assert dongle.wait(timeout=30) == 0
    _check_exactly_once_in_order(rig, expected)


def test_200_swipes_through_corrupted_dropped_and_duplicated_bytes(rig: Rig) -> None:
    audio = "virtual://?swipes=200&seed=41&gap=0.4"
    host = rig.start_host(count=200)
    dongle = rig.start_dongle(audio, f"fault://?{FAULTS}&seed=5&url={rig.cable.paths[0]}")
    expected = _expected(audio)
    try:
        assert host.wait(timeout=240) == 0
    finally:
        stop(dongle)
        stop(host, grace_s=0)
    _check_exactly_once_in_order(rig, expected)
    assert "bad_crc=0 " not in rig.host_output(), "the faults reached the host"


def _wait_for_records(rig: Rig, count: int, dongle: subprocess.Popen[bytes], limit_s: float = 60.0) -> None:
    deadline = time.monotonic() + limit_s
    while len(rig.host_records()) < count and dongle.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)


def test_sigkilled_firmware_loses_no_swipe_and_reuses_no_ksn(rig: Rig) -> None:
    """Kills alternate between a random moment after start (often mid-capture) and right after the
    host got a few more swipes (mid-sending)."""
    total = 40
    audio = f"virtual://?swipes={total}&seed=42&gap=0.4"
    link = f"fault://?{FAULTS}&url={rig.cable.paths[0]}"
    host = rig.start_host(count=total)
    kills = random.Random(20261126)
    delivered_at_kill = []
    try:
        for attempt in range(KILLS):
            dongle = rig.start_dongle(audio, link)
            if attempt % 2 == 0:
                time.sleep(kills.uniform(0.5, 3.0))
            else:
                _wait_for_records(rig, len(rig.host_records()) + kills.randint(1, 5), dongle)
            if dongle.poll() is None:
                dongle.send_signal(signal.SIGKILL)
                delivered_at_kill.append(len(rig.host_records()))
            dongle.wait()
            if host.poll() is not None:
                break
        dongle = rig.start_dongle(audio, link)
        expected = _expected(audio)
        assert host.wait(timeout=120) == 0
    finally:
        stop(dongle)
        stop(host, grace_s=0)
    _check_exactly_once_in_order(rig, expected)
    print("swipes delivered at each SIGKILL:", delivered_at_kill)
    assert sum(0 < delivered < total for delivered in delivered_at_kill) >= 2, "kills hit while sending"


def test_dongle_refuses_a_key_file_others_can_read(rig: Rig) -> None:
    rig.key_file.chmod(0o644)
    result = subprocess.run(
        [
            *__import__("tests.hil.dongle.conftest", fromlist=["posbridge"]).posbridge(
                "dongle",
                "--audio",
                "virtual://?swipes=1",
                "--link",
                "loop://",
                "--key-file",
                str(rig.key_file),
            )
        ],
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert b"chmod 600" in result.stderr
    assert b"Traceback" not in result.stderr
