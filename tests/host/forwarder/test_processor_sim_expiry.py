"""The processor-sim on a card expiry that is not YYMM with month 01-12: declined, never a crash."""

from __future__ import annotations

import random
from typing import Any

import aiohttp
import pytest
from posbridge.host.processor_sim import TEST_BDK, ProcessorSim
from posbridge.protocols.cards import generate_test_pan
from posbridge.protocols.dukpt import derive_aes_initial_key, encrypt_tracks
from posbridge.protocols.types import MaskedCard, Track, TrackFormat

PAN = generate_test_pan(random.Random(2412), prefix="411111")


async def _authorize(url: str, key: str, payment: dict[str, Any]) -> dict[str, Any]:
    """The answer (HTTP 200) to a 1.00 USD authorization paid with ``payment``: ``{"card": ...}`` or
    ``{"dukpt": ...}``."""
    body = {"key": key, "amount": 100, "currency": "USD", **payment}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{url}/v1/authorizations", json=body, headers={"Idempotency-Key": key}) as answer,
    ):
        assert answer.status == 200
        result: dict[str, Any] = await answer.json()
        return result


@pytest.mark.parametrize(
    ("card", "reason"),
    [
        ({"pan": PAN, "expiry": "9999"}, "invalid expiry date"),
        ({"pan": PAN, "expiry": "3000"}, "invalid expiry date"),
        ({"pan": PAN, "expiry": ""}, "invalid expiry date"),
        ({"pan": PAN, "expiry": 9913}, "invalid expiry date"),
        ({"pan": PAN, "expiry": 3012}, "invalid expiry date"),
        ({"pan": PAN, "expiry": ["3012"]}, "invalid expiry date"),
        ({"pan": PAN, "expiry": None}, None),
        ({"track2": f"{PAN}=99131010000012300"}, "unreadable track data"),
        ({"track2": f"{PAN}=9X121010000012300"}, "unreadable track data"),
        ({"pan": PAN, "expiry": "2001"}, "expired card"),
        ({"pan": PAN, "expiry": "3012"}, None),
        ({"pan": PAN}, None),
    ],
)
async def test_expiry_rules(sim: tuple[ProcessorSim, str], card: dict[str, Any], reason: str | None) -> None:
    processor, url = sim
    answer = await _authorize(url, "k1", {"card": card})
    assert (answer["status"], answer["reason"]) == ("approved" if reason is None else "declined", reason)
    assert PAN not in repr(processor.records)


async def test_a_dukpt_payload_whose_track_has_a_bad_month_is_declined_as_unreadable(
    sim: tuple[ProcessorSim, str],
) -> None:
    processor, url = sim
    ksn = bytes.fromhex("123456789012345600000001")
    initial_key = derive_aes_initial_key(TEST_BDK, ksn[:8])
    masked = MaskedCard.from_pan(PAN, "3012", "101")
    tracks = (Track(2, TrackFormat.BCD, f"{PAN}=3013101000"),)
    encrypted = encrypt_tracks(initial_key, ksn, tracks, masked)
    dukpt = {"ksn": encrypted.ksn.hex(), "ciphertext": encrypted.ciphertext.hex(), "scheme": "aes128"}
    result = await _authorize(url, "d1", {"dukpt": dukpt})
    assert (result["status"], result["reason"]) == ("declined", "unreadable track data")
    assert processor.records["d1"].charges == 0
