"""Every vector in vectors/emv.json (BER-TLV, DOL, GPO, READ RECORD, GENERATE AC)."""

from __future__ import annotations

from typing import Any

import pytest
from posbridge.protocols import emv
from posbridge.protocols.errors import ParseError, TlvError


def test_gpo_format1(emv_vectors: dict[str, Any]) -> None:
    vector = emv_vectors["gpo_format1"]
    aip, afl = emv.parse_gpo_response(bytes.fromhex(vector["response"]))
    assert aip.hex().upper() == vector["aip"]
    assert afl.hex().upper() == vector["afl"]
    assert [entry.sfi for entry in emv.parse_afl(afl)] == [1, 2, 3]


def test_gpo_format2(emv_vectors: dict[str, Any]) -> None:
    vector = emv_vectors["gpo_format2"]
    aip, afl = emv.parse_gpo_response(bytes.fromhex(vector["response"]))
    assert aip.hex().upper() == vector["aip"]
    assert afl.hex().upper() == vector["afl"]


def test_read_record_track2_and_name(emv_vectors: dict[str, Any]) -> None:
    vector = emv_vectors["read_record"][0]
    objects = emv.parse_tlv(bytes.fromhex(vector["response"]))
    track2 = emv.find_tlv(objects, "57")
    assert track2 is not None
    card = emv.track2_equivalent_card(track2.value)
    expect = vector["expect"]["57"]
    assert (card.pan, card.expiry, card.service_code) == (
        expect["pan"],
        expect["expiry_yymm"],
        expect["service_code"],
    )
    name = emv.find_tlv(objects, "5F20")
    assert name is not None
    assert name.value.decode() == vector["expect"]["5F20"]
    assert emv.card_from_tlv(objects).name == vector["expect"]["5F20"]


def test_read_record_pan_and_dates(emv_vectors: dict[str, Any]) -> None:
    vector = emv_vectors["read_record"][1]
    objects = emv.parse_tlv(bytes.fromhex(vector["response"]))
    for tag, value in vector["expect"].items():
        found = emv.find_tlv(objects, tag)
        assert found is not None
        shown = emv.compressed_numeric(found.value) if tag == "5A" else found.value.hex().upper()
        assert shown == value
    card = emv.card_from_tlv(objects)
    assert (card.pan, card.expiry) == (vector["expect"]["5A"], vector["expect"]["5F24"][:4])


def test_generate_ac_format2(emv_vectors: dict[str, Any]) -> None:
    vector = emv_vectors["generate_ac_format2"]
    result = emv.parse_generate_ac_response(bytes.fromhex(vector["response"]))
    expect = vector["expect"]
    assert f"{result.cid.hex().upper()} ({result.kind})" == expect["9F27"]
    assert result.atc.hex().upper() == expect["9F36"]
    assert result.cryptogram.hex().upper() == expect["9F26"]
    assert result.issuer_application_data.hex().upper() == expect["9F10"]
    objects = emv.parse_tlv(bytes.fromhex(vector["response"]))
    assert emv.describe_value(emv.find_tlv(objects, "9F27")) == expect["9F27"]  # type: ignore[arg-type]


@pytest.mark.parametrize("case", [0, 1])
def test_dol_build(emv_vectors: dict[str, Any], case: int) -> None:
    vector = emv_vectors["dol_build"]
    sources = {bytes.fromhex(tag): bytes.fromhex(value) for tag, value in vector["sources"].items()}
    dol = bytes.fromhex(vector["cases"][case]["dol"])
    assert emv.build_dol_data(dol, sources).hex().upper() == vector["cases"][case]["expect"]
    assert emv.build_dol(emv.parse_dol(dol)) == dol


def test_long_form_lengths_give_the_same_value(emv_vectors: dict[str, Any]) -> None:
    for encoded in emv_vectors["tlv_lengths"]["same_value_ff"]:
        (item,) = emv.parse_tlv(bytes.fromhex(encoded))
        assert (item.tag_hex, item.value) == ("9C", b"\xff")
        assert item.minimal_length is False
        with pytest.raises(TlvError):
            emv.parse_tlv(bytes.fromhex(encoded), strict_lengths=True)


def test_three_byte_tag(emv_vectors: dict[str, Any]) -> None:
    (item,) = emv.parse_tlv(bytes.fromhex(emv_vectors["tlv_lengths"]["three_byte_tag"]))
    assert (item.tag_hex, item.value) == ("9F8201", b"\xff")
    assert item.encode().hex().upper() == emv_vectors["tlv_lengths"]["three_byte_tag"]


@pytest.mark.parametrize("index", range(6))
def test_must_fail(emv_vectors: dict[str, Any], index: int) -> None:
    encoded = emv_vectors["tlv_must_fail"][index]
    with pytest.raises(TlvError) as caught:
        emv.parse_tlv(bytes.fromhex(encoded))
    assert isinstance(caught.value, ParseError)
    assert isinstance(caught.value.offset, int)


def test_padding_between(emv_vectors: dict[str, Any]) -> None:
    vector = emv_vectors["padding_between"]
    objects = emv.parse_tlv(bytes.fromhex(vector["input"]))
    assert {item.tag_hex: item.value.hex().upper() for item in objects} == vector["expect"]
    assert [item.offset for item in objects] == [2, 12]
