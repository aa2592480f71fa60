"""The reader side end to end: transcript -> CHIP frame -> audio -> frames -> the same ChipRead."""

from __future__ import annotations

import random

import numpy as np
import pytest
from posbridge.dsp.modem.frames import ModemFrameReceiver, chip_read_of
from posbridge.firmware.chip_reader import ChipReader, make_test_transcript, terminal_sources
from posbridge.protocols import emv
from posbridge.protocols.cards import luhn_valid
from posbridge.protocols.errors import FrameError, TlvError
from posbridge.protocols.link import ChipMessage, Frame, FrameFlags
from posbridge.protocols.magstripe import card_from_tracks
from posbridge.protocols.types import Track, TrackFormat

from .conftest import skewed_noisy


def receive(profile: str, rate: int, audio: np.ndarray) -> tuple[list[Frame], ModemFrameReceiver]:
    receiver = ModemFrameReceiver(profile, rate)
    results = receiver.process(audio) + receiver.flush()
    return [item for item in results if isinstance(item, Frame)], receiver


def test_transcript_is_a_real_transaction(transcript: list[emv.ApduExchange]) -> None:
    names = [emv.parse_command_apdu(exchange.command).name for exchange in transcript]
    assert names == ["SELECT", "GET PROCESSING OPTIONS"] + ["READ RECORD"] * 3 + ["GENERATE AC"]
    assert all(emv.parse_response_apdu(exchange.response).sw == 0x9000 for exchange in transcript)
    read = emv.chip_read_from_transcript(transcript)
    assert luhn_valid(read.card.pan)
    assert (read.amount, read.currency, read.cryptogram) == (4250, "978", "ARQC")
    assert terminal_sources(transcript)[bytes.fromhex("9F02")] == bytes.fromhex("000000004250")


def test_chip_read_gives_the_card_a_swipe_gives(transcript: list[emv.ApduExchange]) -> None:
    read = emv.chip_read_from_transcript(transcript)
    track2 = emv.find_tlv(emv.parse_tlv(read.tlv), "57")
    assert track2 is not None
    text = track2.value.hex().upper().rstrip("F").replace("D", "=")
    swiped = card_from_tracks([Track(2, TrackFormat.BCD, text)])
    assert (read.card.pan, read.card.expiry, read.card.service_code) == (
        swiped.pan,
        swiped.expiry,
        swiped.service_code,
    )
    assert read.masked == swiped.masked
    assert read.card.name == "TEST/CARDHOLDER"


@pytest.mark.parametrize(("profile", "rate"), [("fast", 48000), ("fast", 44100), ("bell202", 48000)])
@pytest.mark.parametrize("clock_permille", [-20, 20])
def test_transaction_through_noise_and_clock_error(
    transcript: list[emv.ApduExchange], profile: str, rate: int, clock_permille: int
) -> None:
    expected = emv.chip_read_from_transcript(transcript)
    audio = ChipReader(profile, rate).send(transcript)
    frames, receiver = receive(profile, rate, skewed_noisy(audio, 20.0, clock_permille))
    assert len(frames) == 1
    assert chip_read_of(frames[0]) == expected
    assert receiver.stats.bad_checksum == 0


def test_damaged_frame_is_dropped_counted_and_resent(transcript: list[emv.ApduExchange]) -> None:
    reader = ChipReader("bell202", 48000)
    audio = reader.send(transcript).astype(np.float64)
    middle = audio.size // 2
    audio[middle : middle + 400] = np.random.default_rng(5).normal(0, 1.0, 400)
    frames, receiver = receive("bell202", 48000, audio)
    assert frames == []
    assert receiver.stats.bad_checksum + receiver.stats.malformed >= 1
    assert reader.pending == [1]
    frames, _ = receive("bell202", 48000, reader.retransmit())
    assert len(frames) == 1
    assert frames[0].flags & FrameFlags.RETRANSMIT
    assert chip_read_of(frames[0]) == emv.chip_read_from_transcript(transcript)
    reader.acknowledge(frames[0].seq)
    assert reader.pending == []


@pytest.mark.parametrize("profile", ["fast", "bell202"])
def test_truncated_audio_and_bit_slips_only_drop_frames(profile: str) -> None:
    rng = random.Random(9)
    reader = ChipReader(profile, 48000)
    transcripts = [make_test_transcript(rng) for _ in range(3)]
    sent = [reader.frame_for(t) for t in transcripts]
    audio = reader.modulate_frames(sent).astype(np.float64)
    samples_rng = np.random.default_rng(2)
    for trial in range(6):
        damaged = audio.copy()
        cut = int(samples_rng.integers(audio.size // 4, audio.size))
        slip_at = int(samples_rng.integers(0, cut - 50))
        slip = int(samples_rng.integers(1, 30))
        damaged = np.concatenate((damaged[:slip_at], damaged[slip_at + slip : cut]))
        receiver = ModemFrameReceiver(profile, 48000)
        results = receiver.process(damaged) + receiver.flush()
        for item in results:
            assert isinstance(item, Frame | FrameError), trial
            if isinstance(item, Frame):
                assert item in sent


def test_chip_frame_with_bad_emv_data_raises_a_typed_error() -> None:
    reader = ChipReader("fast", 48000)
    frame = Frame.of(ChipMessage(tlv=b"\x70\x03\x5a\x01\x12"), 3)
    frames, _ = receive("fast", 48000, reader.modulate_frames([frame]))
    with pytest.raises(TlvError):
        chip_read_of(frames[0])
