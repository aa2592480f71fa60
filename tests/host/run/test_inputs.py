"""Configured inputs on the real paths: a Pi dongle over a null-modem pty, a virtual:// BLE scene."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

from posbridge.firmware.dongle import run_dongle
from posbridge.firmware.keystore import provision
from posbridge.hardware.link import NullModem
from posbridge.host.config import load_config
from posbridge.host.lane import Lane
from posbridge.host.processor_sim import TEST_BDK, ProcessorSim


async def wait_for(predicate: object, timeout: float) -> None:
    assert callable(predicate)
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")


async def test_dongle_swipe_is_captured_encrypted_and_approved(tmp_path: Path) -> None:
    key_file = tmp_path / "dongle.key"
    provision(TEST_BDK, bytes.fromhex("0123456789ABCDEF"), key_file, serial_number="PB-TEST-1")
    sim = ProcessorSim()
    processor_url = await sim.start()
    stop = threading.Event()
    lines: list[str] = []
    with NullModem() as cable:
        firmware = threading.Thread(
            target=run_dongle,
            args=("virtual://?at=1.5&seed=11&realtime=1&channels=2", cable.paths[0], key_file),
            kwargs={"stop": stop}, daemon=True,
        )
        config = load_config(environ={}, state_dir=tmp_path / "lane", processor_url=processor_url,
                             dongles_links=(cable.paths[1],))
        lane = Lane(config, on_line=lines.append)
        await lane.start()
        try:
            await lane.open_sale(4321, None)
            firmware.start()
            try:
                await wait_for(lambda: lane.sale is not None and lane.sale.status == "approved", 20)
            except AssertionError:
                raise AssertionError(f"{lane.sale} {lines}") from None
        finally:
            stop.set()
            await lane.stop()
            await sim.stop()
            firmware.join(5)
    assert any(line.startswith(f"dongle {cable.paths[1]}: encrypted read") for line in lines), lines
    assert lane.metrics.counts["dongle_reads"] == 1
    ledger = sim.ledger()
    assert ledger["charged_total"] == 4321
    assert next(iter(ledger["records"].values()))["status"] == "approved"


async def test_configured_virtual_scanner_checks_in_a_registered_customer(tmp_path: Path) -> None:
    registry = tmp_path / "customers.json"
    registry.write_text(json.dumps({"customers": [{
        "id": "cust-0001", "name": "Ada", "account_token": "tok_ada",
        "beacons": ["ibeacon:e2c56db5-dffb-48d2-b060-d0f5a71096e0:1:1"],
    }]}), encoding="utf-8")
    config = load_config(environ={}, state_dir=tmp_path / "lane", scanner_url="virtual://demo?duration=60",
                         customers_registry=str(registry), processor_url="http://127.0.0.1:9")
    lines: list[str] = []
    lane = Lane(config, on_line=lines.append)
    await lane.start()
    try:
        await wait_for(lambda: lane.metrics.counts["checkouts"] >= 1, 30)
    finally:
        await lane.stop()
    assert "check-in: Ada at the counter" in lines
    assert lane.metrics.counts["checkins"] == 1
    assert "check-out: Ada" in lines


async def test_configured_chip_reader_from_a_recording(tmp_path: Path) -> None:
    import random

    import numpy as np
    from posbridge.firmware.chip_reader import ChipReader, make_test_transcript
    from posbridge.hardware.audio.wavfile import write_wav

    transcript = make_test_transcript(random.Random(4), expiry="3012", amount=1500)
    silence = np.zeros(48_000, dtype=np.float32)
    audio = np.concatenate([silence, ChipReader("bell202", 48_000).send(transcript), silence])
    recording = tmp_path / "chip.wav"
    write_wav(recording, audio, 48_000)
    config = load_config(environ={}, state_dir=tmp_path / "lane", chip_readers=(f"wav://{recording}?realtime=1",),
                         processor_url="http://127.0.0.1:9")
    lines: list[str] = []
    lane = Lane(config, on_line=lines.append)
    await lane.start()
    try:
        await lane.open_sale(1500, None)
        await wait_for(lambda: lane.metrics.counts["chip_reads"] == 1, 20)
        await wait_for(lambda: lane.metrics.counts["captures"] == 1, 5)
        items = lane.snapshot()["queue"]["items"]
    finally:
        await lane.stop()
    assert any(line.startswith(f"chip wav://{recording}?realtime=1: chip ") for line in lines), lines
    assert items[0]["source"] == "chip"
    assert items[0]["amount"] == 1500
