"""The dongle's DUKPT key file and its never-reused KSN counter (ANSI X9.24-3-2017 §6.5, X9.24-1 A.2).

The key file (written by ``posbridge dongle provision``) holds the initial key (AES) or IPEK
(TDES) and the initial KSN; it must be readable by its owner only (mode 0600) or the dongle
refuses to start. The counter lives in a state file beside it and is advanced and made durable
(write, fsync, rename, fsync of the directory) *before* a KSN is used, so a crash or reboot at
any moment can skip KSNs but never reuse one.
"""

from __future__ import annotations

import json
import os
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from posbridge.protocols import dukpt
from posbridge.protocols.errors import KeyMaterialError, KsnExhaustedError

KEY_FILE_FORMAT = "posbridge-dukpt-key/1"
STATE_FILE_FORMAT = "posbridge-dongle-state/1"


def write_durably(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` atomically and durably (temp file, fsync, rename, fsync dir)."""
    temporary = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(descriptor, mode)
        view = memoryview(data)
        while view:
            written = os.write(descriptor, view)
            view = view[written:]
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    os.replace(temporary, path)
    fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    """Make renames and unlinks in ``directory`` durable."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@dataclass(frozen=True)
class DongleKey:
    """The dongle's initial key and initial KSN (counter 0); ``scheme`` is ``aes128`` or ``tdes``."""

    scheme: str
    initial_key: bytes = field(repr=False)
    initial_ksn: bytes
    serial_number: str

    def ksn_for(self, counter: int) -> bytes:
        """The KSN with transaction counter ``counter``."""
        if self.scheme == "tdes":
            return dukpt.tdes_ksn_with_counter(self.initial_ksn, counter)
        return dukpt.AesKsn(self.initial_ksn[: dukpt.AES_INITIAL_KEY_ID_BYTES], counter).to_bytes()

    def next_counter(self, counter: int) -> int:
        """The next valid counter after ``counter`` (:class:`KsnExhaustedError` when none is left)."""
        if self.scheme == "tdes":
            return dukpt.next_counter(counter, dukpt.TDES_COUNTER_BITS, dukpt.TDES_MAX_COUNTER_ONE_BITS)
        return dukpt.next_counter(counter, dukpt.AES_COUNTER_BITS, dukpt.AES_MAX_COUNTER_ONE_BITS)


def provision(bdk: bytes, key_id: bytes, key_file: Path, serial_number: str | None = None) -> DongleKey:
    """Derive the dongle's initial key from ``bdk`` and write ``key_file`` (mode 0600).

    An 8-byte ``key_id`` is an AES initial key ID (X9.24-3; BDK of 16 or 32 bytes); a 10-byte one is
    a TDES initial KSN (X9.24-1; 16-byte BDK, its counter bits are cleared).
    """
    if len(key_id) == dukpt.AES_INITIAL_KEY_ID_BYTES:
        initial_key = dukpt.derive_aes_initial_key(bdk, key_id)
        key = DongleKey(
            "aes128", initial_key, key_id + bytes(4), serial_number or f"PB-{key_id.hex().upper()}"
        )
    elif len(key_id) == dukpt.TDES_KSN_BYTES:
        initial_ksn = dukpt.tdes_ksn_with_counter(key_id, 0)
        ipek = dukpt.derive_tdes_ipek(bdk, initial_ksn)
        key = DongleKey("tdes", ipek, initial_ksn, serial_number or f"PB-{initial_ksn[:8].hex().upper()}")
    else:
        raise KeyMaterialError(
            f"a key ID must be 8 bytes (AES initial key ID) or 10 bytes (TDES KSN), got {len(key_id)}",
            length=len(key_id),
        )
    document = {
        "format": KEY_FILE_FORMAT,
        "scheme": key.scheme,
        "initial_key": key.initial_key.hex().upper(),
        "initial_ksn": key.initial_ksn.hex().upper(),
        "serial_number": key.serial_number,
    }
    key_file.parent.mkdir(parents=True, exist_ok=True)
    write_durably(key_file, (json.dumps(document, indent=2) + "\n").encode(), mode=0o600)
    return key


def load_key(key_file: Path) -> DongleKey:
    """Read a key file; :class:`KeyMaterialError` if it is missing, malformed, or not mode 0600."""
    try:
        info = key_file.stat()
    except FileNotFoundError:
        raise KeyMaterialError(
            f"key file {key_file} does not exist; run posbridge dongle provision"
        ) from None
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise KeyMaterialError(
            f"key file {key_file} is readable by others (mode {stat.S_IMODE(info.st_mode):04o}); "
            "chmod 600 it before the dongle will start",
            path=str(key_file),
        )
    try:
        document: dict[str, Any] = json.loads(key_file.read_text())
        if document.get("format") != KEY_FILE_FORMAT:
            raise ValueError("format")
        scheme = str(document["scheme"])
        initial_key = bytes.fromhex(document["initial_key"])
        initial_ksn = bytes.fromhex(document["initial_ksn"])
        serial_number = str(document["serial_number"])
    except (OSError, ValueError, KeyError, TypeError):
        raise KeyMaterialError(
            f"key file {key_file} is not a posbridge DUKPT key file", path=str(key_file)
        ) from None
    expected = {"aes128": ((16, 32), dukpt.AES_KSN_BYTES), "tdes": ((16,), dukpt.TDES_KSN_BYTES)}
    if (
        scheme not in expected
        or len(initial_key) not in expected[scheme][0]
        or len(initial_ksn) != expected[scheme][1]
    ):
        raise KeyMaterialError(f"key file {key_file} holds keys of the wrong form", path=str(key_file))
    return DongleKey(scheme, initial_key, initial_ksn, serial_number)


RESERVE_AHEAD = 16
"""KSNs and sequence numbers made durable per state write; a crash skips at most this many."""


@dataclass
class DongleState:
    """What the state file holds: the KSN counter and frame sequence reserved up to, and the audio
    stream time (s) up to which swipes are safely stored (after a restart on the same audio the
    dongle skips swipes that ended by then).
    """

    initial_ksn: bytes
    counter: int = 0
    seq: int = 0
    consumed_until: float = -1.0

    def to_json(self) -> bytes:
        """The state file's bytes."""
        document = {
            "format": STATE_FILE_FORMAT,
            "initial_ksn": self.initial_ksn.hex().upper(),
            "counter": self.counter,
            "seq": self.seq,
            "consumed_until": self.consumed_until,
        }
        return (json.dumps(document) + "\n").encode()


class KsnCounter:
    """Hands out each KSN (and frame sequence number) once, durably reserved before use.

    The state file records a high-water mark :data:`RESERVE_AHEAD` counters beyond the last one
    handed out, so most transactions need no disk write; after a crash or reboot counting resumes
    above the mark (skipping KSNs is allowed, reusing one is not). When the state belongs to
    another initial KSN (the dongle was re-provisioned) the counter starts again for the new key
    while the sequence numbers go on. Thread-safe.
    """

    def __init__(self, key: DongleKey, state_file: Path) -> None:
        self.key = key
        self.state_file = state_file
        self._lock = threading.Lock()
        self.state = self._load()
        self.counter = self.state.counter
        self.seq = self.state.seq

    def _load(self) -> DongleState:
        try:
            document = json.loads(self.state_file.read_text())
            state = DongleState(
                initial_ksn=bytes.fromhex(document["initial_ksn"]),
                counter=int(document["counter"]),
                seq=int(document["seq"]),
                consumed_until=float(document["consumed_until"]),
            )
        except FileNotFoundError:
            return DongleState(self.key.initial_ksn)
        except (OSError, ValueError, KeyError, TypeError):
            raise KeyMaterialError(
                f"dongle state file {self.state_file} is damaged; refusing to guess the KSN counter",
                path=str(self.state_file),
            ) from None
        if state.initial_ksn != self.key.initial_ksn:
            return DongleState(self.key.initial_ksn, seq=state.seq)
        return state

    def _save(self) -> None:
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        write_durably(self.state_file, self.state.to_json())

    @property
    def current_ksn(self) -> bytes:
        """The KSN of the last transaction handed out (or the reserved mark after a restart)."""
        return self.key.ksn_for(self.counter)

    def reserve(self) -> tuple[bytes, int]:
        """A fresh KSN and frame sequence number, durable before they are returned.

        Raises :class:`~posbridge.protocols.errors.KsnExhaustedError` once the counter is used up.
        """
        with self._lock:
            counter = self.key.next_counter(self.counter)
            seq = self.seq + 1
            if counter > self.state.counter or seq > self.state.seq:
                mark = counter
                for _ in range(RESERVE_AHEAD):
                    try:
                        mark = self.key.next_counter(mark)
                    except KsnExhaustedError:
                        break
                self.state.counter = mark
                self.state.seq = seq + RESERVE_AHEAD
                self._save()
            self.counter, self.seq = counter, seq
            return self.key.ksn_for(counter), seq

    def reserve_seq(self) -> int:
        """A fresh frame sequence number (for frames that carry no DUKPT data, e.g. chip reads)."""
        with self._lock:
            seq = self.seq + 1
            if seq > self.state.seq:
                self.state.seq = seq + RESERVE_AHEAD
                self._save()
            self.seq = seq
            return seq

    def mark_consumed(self, stream_time: float) -> None:
        """Record durably that swipes ending at or before ``stream_time`` need no capture again."""
        with self._lock:
            if stream_time > self.state.consumed_until:
                self.state.consumed_until = stream_time
                self._save()
