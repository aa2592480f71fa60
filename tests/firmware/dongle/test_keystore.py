"""Key file provisioning and the KSN counter that is never reused (X9.24-3 §6.5)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from posbridge.firmware.keystore import RESERVE_AHEAD, KsnCounter, load_key, provision
from posbridge.protocols import dukpt
from posbridge.protocols.errors import KeyMaterialError, KsnExhaustedError

from .conftest import TEST_BDK, TEST_KEY_ID


def test_provision_writes_an_owner_only_key_file(key_file: Path) -> None:
    assert key_file.stat().st_mode & 0o777 == 0o600
    key = load_key(key_file)
    assert key.scheme == "aes128"
    assert key.initial_key == dukpt.derive_aes_initial_key(TEST_BDK, TEST_KEY_ID)
    assert key.initial_ksn == TEST_KEY_ID + bytes(4)
    assert key.serial_number == "PB-TEST-1"
    assert TEST_BDK.hex().upper() not in key_file.read_text()


def test_tdes_provisioning_uses_the_ipek(tmp_path: Path) -> None:
    bdk = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
    key = provision(bdk, bytes.fromhex("FFFF9876543210E00007"), tmp_path / "k")
    assert key.scheme == "tdes"
    assert key.initial_ksn.hex().upper() == "FFFF9876543210E00000"
    assert key.initial_key.hex().upper() == "6AC292FAA1315B4D858AB3A3D7D5933A"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_key_file_readable_by_others_is_refused(key_file: Path, mode: int) -> None:
    os.chmod(key_file, mode)
    with pytest.raises(KeyMaterialError, match="chmod 600"):
        load_key(key_file)


def test_missing_or_damaged_key_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyMaterialError, match="does not exist"):
        load_key(tmp_path / "none")
    bad = tmp_path / "bad"
    bad.write_text("{not json")
    bad.chmod(0o600)
    with pytest.raises(KeyMaterialError, match="not a posbridge"):
        load_key(bad)
    with pytest.raises(KeyMaterialError):
        provision(TEST_BDK, b"\x01\x02", tmp_path / "k")


def test_counter_survives_a_crash_without_reuse(key_file: Path, tmp_path: Path) -> None:
    key = load_key(key_file)
    state = tmp_path / "state.json"
    first = KsnCounter(key, state)
    used = [first.reserve() for _ in range(5)]
    assert [dukpt.AesKsn.from_bytes(ksn).counter for ksn, _ in used] == [1, 2, 3, 4, 5]
    assert [seq for _, seq in used] == [1, 2, 3, 4, 5]
    again = KsnCounter(key, state)
    ksn, seq = again.reserve()
    assert dukpt.AesKsn.from_bytes(ksn).counter > RESERVE_AHEAD
    assert seq > 5
    assert ksn not in {old for old, _ in used}


def test_counter_persists_before_returning(key_file: Path, tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    counter = KsnCounter(load_key(key_file), state)
    for _ in range(RESERVE_AHEAD + 3):
        ksn, seq = counter.reserve()
        on_disk = json.loads(state.read_text())
        assert on_disk["counter"] >= dukpt.AesKsn.from_bytes(ksn).counter
        assert on_disk["seq"] >= seq


def test_reprovisioned_key_restarts_the_counter_but_not_the_sequence(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    old = provision(TEST_BDK, TEST_KEY_ID, tmp_path / "k1")
    _, old_seq = KsnCounter(old, state).reserve()
    new = provision(TEST_BDK, bytes.fromhex("0000000000000042"), tmp_path / "k2")
    ksn, seq = KsnCounter(new, state).reserve()
    assert ksn == bytes.fromhex("0000000000000042") + (1).to_bytes(4, "big")
    assert seq > old_seq


def test_damaged_state_is_refused(key_file: Path, tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    state.write_text("garbage")
    with pytest.raises(KeyMaterialError, match="damaged"):
        KsnCounter(load_key(key_file), state)


def test_exhausted_counter_refuses(key_file: Path, tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    counter = KsnCounter(load_key(key_file), state)
    counter.counter = 0xFFFF0000
    counter.state.counter = 0xFFFF0000
    with pytest.raises(KsnExhaustedError):
        counter.reserve()
