"""The dongle firmware against the real host driver over a pty null-modem cable (pyserial both ends)."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from posbridge.firmware.dongle import Dongle, DongleSettings, default_state_dir, run_dongle
from posbridge.firmware.keystore import DongleKey, KsnCounter, provision
from posbridge.firmware.outbox import Outbox
from posbridge.hardware.link import NullModem, open_link
from posbridge.host.dongle import DongleChip, DongleSwipe, SerialDongle
from posbridge.protocols import dukpt, link
from posbridge.protocols.types import Swipe, Track, TrackFormat

from .conftest import TEST_BDK, make_swipes


@pytest.fixture
def cable() -> Iterator[NullModem]:
    with NullModem() as modem:
        yield modem


async def _collect(url: str, count: int, timeout_s: float = 60.0) -> tuple[list[DongleSwipe], SerialDongle]:
    host = SerialDongle(url, reconnect_s=0.05)
    got: list[DongleSwipe] = []
    async with asyncio.timeout(timeout_s), host:
        async for event in host:
            assert isinstance(event, DongleSwipe)
            got.append(event)
            if len(got) == count:
                break
    return got, host


def _run_dongle_until_idle(cable: NullModem, key_file: Path, swipes: list[Swipe]) -> threading.Thread:
    """``run_dongle`` on the cable's first end with ``swipes`` as its source, on a thread."""
    return _start(
        run_dongle,
        audio_url="",
        link_url=cable.paths[0],
        key_file=key_file,
        exit_when_idle=True,
        swipes=swipes,
    )


def _dongle(
    key: DongleKey, state_dir: Path, link_url: str = "", settings: DongleSettings | None = None
) -> Dongle:
    """A dongle keeping its KSN counter and outbox in ``state_dir``, laid out as ``run_dongle`` does."""
    counter, outbox = KsnCounter(key, state_dir / "state.json"), Outbox(state_dir / "outbox")
    return Dongle(key, counter, outbox, link_url, settings or DongleSettings())


def _start(target: object, **kwargs: object) -> threading.Thread:
    thread = threading.Thread(target=target, kwargs=kwargs, daemon=True)  # type: ignore[arg-type]
    thread.start()
    return thread


async def test_swipes_arrive_in_order_and_decrypt(
    cable: NullModem, key_file: Path, rng: random.Random
) -> None:
    swipes = make_swipes(6, rng)
    thread = _run_dongle_until_idle(cable, key_file, swipes)
    got, host = await _collect(cable.paths[1], len(swipes))
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert [event.seq for event in got] == sorted(event.seq for event in got)
    assert len({event.card.ksn for event in got}) == len(swipes)
    for event, swipe in zip(got, swipes, strict=True):
        assert event.device == "PB-TEST-1"
        assert dukpt.decrypt_tracks(TEST_BDK, event.card)[0].text == swipe.tracks[0].text
        pan = swipe.tracks[0].text[1:17]
        assert event.card.masked.masked_pan == pan[:6] + "******" + pan[-4:]
    assert host.quality.delivered == len(swipes)
    assert host.quality.frames_ok > 0


async def test_outbox_survives_a_restart_and_the_host_arriving_late(
    cable: NullModem, key_file: Path, dongle_key: DongleKey, rng: random.Random
) -> None:
    swipes = make_swipes(4, rng)
    state_dir = default_state_dir(key_file)
    first = _dongle(dongle_key, state_dir)
    first.capture(swipes[:3])
    first_ksns = _outbox_ksns(state_dir)
    assert len(first_ksns) == 3
    del first
    thread = _run_dongle_until_idle(cable, key_file, swipes)
    await asyncio.sleep(0.3)
    got, _ = await _collect(cable.paths[1], 4)
    thread.join(timeout=10)
    assert [event.card.masked.last4 for event in got] == [swipe.tracks[0].text[13:17] for swipe in swipes]
    assert {event.card.ksn for event in got[:3]} == first_ksns
    assert len({event.card.ksn for event in got}) == 4
    assert len(Outbox(state_dir / "outbox")) == 0


def _outbox_ksns(state_dir: Path) -> set[bytes]:
    ksns = set()
    for entry in Outbox(state_dir / "outbox").entries():
        message = entry.frame.message()
        assert isinstance(message, link.SwipeMessage)
        ksns.add(message.data.ksn)
    return ksns


