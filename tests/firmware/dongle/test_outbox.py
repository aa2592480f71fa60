"""The dongle's persistent outbox."""

from __future__ import annotations

from pathlib import Path

from posbridge.firmware.outbox import Outbox
from posbridge.protocols.link import Ack, Frame


def _frame(seq: int) -> Frame:
    return Frame.of(Ack(seq * 10), seq)


def test_frames_survive_a_restart_in_sequence_order(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    for seq in (3, 1, 2):
        outbox.put(_frame(seq), source_end=seq + 0.25)
    reopened = Outbox(tmp_path)
    assert len(reopened) == 3
    assert reopened.head() == _frame(1)
    assert reopened.latest_source_end() == 3.25
    assert reopened.remove(1)
    assert not reopened.remove(1)
    assert Outbox(tmp_path).head() == _frame(2)


def test_damaged_files_are_moved_aside(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    outbox.put(_frame(1), 1.0)
    (tmp_path / "0000000002.frame").write_bytes(b"1.0" + b" " * 21 + b"\x01\x30garbage")
    reopened = Outbox(tmp_path)
    assert len(reopened) == 1
    assert (tmp_path / "0000000002.damaged").exists()
