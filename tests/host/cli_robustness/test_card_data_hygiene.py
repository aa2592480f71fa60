"""Card data never reaches an error message, a repr or an unconfigured log line (PCI DSS 3.3, 3.4).

Each parser's error path is fed input that holds a generated test PAN (and a cardholder name);
the PAN must not appear in ``str``, ``repr``, ``args``, the structured context, the cause chain
or the formatted traceback of the error.
"""

from __future__ import annotations

import logging
import random
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest
from posbridge.host.cli import _redact_unconfigured_logging
from posbridge.host.queue import TransactionQueue
from posbridge.host.queue.capture import CaptureRequest, card_from_track2
from posbridge.protocols import emv
from posbridge.protocols.cards import generate_test_pan, luhn_check_digit
from posbridge.protocols.errors import CaptureRefused, ParseError
from posbridge.protocols.magstripe import card_from_tracks, encode_track
from posbridge.protocols.types import Card, Track, TrackFormat

PAN = generate_test_pan(random.Random(20261126), prefix="411111")
WRONG_CHECK_DIGIT = PAN[:-1] + str((int(PAN[-1]) + 1) % 10)
NAME = "HYGIENE/TESTER"


def _everything_said_about(error: BaseException) -> str:
    parts = [str(error), repr(error), repr(error.args), "".join(traceback.format_exception(error))]
    parts += [repr(getattr(error, "message", "")), repr(getattr(error, "context", ""))]
    cause = error.__cause__ or error.__context__
    while cause is not None:
        parts += [str(cause), repr(cause)]
        cause = cause.__cause__ or cause.__context__
    return "\n".join(parts)


ERROR_PATHS: dict[str, Callable[[], object]] = {
    "track 2 without separator": lambda: card_from_track2(PAN + "3012101"),
    "track 2 with letters": lambda: card_from_track2(f"{PAN}=30A2101"),
    "track 2 wrong check digit": lambda: card_from_track2(f"{WRONG_CHECK_DIGIT}=3012101"),
    "track 1 without format code": lambda: card_from_tracks(
        [Track(number=1, format=TrackFormat.ALPHA, text=f"X{PAN}^{NAME}^3012101")]
    ),
    "track 1 without expiry field": lambda: card_from_tracks(
        [Track(number=1, format=TrackFormat.ALPHA, text=f"B{PAN}{NAME}")]
    ),
    "encode track bad character": lambda: encode_track(f"{PAN}=3012a", TrackFormat.BCD),
    "TLV 57 truncated": lambda: emv.parse_tlv(bytes.fromhex("5710" + PAN)),
    "TLV 57 not track 2": lambda: emv.chip_read_from_tlv(bytes.fromhex("5709" + PAN + "FF")),
    "TLV 5A wrong check digit": lambda: emv.card_from_tlv(
        emv.parse_tlv(bytes.fromhex("5A08" + WRONG_CHECK_DIGIT))
    ),
    "TLV 5A and 57 differ": lambda: emv.chip_read_from_tlv(
        bytes.fromhex("5A08" + PAN + "570C" + "4000000000000002" + "D3012101")
    ),
    "capture keyed bad expiry": lambda: CaptureRequest.from_json({"pan": PAN, "expiry": PAN, "amount": 5}),
    "capture keyed PAN with a letter": lambda: CaptureRequest.from_json(
        {"pan": PAN + "x", "expiry": "3012", "amount": 5}
    ),
    "capture track 2 malformed": lambda: CaptureRequest.from_json({"track2": f"{PAN}=ZZZZ", "amount": 5}),
    "capture amount is the PAN": lambda: CaptureRequest.from_json(
        {"pan": PAN, "expiry": "3012", "amount": PAN}
    ),
    "capture dongle payload": lambda: CaptureRequest.from_json({"ksn": PAN, "ciphertext": PAN, "amount": 5}),
}


@pytest.mark.parametrize("path", sorted(ERROR_PATHS))
def test_parser_errors_hold_no_pan(path: str) -> None:
    with pytest.raises(ParseError) as caught:
        ERROR_PATHS[path]()
    said = _everything_said_about(caught.value)
    assert PAN not in said
    assert WRONG_CHECK_DIGIT not in said
    assert PAN[6:-4] not in said


def test_a_track_2_with_letters_is_refused_not_read_without_expiry() -> None:
    with pytest.raises(ParseError):
        card_from_track2(f"{PAN}=XX12101")


def test_a_keyed_pan_failing_luhn_is_refused_by_the_risk_rule_without_showing_it(tmp_path: Path) -> None:
    assert luhn_check_digit(PAN[:-1]) == PAN[-1]
    with TransactionQueue(tmp_path / "q.db") as queue, pytest.raises(CaptureRefused) as caught:
        queue.capture(5, "USD", Card(pan=WRONG_CHECK_DIGIT, expiry="3012"), keyed=True)
    assert caught.value.kind == "luhn"
    said = _everything_said_about(caught.value)
    assert WRONG_CHECK_DIGIT not in said
    assert WRONG_CHECK_DIGIT[6:-4] not in said


def test_reprs_of_card_data_are_masked() -> None:
    tlv = bytes.fromhex("5A08" + PAN + "570E" + PAN + "D30121011234" + "5F200E") + NAME.encode()
    shown = [
        Track(number=2, format=TrackFormat.BCD, text=f"{PAN}=30121011234567"),
        CaptureRequest.from_json({"track2": f"{PAN}=30121011234567", "amount": 5}),
        CaptureRequest.from_json({"pan": PAN, "expiry": "3012", "amount": 5}),
        emv.chip_read_from_tlv(tlv),
        emv.parse_tlv(tlv),
    ]
    for value in shown:
        assert PAN not in repr(value)
        assert PAN not in str(value)
        assert NAME not in repr(value)
        assert "1234567" not in repr(value)


def test_warnings_of_commands_without_logging_set_up_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    _redact_unconfigured_logging()
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers.clear()  # pytest's capture handler would otherwise take the record
    try:
        logging.getLogger("posbridge.test").warning("swiped %s", PAN)
    finally:
        root.handlers[:] = saved
    err = capsys.readouterr().err
    assert PAN not in err
    assert PAN[-4:] in err


@pytest.mark.parametrize(
    "hex_tlv",
    [
        "5708" + PAN,  # 57 without the D separator: does not parse as track 2
        "5A08" + PAN[:-3] + "ABC",  # 5A with a non-decimal nibble
        "9F6B0C" + PAN + "D3012101",  # contactless Track 2 Data
        "DF010C" + PAN + "D3012101",  # an unknown tag holding track 2
    ],
)
def test_emv_values_that_do_not_parse_show_no_pan(hex_tlv: str) -> None:
    objects = emv.parse_tlv(bytes.fromhex(hex_tlv))
    shown = emv.describe_value(objects[0])
    assert PAN not in shown
    assert PAN[:-3] not in shown
    assert PAN in emv.describe_value(objects[0], reveal=True) or "ABC" in hex_tlv
