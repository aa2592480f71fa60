"""BER-TLV, DOL, APDU and card data rules, with hypothesis fuzzing: only typed errors."""

from __future__ import annotations

import contextlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from posbridge.protocols import emv
from posbridge.protocols.cards import generate_test_pan
from posbridge.protocols.errors import TlvError

PRIMITIVE_TAGS = st.sampled_from(["5A", "9F02", "9F8201", "DF8101", "57", "95", "9F27", "5F2A"])


@st.composite
def tlv_trees(draw: st.DrawFn, depth: int = 0) -> bytes:
    if depth < 2 and draw(st.booleans()):
        tag = draw(st.sampled_from(["70", "77", "61", "A5", "BF0C"]))
        children = draw(st.lists(tlv_trees(depth + 1), max_size=3))
        return emv.build_tlv(tag, b"".join(children))
    return emv.build_tlv(draw(PRIMITIVE_TAGS), draw(st.binary(max_size=300)))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64), st.booleans(), st.booleans())
def test_random_bytes_give_objects_or_a_tlv_error(data: bytes, ff_padding: bool, strict: bool) -> None:
    try:
        objects = emv.parse_tlv(data, ff_padding=ff_padding, strict_lengths=strict)
    except TlvError as error:
        offset = error.offset
        assert 0 <= offset <= len(data)
        return
    for item in emv.iter_tlv(objects):
        assert data[item.offset : item.offset + len(item.tag)] == item.tag
        assert data[item.value_offset : item.value_offset + len(item.value)] == item.value


@settings(max_examples=150, deadline=None)
@given(st.lists(tlv_trees(), max_size=4), st.integers(0, 3))
def test_build_then_parse_round_trips_with_padding(trees: list[bytes], padding: int) -> None:
    pad = b"\x00" * padding
    encoded = pad + pad.join(trees) + pad
    objects = emv.parse_tlv(encoded)
    assert b"".join(item.encode() for item in objects) == b"".join(trees)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=40), st.dictionaries(PRIMITIVE_TAGS, st.binary(max_size=10), max_size=4))
def test_dol_fuzz_only_typed_errors(dol: bytes, sources: dict[str, bytes]) -> None:
    values = {bytes.fromhex(tag): value for tag, value in sources.items()}
    try:
        entries = emv.parse_dol(dol)
    except TlvError:
        return
    data = emv.build_dol_data(entries, values)
    assert len(data) == sum(entry.length for entry in entries)
    assert [item.value for item in emv.split_dol_data(entries, data)] == [
        emv.fit_dol_value(entry.tag, values.get(entry.tag), entry.length) for entry in entries
    ]


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=270))
def test_apdu_fuzz_only_typed_errors(raw: bytes) -> None:
    try:
        command = emv.parse_command_apdu(raw)
    except TlvError:
        pass
    else:
        assert command.encode() == raw
    try:
        response = emv.parse_response_apdu(raw)
    except TlvError:
        assert len(raw) < 2
    else:
        assert response.encode() == raw
        assert isinstance(response.status, str)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=120))
def test_gpo_and_generate_ac_parsers_fuzz(raw: bytes) -> None:
    for parser in (emv.parse_gpo_response, emv.parse_generate_ac_response, emv.chip_read_from_tlv):
        with contextlib.suppress(TlvError):
            parser(raw)


def test_dol_padding_rules_per_format() -> None:
    amount = bytes.fromhex("000000001234")
    assert emv.fit_dol_value(bytes.fromhex("9F02"), amount, 3) == bytes.fromhex("001234")
    assert emv.fit_dol_value(bytes.fromhex("9F02"), bytes.fromhex("1234"), 4) == bytes.fromhex("00001234")
    assert emv.fit_dol_value(bytes.fromhex("5A"), bytes.fromhex("123456"), 5) == bytes.fromhex("123456FFFF")
    assert emv.fit_dol_value(bytes.fromhex("5A"), bytes.fromhex("123456"), 2) == bytes.fromhex("1234")
    assert emv.fit_dol_value(bytes.fromhex("9F37"), bytes.fromhex("AABB"), 3) == bytes.fromhex("AABB00")
    assert emv.fit_dol_value(bytes.fromhex("9F4E"), b"SHOP", 2) == b"SH"
    assert emv.fit_dol_value(bytes.fromhex("9F99"), None, 2) == b"\x00\x00"
    assert emv.fit_dol_value(bytes.fromhex("70"), b"xx", 2) == b"\x00\x00"


