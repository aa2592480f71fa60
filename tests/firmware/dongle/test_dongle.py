"""The dongle firmware against the real host driver over a pty null-modem cable (pyserial both ends)."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from posbridge.firmware.dongle import Dongle, DongleSettings, default_state_dir, run_dongle
from posbridge.firmware.keystore import DongleKey, KsnCounter
from posbridge.firmware.outbox import Outbox
from posbridge.hardware.link import NullModem, open_link
from posbridge.host.dongle import DongleSwipe, SerialDongle
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


def _start(target: object, **kwargs: object) -> threading.Thread:
    thread = threading.Thread(target=target, kwargs=kwargs, daemon=True)  # type: ignore[arg-type]
    thread.start()
    return thread


async def test_swipes_arrive_in_order_and_decrypt(
    cable: NullModem, key_file: Path, rng: random.Random
) -> None:
    swipes = make_swipes(6, rng)
    stop = threading.Event()
    thread = _start(
        run_dongle,
        audio_url="",
        link_url=cable.paths[0],
        key_file=key_file,
        exit_when_idle=True,
        swipes=swipes,
        stop=stop,
    )
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
    first = Dongle(
        dongle_key, KsnCounter(dongle_key, state_dir / "state.json"), Outbox(state_dir / "outbox"), ""
    )
    first.capture(swipes[:3])
    first_ksns = _outbox_ksns(state_dir)
    assert len(first_ksns) == 3
    del first
    stop = threading.Event()
    thread = _start(
        run_dongle,
        audio_url="",
        link_url=cable.paths[0],
        key_file=key_file,
        exit_when_idle=True,
        swipes=swipes,
        stop=stop,
    )
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
    dongle = Dongle(
        dongle_key,
        KsnCounter(dongle_key, tmp_path / "s.json"),
        Outbox(tmp_path / "o"),
        cable.paths[0],
        DongleSettings(heartbeat_s=60),
    )
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
            host.write(link.cobs_encode(body + link.crc32c(body).to_bytes(4, "big")) + b"\x00")
            host.write(b"\x03garbage\x00")
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
    dongle = Dongle(dongle_key, KsnCounter(dongle_key, tmp_path / "s.json"), Outbox(tmp_path / "o"), "")
    noise = Swipe((Track(1, TrackFormat.ALPHA, "NOT A CARD"),), 0.0, 0.5)
    assert dongle.accept(noise) is None
    assert dongle.stats.swipes_skipped == 1
    assert len(dongle.outbox) == 0
