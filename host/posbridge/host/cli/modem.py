"""``posbridge modem rx|tx``: the chip reader audio modem from the command line (issue 5 item 5).

``posbridge modem rx PATH|--audio URL --profile bell202|fast [--raw]``: demodulate a WAV file (or
any :func:`~posbridge.hardware.audio.open_audio` source, block by block). With ``--raw`` the
received bytes go to stdout and nothing else; without, each link frame is printed (CHIP frames
with their chip read, masked unless ``--reveal``), dropped frames as such, and a summary.

``posbridge modem tx --profile bell202|fast [--raw] [--test-card] -o OUT.wav``: modulate stdin's
bytes (``--raw``: as they are; otherwise carried in CHIP link frames) or, with ``--test-card``, a
generated test transaction, into a 16-bit WAV file.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from posbridge.host.cli._output import add_output_options, emit_json, emit_line
from posbridge.protocols.errors import UsageError

if TYPE_CHECKING:
    from posbridge.protocols.errors import FrameError
    from posbridge.protocols.link import Frame

COMMAND = "modem"
HELP = "receive or send chip-reader data over the Bell 202 or fast audio modem"

PROFILE_NAMES = ("bell202", "fast")


def register(parser: argparse.ArgumentParser) -> None:
    """Add the ``rx`` and ``tx`` subcommands."""
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    rx = actions.add_parser("rx", help="demodulate a recording or a live input")
    rx.add_argument("path", nargs="?", metavar="PATH", help="a WAV file")
    rx.add_argument("--audio", metavar="URL", help="an audio URL (device://, wav://, stdin://, virtual://)")
    rx.add_argument("--profile", choices=PROFILE_NAMES, required=True, help="modem profile")
    rx.add_argument("--raw", action="store_true", help="write the received bytes to stdout, nothing else")
    add_output_options(rx)
    rx.set_defaults(handler=run)
    tx = actions.add_parser("tx", help="modulate stdin (or a test transaction) into a WAV file")
    tx.add_argument("--profile", choices=PROFILE_NAMES, required=True, help="modem profile")
    tx.add_argument("--raw", action="store_true", help="modulate stdin's bytes as they are (no frames)")
    tx.add_argument("--test-card", action="store_true", help="send a generated test chip transaction")
    tx.add_argument("--seed", type=int, default=None, help="seed for --test-card (repeatable output)")
    tx.add_argument("--rate", type=int, default=48000, metavar="HZ", help="sample rate (default 48000)")
    tx.add_argument("-o", "--output", required=True, metavar="OUT.wav", help="the WAV file to write")
    tx.set_defaults(handler=run)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run ``rx`` or ``tx``."""
    return _receive(args) if args.action == "rx" else _transmit(args)


def _transmit(args: argparse.Namespace) -> int:
    import random

    from posbridge.firmware.chip_reader import ChipReader, make_test_transcript
    from posbridge.hardware.audio import write_wav
    from posbridge.protocols.link import MAX_PAYLOAD, ChipMessage, Frame

    if args.rate not in (44100, 48000) and args.profile == "fast":
        raise UsageError("the fast profile runs at 44100 or 48000 Hz", rate=args.rate)
    reader = ChipReader(args.profile, args.rate)
    if args.test_card:
        if args.raw:
            raise UsageError("--test-card sends link frames; it cannot be combined with --raw")
        audio = reader.send(make_test_transcript(random.Random(args.seed)))
    else:
        data = sys.stdin.buffer.read()
        if not data:
            raise UsageError("nothing to send: standard input was empty (pipe bytes in, or use --test-card)")
        if args.raw:
            audio = reader.modulator.modulate(data)
        else:
            chunks = [data[start : start + MAX_PAYLOAD] for start in range(0, len(data), MAX_PAYLOAD)]
            frames = [Frame.of(ChipMessage(tlv=chunk), seq + 1) for seq, chunk in enumerate(chunks)]
            audio = reader.modulate_frames(frames)
    write_wav(args.output, audio, args.rate)
    return 0


def _blocks(args: argparse.Namespace) -> tuple[Any, int]:
    """An iterator of sample blocks ``(n, channels)`` and the rate."""
    if (args.path is None) == (args.audio is None):
        raise UsageError("give exactly one of PATH or --audio URL")
    if args.path is not None:
        from posbridge.hardware.audio import read_wav

        samples, rate = read_wav(args.path)
        return iter([samples]), rate
    from posbridge.hardware.audio import open_audio

    source = open_audio(args.audio)
    return (block.samples for block in source), source.rate


def _receive(args: argparse.Namespace) -> int:
    blocks, rate = _blocks(args)
    if args.raw:
        from posbridge.dsp.modem import FskDemodulator

        demodulator = FskDemodulator(args.profile, rate)
        out = sys.stdout.buffer
        for block in blocks:
            out.write(demodulator.process(block))
            out.flush()
        out.write(demodulator.flush())
        out.flush()
        return 0
    from posbridge.dsp.modem.frames import ModemFrameReceiver

    receiver = ModemFrameReceiver(args.profile, rate)
    for block in blocks:
        _report(receiver.process(block), args)
    _report(receiver.flush(), args)
    stats = receiver.stats
    dropped = stats.bad_checksum + stats.malformed + stats.unsupported
    if args.json:
        emit_json({"summary": {"frames": stats.frames_ok, "dropped": dropped, "bad_crc": stats.bad_checksum}})
    else:
        emit_line(f"{stats.frames_ok} frames, {dropped} dropped ({stats.bad_checksum} bad CRC)")
    return 0


def _report(results: list[Frame | FrameError], args: argparse.Namespace) -> None:
    from posbridge.dsp.modem.frames import chip_read_of
    from posbridge.protocols.errors import FrameError, TlvError

    for item in results:
        if isinstance(item, FrameError):
            if args.json:
                emit_json({"dropped": str(item)})
            else:
                emit_line(f"dropped frame: {item}")
            continue
        record: dict[str, Any] = {"seq": item.seq, "type": item.type.name, "length": len(item.payload)}
        try:
            chip = chip_read_of(item)
        except (TlvError, FrameError) as error:
            record["error"] = str(error)
            chip = None
        if chip is not None:
            record["card"] = chip.masked.to_json()
            if args.reveal:
                record["card"]["pan"] = chip.card.pan
            record.update(cryptogram=chip.cryptogram, amount=chip.amount, currency=chip.currency)
        if args.json:
            emit_json({"frame": record})
            continue
        line = f"frame {item.seq} {item.type.name} {len(item.payload)} bytes"
        if chip is not None:
            card = chip.card.pan if args.reveal else str(chip.masked)
            line += f": {card} {chip.cryptogram or ''} amount {chip.amount} currency {chip.currency}"
        if "error" in record:
            line += f": bad EMV data ({record['error']})"
        emit_line(line)