def test_unknown_frames_are_answered_with_nak(
    cable: NullModem, dongle_key: DongleKey, tmp_path: Path
) -> None:
    dongle = _dongle(dongle_key, tmp_path, cable.paths[0], DongleSettings(heartbeat_s=60))
    dongle.capture_done.set()
    stop = threading.Event()
    thread = _start(dongle.serve, stop=stop)
    try:
        with open_link(cable.paths[1]) as host:
            hello = link.FrameDecoder()
            for _ in range(100):
                if any(isinstance(item, link.Frame) for item in hello.feed(host.read())):
                    break
            body = bytes([1, 0x7E, 0]) + (9).to_bytes(4, "big") + bytes(2)
            host.write(b"\x03garbage\x00")
            host.write(link.cobs_encode(body + link.crc32c(body).to_bytes(4, "big")) + b"\x00")
            decoder = link.FrameDecoder()
            naks = []
            for _ in range(100):
                naks += [
                    item.message()
                    for item in decoder.feed(host.read())
                    if isinstance(item, link.Frame) and item.type is link.MessageType.NAK
                ]
                if naks:
                    break
    finally:
        stop.set()
        thread.join(timeout=5)
    assert naks == [link.Nak(acked_seq=9, reason=link.NakReason.UNSUPPORTED)]
    assert dongle.stats.bad_frames >= 2


def test_swipes_that_are_not_cards_are_skipped(dongle_key: DongleKey, tmp_path: Path) -> None:
    dongle = _dongle(dongle_key, tmp_path)
    noise = Swipe((Track(1, TrackFormat.ALPHA, "NOT A CARD"),), 0.0, 0.5)
    assert dongle.accept(noise) is None
    assert dongle.stats.swipes_skipped == 1
    assert len(dongle.outbox) == 0


async def test_host_goes_away_and_comes_back(
    cable: NullModem, dongle_key: DongleKey, tmp_path: Path, rng: random.Random
) -> None:
    swipes = make_swipes(4, rng)
    dongle = _dongle(dongle_key, tmp_path, cable.paths[0], DongleSettings(max_backoff_s=0.2))
    stop = threading.Event()
    thread = _start(dongle.serve, stop=stop)
    try:
        for swipe in swipes[:2]:
            dongle.accept(swipe)
        first, _ = await _collect(cable.paths[1], 2)
        for swipe in swipes[2:]:
            dongle.accept(swipe)
        chip = dongle.accept_chip(bytes.fromhex("9F2701809F3602001A"))
        await asyncio.sleep(0.3)
        assert len(dongle.outbox) == 3
        host = SerialDongle(cable.paths[1])
        events: list[object] = []
        async with asyncio.timeout(30), host:
            async for event in host:
                events.append(event)
                if len(events) == 3:
                    break
    finally:
        stop.set()
        thread.join(timeout=5)
    assert [event.seq for event in first] == [1, 2]
    second = [event for event in events if isinstance(event, DongleSwipe)]
    assert [dukpt.decrypt_tracks(TEST_BDK, event.card)[0].text for event in second] == [
        swipe.tracks[0].text for swipe in swipes[2:]
    ]
    chips = [event for event in events if isinstance(event, DongleChip)]
    assert [(chip_event.seq, chip_event.tlv) for chip_event in chips] == [
        (chip.seq, bytes.fromhex("9F2701809F3602001A"))
    ]


async def test_tdes_dongle_round_trip(cable: NullModem, tmp_path: Path, rng: random.Random) -> None:
    bdk = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
    key = provision(bdk, bytes.fromhex("FFFF9876543210E00000"), tmp_path / "k")
    swipes = make_swipes(2, rng)
    thread = _run_dongle_until_idle(cable, tmp_path / "k", swipes)
    got, _ = await _collect(cable.paths[1], 2)
    thread.join(timeout=10)
    assert key.scheme == "tdes"
    assert [event.card.scheme for event in got] == ["tdes", "tdes"]
    assert [dukpt.tdes_counter(event.card.ksn) for event in got] == [1, 2]
    assert [dukpt.decrypt_tracks(bdk, event.card)[0].text for event in got] == [
        s.tracks[0].text for s in swipes
    ]
