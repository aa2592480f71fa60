"""Host driver for the Raspberry Pi dongle: :class:`SerialDongle` over :func:`open_link` (issue 4).

A reader thread owns the link: it decodes frames (:mod:`posbridge.protocols.link`), reassembles
fragmented swipes, answers each fragment with FRAGMENT_ACK and each whole frame with ACK, drops
retransmitted duplicates by (device serial number, sequence), says HELLO until the dongle has
told its DEVICE_INFO, and reopens the link when the device is unplugged. The application reads
events from an async iterator: :class:`DongleSwipe` (an :class:`EncryptedCardData`, never clear
track data) and :class:`DongleChip` (EMV TLV bytes). :attr:`SerialDongle.quality` reports the
link's health.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from posbridge.hardware.link import Link, open_link
from posbridge.protocols.errors import DeviceError, FrameError, UnsupportedFrame
from posbridge.protocols.link import (
    Ack,
    ChipMessage,
    DeviceInfo,
    ErrorMessage,
    FragmentAck,
    Frame,
    FrameChecksumError,
    FrameDecoder,
    FrameFlags,
    Heartbeat,
    Hello,
    MessageType,
    Reassembler,
    SwipeMessage,
    encode_frame,
    nak_for,
)
from posbridge.protocols.types import EncryptedCardData

log = logging.getLogger(__name__)

ACK_COPIES = 2
"""Each ACK is sent twice: it costs a few bytes and halves the resends a lost ACK causes."""
MAX_HELD = 64
"""Whole frames kept (not yet ACKed) while the dongle has not said who it is."""


@dataclass(frozen=True)
class DongleSwipe:
    """A swipe the dongle encrypted: ``card`` holds the KSN, ciphertext and masked card.

    ``decoded_at`` is the dongle's wall clock when it decoded the swipe and ``received_at`` the
    host's (Unix seconds); ``quality`` is the decoder's 0–1 confidence.
    """

    device: str
    seq: int
    card: EncryptedCardData
    quality: float
    decoded_at: float
    received_at: float


@dataclass(frozen=True)
class DongleChip:
    """An EMV chip read relayed by the dongle: the BER-TLV bytes (kept out of ``repr``)."""

    device: str
    seq: int
    tlv: bytes = field(repr=False)
    received_at: float = 0.0


DongleEvent = DongleSwipe | DongleChip


@dataclass
class LinkQuality:
    """Link health: frames decoded, CRC failures, other bad frames, retransmissions, duplicates."""

    frames_ok: int = 0
    bad_crc: int = 0
    malformed: int = 0
    unsupported: int = 0
    retransmits: int = 0
    duplicates: int = 0
    delivered: int = 0
    reconnects: int = 0
    last_heartbeat: float | None = None
    outbox_depth: int = 0

    def to_json(self) -> dict[str, int | float | None]:
        """The counters as a JSON-ready dict."""
        return dict(vars(self))


def _acks(seq: int) -> list[Frame]:
    return [Frame.of(Ack(seq), 0)] * ACK_COPIES


class DongleSession:
    """The host side of the link protocol, without I/O: feed received bytes, get replies and events.

    ``feed(data)`` returns ``(replies, events)``: frames to write back to the dongle and events to
    deliver, in order. Pure and synchronous so that tests and rigs can drive it directly.
    """

    def __init__(self, remember: int = 4096) -> None:
        self.decoder = FrameDecoder()
        self.reassembler = Reassembler()
        self.quality = LinkQuality()
        self.device: str | None = None
        self.device_info: DeviceInfo | None = None
        self._remember = remember
        self._delivered: dict[str, collections.OrderedDict[int, None]] = {}
        self._held: list[tuple[Frame, SwipeMessage | ChipMessage]] = []

    def feed(self, data: bytes) -> tuple[list[Frame], list[DongleEvent]]:
        """Process received bytes."""
        replies: list[Frame] = []
        events: list[DongleEvent] = []
        for item in self.decoder.feed(data):
            if isinstance(item, FrameError):
                self._count_error(item)
                if isinstance(item, UnsupportedFrame):
                    replies.append(Frame.of(nak_for(item), 0))
                continue
            self.quality.frames_ok += 1
            if item.flags & FrameFlags.RETRANSMIT:
                self.quality.retransmits += 1
            try:
                self._handle(item, replies, events)
            except FrameError as error:
                self._count_error(error)
                replies.append(Frame.of(nak_for(error), 0))
        return replies, events

    def _count_error(self, error: FrameError) -> None:
        if isinstance(error, FrameChecksumError):
            self.quality.bad_crc += 1
        elif isinstance(error, UnsupportedFrame):
            self.quality.unsupported += 1
        else:
            self.quality.malformed += 1

    def _handle(self, frame: Frame, replies: list[Frame], events: list[DongleEvent]) -> None:
        if frame.type is MessageType.FRAGMENT:
            if self.device is not None and frame.seq in self._delivered.get(self.device, {}):
                self.quality.duplicates += 1
                replies.extend(_acks(frame.seq))
                return
            whole = self.reassembler.add(frame)
            if whole is None:
                replies.append(Frame.of(FragmentAck(frame.seq, self.reassembler.received_mask(frame.seq)), 0))
                return
            frame = whole
        message = frame.message()
        if isinstance(message, SwipeMessage | ChipMessage):
            self._deliver(frame, message, replies, events)
        elif isinstance(message, DeviceInfo):
            self.device_info = message
            self.device = message.serial_number
            held, self._held = self._held, []
            for held_frame, held_message in held:
                self._deliver(held_frame, held_message, replies, events)
        elif isinstance(message, Hello):
            replies.append(self.hello())
        elif isinstance(message, Heartbeat):
            self.quality.last_heartbeat = time.time()
            self.quality.outbox_depth = message.outbox_depth
        elif isinstance(message, ErrorMessage):
            log.warning("dongle %s reports error %d: %s", self.device, message.code, message.text)

    def _deliver(
        self,
        frame: Frame,
        message: SwipeMessage | ChipMessage,
        replies: list[Frame],
        events: list[DongleEvent],
    ) -> None:
        if self.device is None:
            if all(held.seq != frame.seq for held, _ in self._held) and len(self._held) < MAX_HELD:
                self._held.append((frame, message))
            replies.append(self.hello())
            return
        seen = self._delivered.setdefault(self.device, collections.OrderedDict())
        if frame.seq in seen:
            self.quality.duplicates += 1
        else:
            now = time.time()
            if isinstance(message, SwipeMessage):
                events.append(
                    DongleSwipe(
                        self.device, frame.seq, message.data, message.quality, message.decoded_at, now
                    )
                )
            else:
                events.append(DongleChip(self.device, frame.seq, message.tlv, now))
            self.quality.delivered += 1
            seen[frame.seq] = None
            while len(seen) > self._remember:
                seen.popitem(last=False)
        replies.extend(_acks(frame.seq))

    def hello(self) -> Frame:
        """The HELLO the host sends until it knows the device."""
        return Frame.of(Hello(role="host"), 0)


class SerialDongle:
    """A dongle on a serial link: ``async for event in SerialDongle(url): ...``.

    Opening and reading happen on a thread (started by :meth:`start`, or on first iteration);
    :meth:`close` stops it. The link is reopened every ``reconnect_s`` while it is unavailable;
    with ``wait_for_device=False`` a link that cannot be opened the first time raises its
    :class:`DeviceError` from the iteration instead (a one-off command naming a wrong device).
    """

    def __init__(
        self,
        url: str,
        *,
        reconnect_s: float = 0.5,
        hello_interval_s: float = 0.25,
        read_timeout_s: float = 0.01,
        link_factory: Callable[[str], Link] | None = None,
        wait_for_device: bool = True,
    ) -> None:
        self.url = url
        self.reconnect_s = reconnect_s
        self.wait_for_device = wait_for_device
        self.hello_interval_s = hello_interval_s
        self.session = DongleSession()
        self._link_factory = link_factory or (
            lambda link_url: open_link(link_url, read_timeout=read_timeout_s)
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[DongleEvent | BaseException | None] | None = None
        self._opened = 0

    @property
    def quality(self) -> LinkQuality:
        """The link's counters so far."""
        return self.session.quality

    @property
    def device(self) -> str | None:
        """The dongle's serial number once it has said DEVICE_INFO."""
        return self.session.device

    def start(self) -> None:
        """Start the reader thread (idempotent); must run inside the event loop that iterates."""
        if self._thread is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        self._thread = threading.Thread(target=self._run, name=f"dongle {self.url}", daemon=True)
        self._thread.start()

    def _put(self, item: DongleEvent | BaseException | None) -> None:
        assert self._loop is not None
        assert self._queue is not None
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    link = self._link_factory(self.url)
                except DeviceError as error:
                    if self._opened == 0 and not self.wait_for_device:
                        raise
                    log.debug("dongle link %s unavailable: %s", self.url, error)
                    self._stop.wait(self.reconnect_s)
                    continue
                self._opened += 1
                if self._opened > 1:
                    self.session.quality.reconnects += 1
                try:
                    self._serve(link)
                except DeviceError as error:
                    log.warning("dongle link %s lost: %s", self.url, error)
                finally:
                    link.close()
                if not self._stop.is_set():
                    self._stop.wait(self.reconnect_s)
        except BaseException as error:  # handed to the iterating task
            self._put(error)
        finally:
            self._put(None)

    def _serve(self, link: Link) -> None:
        self.session.decoder = FrameDecoder()
        self.session.device = None
        next_hello = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if self.session.device is None and now >= next_hello:
                link.write(encode_frame(self.session.hello()))
                next_hello = now + self.hello_interval_s
            replies, events = self.session.feed(link.read())
            for event in events:
                self._put(event)
            if replies:
                link.write(b"".join(encode_frame(reply) for reply in replies))

    def close(self) -> None:
        """Stop the reader thread and close the link."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    async def events(self) -> AsyncIterator[DongleEvent]:
        """Events in arrival order until :meth:`close` (re-raises a failure of the reader thread)."""
        self.start()
        assert self._queue is not None
        while True:
            item = await self._queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def __aiter__(self) -> AsyncIterator[DongleEvent]:
        return self.events()

    async def __aenter__(self) -> SerialDongle:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()