def test_policies_are_explicit() -> None:
    with pytest.raises(TlvError) as caught:
        emv.parse_tlv(bytes.fromhex("FF5A0112"))
    assert caught.value.offset == 0
    assert [item.tag_hex for item in emv.parse_tlv(bytes.fromhex("FF5A0112FF"), ff_padding=True)] == ["5A"]
    with pytest.raises(TlvError):
        emv.parse_tlv(bytes.fromhex("5A850000000001FF"))
    with pytest.raises(TlvError):
        emv.parse_tlv(bytes.fromhex("9F8181818101FF"))
    assert emv.encode_length(0x80) == b"\x81\x80"
    assert emv.encode_length(0x10000) == b"\x83\x01\x00\x00"


def test_duplicates_are_kept_and_reported() -> None:
    data = bytes.fromhex("70065A01115A012261025001" + "61025001")
    objects = emv.parse_tlv(data[:8])
    assert [item.tag_hex for item in emv.iter_tlv(objects)] == ["70", "5A", "5A"]
    assert emv.duplicate_primitives(objects) == [b"\x5a"]
    templates = emv.parse_tlv(bytes.fromhex("6103500141" "6103500142"))
    assert [item.tag_hex for item in templates] == ["61", "61"]
    assert emv.duplicate_primitives(templates) == [b"\x50"]


def test_duplicate_primitive_in_records_is_a_card_error() -> None:
    pan = generate_test_pan(random.Random(1))
    record = emv.build_tlv("70", emv.build_tlv("5A", bytes.fromhex(pan)) * 2)
    with pytest.raises(emv.CardDataError):
        emv.chip_read_from_tlv(record)


def test_card_data_values() -> None:
    assert emv.cryptogram_type(b"\x00") is emv.Cryptogram.AAC
    assert emv.cryptogram_type(b"\x40") is emv.Cryptogram.TC
    assert emv.cryptogram_type(b"\x80") is emv.Cryptogram.ARQC
    assert emv.numeric_value(bytes.fromhex("000000012345")) == 12345
    assert emv.tvr_flags(bytes.fromhex("8000048000")) == [
        "Offline data authentication was not performed",
        "Online PIN entered",
        "Transaction exceeds floor limit",
    ]
    with pytest.raises(TlvError):
        emv.numeric_value(b"\x1a")


def test_pan_masked_in_descriptions_unless_revealed() -> None:
    pan = generate_test_pan(random.Random(2), prefix="411111")
    item = emv.parse_tlv(emv.build_tlv("5A", bytes.fromhex(pan)))[0]
    assert pan not in emv.describe_value(item)
    assert emv.describe_value(item, reveal=True) == pan


def test_apdu_builders() -> None:
    assert emv.select(bytes.fromhex("A0000000031010")).encode().hex().upper() == "00A4040007A000000003101000"
    assert emv.read_record(1, 2).encode().hex().upper() == "00B2011400"
    gpo = emv.get_processing_options(bytes.fromhex("0840"))
    assert gpo.encode().hex().upper() == "80A80000048302084000"
    assert emv.generate_ac("ARQC", b"\x01").encode().hex().upper() == "80AE80000101" + "00"
    assert emv.parse_command_apdu(bytes.fromhex("00B2011400")).name == "READ RECORD"
    assert emv.status_text(0x6A83) == "record not found"
    assert emv.status_text(0x6110) == "16 more bytes available"
    with pytest.raises(TlvError):
        emv.read_record(1, 31)
