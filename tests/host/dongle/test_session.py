"""The host side of the dongle link: DongleSession (no I/O) and SerialDongle reconnecting."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading

import pytest
from posbridge.host.dongle import ACK_COPIES, DongleSession, DongleSwipe, SerialDongle
from posbridge.protocols import link
from posbridge.protocols.types import EncryptedCardData, MaskedCard

_DATA = EncryptedCardData(
    ksn=bytes.fromhex("123456789012345600000003"),
    ciphertext=bytes(range(64)),
    masked=MaskedCard.from_pan("4000001234567899", "2912", "101"),
)
_INFO = link.Frame.of(link.DeviceInfo("PB-7", "fw", bytes(12)), 0)


def _wire(*frames: link.Frame) -> bytes:
    return b"".join(link.encode_frame(frame) for frame in frames)


def _swipe(seq: int) -> link.Frame:
    return link.Frame.of(link.SwipeMessage(_DATA, quality=0.8, decoded_at=1.0), seq)


def _messages(frames: list[link.Frame]) -> list[link.Message]:
    return [frame.message() for frame in frames]


def test_swipe_is_delivered_once_and_acked_every_time() -> None:
    session = DongleSession()
    session.feed(_wire(_INFO))
    replies, events = session.feed(_wire(_swipe(5)))
    assert len(events) == 1
    assert isinstance(events[0], DongleSwipe)
    assert (events[0].device, events[0].seq, events[0].card) == ("PB-7", 5, _DATA)
    assert _messages(replies) == [link.Ack(5)] * ACK_COPIES
    replies, events = session.feed(_wire(_swipe(5).with_flags(link.FrameFlags.RETRANSMIT)))
    assert events == []
    assert _messages(replies) == [link.Ack(5)] * ACK_COPIES
    assert session.quality.duplicates == 1
    assert session.quality.retransmits == 1


def test_fragments_are_reassembled_and_acknowledged_selectively() -> None:
    session = DongleSession()
    session.feed(_wire(_INFO))
    pieces = link.fragment_frame(_swipe(9), chunk_bytes=16)
    replies, events = session.feed(_wire(pieces[0], pieces[2]))
    assert events == []
    assert _messages(replies) == [link.FragmentAck(9, 0b1), link.FragmentAck(9, 0b101)]
    rest = [piece for index, piece in enumerate(pieces) if index not in (0, 2)]
    replies, events = session.feed(_wire(*rest))
    assert [event.seq for event in events] == [9]
    assert _messages(replies)[-1] == link.Ack(9)
    replies, events = session.feed(_wire(pieces[1]))
    assert events == []
    assert _messages(replies) == [link.Ack(9)] * ACK_COPIES


def test_swipes_wait_for_the_device_to_say_who_it_is() -> None:
    session = DongleSession()
    replies, events = session.feed(_wire(_swipe(1)))
    assert events == []
    assert _messages(replies) == [link.Hello(role="host")]
    replies, events = session.feed(_wire(_INFO))
    assert [(event.device, event.seq) for event in events] == [("PB-7", 1)]
    assert link.Ack(1) in _messages(replies)


def test_damaged_and_unknown_frames_are_counted_and_unknown_ones_naked() -> None:
    session = DongleSession()
    wire = bytearray(_wire(_swipe(2)))
    wire[10] ^= 0x55
    body = bytes([1, 0x66, 0]) + (4).to_bytes(4, "big") + bytes(2)
    unknown = link.cobs_encode(body + link.crc32c(body).to_bytes(4, "big")) + b"\x00"
    replies, events = session.feed(bytes(wire) + unknown + b"\x02\x01\x00")
    assert events == []
    assert _messages(replies) == [link.Nak(4, link.NakReason.UNSUPPORTED)]
    assert session.quality.bad_crc + session.quality.malformed == 2
    assert session.quality.unsupported == 1


def test_heartbeat_updates_link_quality() -> None:
    session = DongleSession()
    session.feed(_wire(link.Frame.of(link.Heartbeat(uptime_ms=5, outbox_depth=3), 0)))
    assert session.quality.outbox_depth == 3
    assert session.quality.last_heartbeat is not None
    assert session.quality.to_json()["frames_ok"] == 1


class _FakeDongleServer:
    """A TCP 'dongle' that answers HELLO with who it is and one swipe (twice), then hangs up."""

    def __init__(self, connections: int) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, args=(connections,), daemon=True)
        self.thread.start()

    def _serve(self, connections: int) -> None:
        for seq in range(1, connections + 1):
            connection, _ = self.server.accept()
            connection.settimeout(5)
            with contextlib.suppress(TimeoutError):
                connection.recv(4096)
                connection.sendall(_wire(_INFO, _swipe(seq), _swipe(seq)))
                connection.recv(4096)
            connection.close()
        self.server.close()


async def test_serial_dongle_reconnects_after_the_device_goes_away() -> None:
    server = _FakeDongleServer(connections=2)
    dongle = SerialDongle(f"socket://127.0.0.1:{server.port}", reconnect_s=0.05)
    got = []
    async with asyncio.timeout(30), dongle:
        async for event in dongle:
            got.append(event.seq)
            if len(got) == 2:
                break
    assert got == [1, 2]
    assert dongle.quality.reconnects >= 1
    assert dongle.quality.duplicates >= 1
    assert dongle.device == "PB-7"


@pytest.mark.parametrize("mutation", range(8))
def test_session_survives_random_garbage(mutation: int) -> None:
    import random

    noise = random.Random(mutation)
    session = DongleSession()
    data = bytearray(_wire(_INFO, *link.fragment_frame(_swipe(3))) * 3)
    for _ in range(20):
        data[noise.randrange(len(data))] = noise.randrange(256)
    session.feed(bytes(data))
    assert session.quality.frames_ok + session.quality.bad_crc + session.quality.malformed > 0
