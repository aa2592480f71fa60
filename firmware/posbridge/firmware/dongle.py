"""What the Raspberry Pi dongle runs: capture → decode → encrypt → frame → send until ACKed.

The pipeline (issue 4, DESIGN.md "One picture"):

1. a capture thread reads the audio source and the streaming swipe detector;
2. each decoded swipe gets a fresh KSN, persisted before use (:class:`~.keystore.KsnCounter`), and
   its tracks are encrypted with DUKPT (ANSI X9.24-3 / X9.24-1); clear track data never leaves
   memory and is dropped once encrypted; the masked card rides along;
3. the SWIPE frame (:mod:`posbridge.protocols.link`) goes durably into the :class:`~.outbox.Outbox`;
4. the link loop sends the oldest frame as fragments, resends only the fragments the host has not
   acknowledged (selective repeat, adaptive timeout with exponential backoff), and drops the frame
   once the host ACKs it; frames go strictly in sequence order, so the host sees them in order;
5. it says HELLO and DEVICE_INFO whenever the link (re)opens or the host says HELLO, sends
   heartbeats, answers unknown frames with NAK, and reopens the link when it goes away.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from posbridge.firmware.keystore import DongleKey, KsnCounter, load_key
from posbridge.firmware.outbox import Outbox
from posbridge.hardware.link import Link, open_link
from posbridge.protocols import dukpt
from posbridge.protocols.errors import DeviceError, FrameError, TrackError, UnsupportedFrame
from posbridge.protocols.link import (
    Ack,
    ChipMessage,
    DeviceInfo,
    FragmentAck,
    Frame,
    FrameDecoder,
    FrameFlags,
    Heartbeat,
    Hello,
    MessageType,
    Nak,
    SwipeMessage,
    encode_frame,
    fragment_frame,
    nak_for,
)
from posbridge.protocols.magstripe import card_from_tracks
from posbridge.protocols.types import Swipe

log = logging.getLogger(__name__)

FIRMWARE_VERSION = "posbridge-dongle/0.1"
FAST_RETRIES = 2
"""Rounds the host leaves unanswered at the base timeout before the backoff starts doubling."""
MIN_RESEND_FRAMES = 4
"""A resend round repeats its fragments until it holds this many (noisy lines lose short rounds)."""
MAX_COPIES = 4


@dataclass(frozen=True)
class DongleSettings:
    """Timing and framing of the link loop (seconds; ``chunk_bytes`` 0 sends frames whole)."""

    heartbeat_s: float = 1.0
    min_timeout_s: float = 0.01
    max_backoff_s: float = 2.0
    reconnect_s: float = 0.25
    chunk_bytes: int = 24
    read_timeout_s: float = 0.01
    firmware_version: str = FIRMWARE_VERSION


@dataclass
class _Transmission:
    frame: Frame
    fragments: list[Frame]
    missing: set[int]
    rounds: int = 0
    silent_rounds: int = 0
    due: float = 0.0
    sent_at: float = 0.0
    timed: bool = False


@dataclass
class DongleStats:
    """Counters the dongle keeps for its heartbeat and log."""

    swipes_encrypted: int = 0
    swipes_skipped: int = 0
    frames_sent: int = 0
    retransmitted_fragments: int = 0
    acks: int = 0
    link_opens: int = 0
    bad_frames: int = 0
    errors: list[str] = field(default_factory=list)


class Dongle:
    """The dongle firmware: feed it decoded swipes (:meth:`accept`) and run its link loop (:meth:`serve`)."""

    def __init__(
        self,
        key: DongleKey,
        counter: KsnCounter,
        outbox: Outbox,
        link_url: str,
        settings: DongleSettings = DongleSettings(),
        link_factory: Callable[[str], Link] | None = None,
    ) -> None:
        self.key = key
        self.counter = counter
        self.outbox = outbox
        self.link_url = link_url
        self.settings = settings
        self._link_factory = link_factory or (
            lambda url: open_link(url, read_timeout=settings.read_timeout_s)
        )
        self.stats = DongleStats()
        self.capture_done = threading.Event()
        self._started = time.monotonic()
        self._encrypt_lock = threading.Lock()
        self._srtt = 0.05
        self._last_heard = 0.0
        self._tx: _Transmission | None = None
        self._link: Link | None = None
        self._decoder = FrameDecoder()

    # ------------------------------------------------------------------ capture side

    def accept(self, swipe: Swipe) -> Frame | None:
        """Encrypt ``swipe`` under a fresh KSN and store its frame in the outbox (None if not a card)."""
        decoded_at = time.time()
        try:
            card = card_from_tracks(swipe.tracks)
        except TrackError as error:
            self.stats.swipes_skipped += 1
            log.info("swipe at %.3f s skipped: %s", swipe.ended_at, error)
            return None
        with self._encrypt_lock:
            ksn, seq = self.counter.reserve()
            data = dukpt.encrypt_tracks(self.key.initial_key, ksn, swipe.tracks, card.masked)
            del card
            frame = Frame.of(
                SwipeMessage(data, quality=swipe.quality, decoded_at=decoded_at),
                seq,
                FrameFlags.ACK_REQUESTED,
            )
            self.outbox.put(frame, swipe.ended_at)
            self.stats.swipes_encrypted += 1
        self._wake_link()
        log.info("swipe seq %d encrypted under KSN %s", seq, ksn.hex().upper())
        return frame

    def accept_chip(self, tlv: bytes) -> Frame:
        """Queue an EMV chip read (BER-TLV bytes from the chip reader) for the host, like a swipe."""
        frame = Frame.of(ChipMessage(tlv), self.counter.reserve_seq(), FrameFlags.ACK_REQUESTED)
        self.outbox.put(frame, -1.0)
        self._wake_link()
        return frame

    def _wake_link(self) -> None:
        """Let the link loop send a newly stored frame now rather than after its read timeout."""
        link = self._link
        if link is not None:
            link.wake()

    @property
    def consumed_until(self) -> float:
        """Audio stream time up to which swipes are safely stored (skip them after a restart)."""
        return max(self.counter.state.consumed_until, self.outbox.latest_source_end())

    def capture(self, swipes: Iterable[Swipe]) -> None:
        """Accept every swipe of ``swipes`` not already stored before a restart; then set ``capture_done``."""
        skip_until = self.consumed_until
        try:
            for swipe in swipes:
                if swipe.ended_at <= skip_until + 1e-6:
                    continue
                self.accept(swipe)
        finally:
            self.capture_done.set()

    # ------------------------------------------------------------------ link side

    def _send(self, frames: list[Frame]) -> None:
        if self._link is None:
            return
        self._link.write(b"".join(encode_frame(frame) for frame in frames))
        self.stats.frames_sent += len(frames)

    def _device_info(self) -> Frame:
        info = DeviceInfo(self.key.serial_number, self.settings.firmware_version, self.counter.current_ksn)
        return Frame.of(info, 0)

    def _open_link(self) -> bool:
        try:
            self._link = self._link_factory(self.link_url)
        except DeviceError as error:
            log.debug("link %s not available: %s", self.link_url, error)
            return False
        self.stats.link_opens += 1
        self._decoder = FrameDecoder()
        self._send([Frame.of(Hello(role="dongle"), 0), self._device_info()])
        if self._tx is not None:
            self._tx.due = 0.0
        return True

    def _drop_link(self) -> None:
        if self._link is not None:
            self._link.close()
            self._link = None

    def _timeout(self) -> float:
        base = max(self.settings.min_timeout_s, 2.5 * self._srtt)
        silent = self._tx.silent_rounds if self._tx else 0
        backoff = 2 ** min(max(silent - FAST_RETRIES, 0), 10)
        return float(min(base * backoff, self.settings.max_backoff_s))

    def _transmit(self, now: float) -> None:
        head = self.outbox.head()
        if head is None:
            self._tx = None
            return
        if self._tx is None or self._tx.frame.seq != head.seq:
            pieces = fragment_frame(head, self.settings.chunk_bytes) if self.settings.chunk_bytes else [head]
            self._tx = _Transmission(head, pieces, set(range(len(pieces))))
        tx = self._tx
        if now < tx.due:
            return
        flags = FrameFlags.RETRANSMIT if tx.rounds else FrameFlags.NONE
        wanted = sorted(tx.missing) if tx.missing else [len(tx.fragments) - 1]
        copies = min(-(-MIN_RESEND_FRAMES // len(wanted)), MAX_COPIES) if tx.rounds else 1
        batch = [tx.fragments[index].with_flags(flags) for _ in range(copies) for index in wanted]
        if tx.rounds:
            self.stats.retransmitted_fragments += len(batch)
            heard_since_last_round = self._last_heard >= tx.sent_at
            tx.silent_rounds = 0 if heard_since_last_round else tx.silent_rounds + 1
        self._send(batch)
        tx.rounds += 1
        tx.sent_at = time.monotonic()
        tx.timed = False
        tx.due = tx.sent_at + self._timeout()

    def _progress(self, seq: int, received: int | None) -> None:
        tx = self._tx
        if tx is None or tx.frame.seq != seq:
            return
        if not tx.timed:
            sample = time.monotonic() - tx.sent_at
            self._srtt = 0.8 * self._srtt + 0.2 * sample
            tx.timed = True
        if received is None:
            return
        missing = {index for index in range(len(tx.fragments)) if not received >> index & 1}
        tx.missing = missing

    def _handle(self, frame: Frame) -> None:
        message = frame.message()
        if isinstance(message, Ack):
            self._progress(message.acked_seq, None)
            entry = self.outbox.get(message.acked_seq)
            if entry is not None:
                self.counter.mark_consumed(entry.source_end)
            if self.outbox.remove(message.acked_seq):
                self.stats.acks += 1
                log.info("frame seq %d acknowledged", message.acked_seq)
            if self._tx is not None and self._tx.frame.seq == message.acked_seq:
                self._tx = None
        elif isinstance(message, FragmentAck):
            self._progress(message.acked_seq, message.received)
        elif isinstance(message, Hello):
            self._send([self._device_info()])
            if self._tx is not None:
                self._tx.due = 0.0
        elif isinstance(message, Nak) and self._tx is not None and self._tx.frame.seq == message.acked_seq:
            self._tx.due = 0.0

    def _receive(self) -> None:
        assert self._link is not None
        for item in self._decoder.feed(self._link.read()):
            if isinstance(item, FrameError):
                self.stats.bad_frames += 1
                if isinstance(item, UnsupportedFrame):
                    self._send([Frame.of(nak_for(item), 0)])
                continue
            self._last_heard = time.monotonic()
            try:
                self._handle(item)
            except FrameError as error:
                self.stats.bad_frames += 1
                if item.type is not MessageType.FRAGMENT:
                    self._send([Frame.of(nak_for(error), 0)])

    def serve(self, stop: threading.Event, exit_when_idle: bool = False) -> None:
        """Run the link loop until ``stop`` is set (or, ``exit_when_idle``, all is captured and ACKed)."""
        next_heartbeat = 0.0
        while not stop.is_set():
            if exit_when_idle and self.capture_done.is_set() and len(self.outbox) == 0:
                break
            if self._link is None and not self._open_link():
                stop.wait(self.settings.reconnect_s)
                continue
            try:
                self._receive()
                now = time.monotonic()
                self._transmit(now)
                if now >= next_heartbeat:
                    uptime = int((now - self._started) * 1000) & 0xFFFFFFFF
                    self._send([Frame.of(Heartbeat(uptime, min(len(self.outbox), 0xFFFF)), 0)])
                    next_heartbeat = now + self.settings.heartbeat_s
            except DeviceError as error:
                log.warning("link %s lost: %s", self.link_url, error)
                self._drop_link()
                stop.wait(self.settings.reconnect_s)
        self._drop_link()


def decoded_swipes(audio_url: str) -> Iterator[Swipe]:
    """Swipes decoded from the audio source at ``audio_url`` (streaming; tracks only in memory)."""
    from posbridge.dsp.detector import SwipeDetector
    from posbridge.hardware.audio import open_audio

    with open_audio(audio_url) as source:
        detector = SwipeDetector(source.rate, source.channels)
        for block in source:
            yield from (swipe for swipe in detector.process(block.samples) if swipe.tracks)
        yield from (swipe for swipe in detector.flush() if swipe.tracks)


def default_state_dir(key_file: Path) -> Path:
    """Where the KSN counter and outbox live unless told otherwise: ``<key file>.state/``."""
    return key_file.with_name(key_file.name + ".state")


def run_dongle(
    audio_url: str,
    link_url: str,
    key_file: Path,
    *,
    state_dir: Path | None = None,
    exit_when_idle: bool = False,
    settings: DongleSettings = DongleSettings(),
    stop: threading.Event | None = None,
    swipes: Iterable[Swipe] | None = None,
) -> Dongle:
    """Load the key (refusing a key file others can read), then capture and serve until stopped.

    ``swipes`` replaces decoding ``audio_url`` (for rigs that feed decoded swipes directly).
    """
    key = load_key(key_file)
    state_dir = state_dir or default_state_dir(key_file)
    counter = KsnCounter(key, state_dir / "state.json")
    outbox = Outbox(state_dir / "outbox")
    dongle = Dongle(key, counter, outbox, link_url, settings)
    stop = stop or threading.Event()
    source = swipes if swipes is not None else decoded_swipes(audio_url)
    failure: list[BaseException] = []

    def capture() -> None:
        try:
            dongle.capture(source)
        except BaseException as error:  # reported by the main thread
            failure.append(error)
            stop.set()

    thread = threading.Thread(target=capture, name="dongle-capture", daemon=True)
    thread.start()
    try:
        dongle.serve(stop, exit_when_idle=exit_when_idle)
    finally:
        stop.set()
    if failure:
        raise failure[0]
    return dongle
