"""The lane in-process: sales, confirmation of soft risk alerts, console API, health, metrics, SSE."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from posbridge.host.config import load_config
from posbridge.host.console import serve_console
from posbridge.host.lane import Lane, Metrics
from posbridge.protocols.cards import generate_test_pan
from posbridge.protocols.errors import UsageError
from posbridge.protocols.types import Card

from .conftest import free_port


@pytest.fixture
async def lane(tmp_path: Path) -> AsyncIterator[Lane]:
    """A lane with no hardware whose processor is unreachable (everything stays offline)."""
    config = load_config(environ={}, state_dir=tmp_path, processor_url=f"http://127.0.0.1:{free_port()}")
    lines: list[str] = []
    running = Lane(config, on_line=lines.append)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


def card(seed: int, service_code: str = "101") -> Card:
    return Card(pan=generate_test_pan(random.Random(seed), prefix="411111"), expiry="3012",
                service_code=service_code)


async def wait_for_status(lane: Lane, *statuses: str) -> str:
    for _ in range(200):
        if lane.sale is not None and lane.sale.status in statuses:
            return lane.sale.status
        await asyncio.sleep(0.02)
    raise AssertionError(f"sale stayed {lane.sale}")


async def test_card_without_a_sale_is_not_captured(lane: Lane) -> None:
    lane.emit("test", card(1))
    await asyncio.sleep(0.1)
    assert lane.snapshot()["queue"]["counts"] == {"pending": 0, "offline": 0, "forwarded": 0, "declined": 0}
    assert "no sale open" in lane.alerts[0]["text"]


async def test_duplicate_needs_confirmation_then_captures(lane: Lane) -> None:
    same = card(2)
    await lane.open_sale(500, None)
    lane.emit("test", same)
    assert await wait_for_status(lane, "offline", "processing") in ("offline", "processing")
    await lane.open_sale(500, None)
    lane.emit("test", same)
    assert await wait_for_status(lane, "confirm") == "confirm"
    assert lane.sale is not None
    assert "same card" in (lane.sale.reason or "")
    with pytest.raises(UsageError):
        await lane.open_sale(100, None)
    await lane.confirm_sale()
    assert await wait_for_status(lane, "offline", "processing") in ("offline", "processing")
    assert lane.snapshot()["queue"]["offline_total"] == 1000


async def test_cancel_and_double_open(lane: Lane) -> None:
    await lane.open_sale(700, None)
    with pytest.raises(UsageError, match="already open"):
        await lane.open_sale(700, None)
    await lane.cancel_sale()
    assert lane.sale is not None
    assert lane.sale.status == "cancelled"
    with pytest.raises(UsageError):
        await lane.cancel_sale()
    with pytest.raises(UsageError, match="not checked in"):
        await lane.pay_by_checkin(100, "nobody")


async def test_console_api_health_metrics_and_events(lane: Lane) -> None:
    runner, port = await serve_console(lane, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(base + "/api/sale", json={"amount": -5}) as response:
                assert response.status == 400
                assert "positive whole number" in (await response.json())["error"]
            async with session.post(base + "/api/sale", data=b"not json") as response:
                assert response.status == 400
            async with session.post(base + "/api/sale/confirm", json={}) as response:
                assert response.status == 400
            async with session.get(base + "/events") as events:
                first = await events.content.readuntil(b"\n\n")
                assert first.startswith(b"event: state\ndata: ")
                assert json.loads(first.split(b"data: ", 1)[1])["sale"] is None
                async with session.post(base + "/api/sale", json={"amount": 1999}) as response:
                    assert response.status == 200
                    assert (await response.json())["state"]["sale"]["status"] == "waiting"
                second = await asyncio.wait_for(events.content.readuntil(b"\n\n"), 5)
                assert json.loads(second.split(b"data: ", 1)[1])["sale"]["amount"] == 1999
            lane.emit("test", card(3))
            await wait_for_status(lane, "offline", "processing")
            async with session.get(base + "/healthz") as response:
                assert response.status == 200
                assert (await response.json())["ok"] is True
            async with session.get(base + "/metrics") as response:
                text = await response.text()
            async with session.get(base + "/api/state") as response:
                state = await response.json()
    finally:
        await runner.cleanup()
    assert "posbridge_captures_total 1" in text
    assert "posbridge_queue_depth 1" in text
    assert "posbridge_offline_amount 1999" in text
    assert '# TYPE posbridge_forward_latency_seconds histogram' in text
    assert state["queue"]["items"][0]["card"].startswith("411111******")
    assert generate_test_pan(random.Random(3), prefix="411111") not in json.dumps(state)


def test_metrics_histogram_is_cumulative() -> None:
    metrics = Metrics()
    for seconds in (0.01, 0.2, 3.0, 60.0):
        metrics.observe_forward_latency(seconds)
    metrics.inc("checkins", 2)
    text = metrics.render({"queue_depth": ("depth", 4.0)})
    assert 'posbridge_forward_latency_seconds_bucket{le="0.05"} 1' in text
    assert 'posbridge_forward_latency_seconds_bucket{le="0.25"} 2' in text
    assert 'posbridge_forward_latency_seconds_bucket{le="5"} 3' in text
    assert 'posbridge_forward_latency_seconds_bucket{le="+Inf"} 4' in text
    assert "posbridge_forward_latency_seconds_count 4" in text
    assert "posbridge_checkins_total 2" in text
    assert "posbridge_queue_depth 4" in text


class FlakyInput:
    """Fails on its first run (as an unplugged device would), then delivers one card."""

    name = "flaky reader"

    def __init__(self) -> None:
        self.runs = 0

    async def run(self, emit: object, stopping: asyncio.Event) -> None:
        assert callable(emit)
        self.runs += 1
        if self.runs == 1:
            raise OSError("device went away")
        emit(self.name, card(9))
        await stopping.wait()


async def test_failed_input_is_retried(tmp_path: Path) -> None:
    flaky = FlakyInput()
    config = load_config(environ={}, state_dir=tmp_path, processor_url=f"http://127.0.0.1:{free_port()}")
    lines: list[str] = []
    running = Lane(config, inputs=[flaky], on_line=lines.append)
    await running.start()
    try:
        await running.open_sale(250, None)
        await wait_for_status(running, "offline", "processing")
    finally:
        await running.stop()
    assert flaky.runs == 2
    assert "ALERT flaky reader failed (OSError); retrying in 1 s" in lines


async def test_console_token_guards_everything_but_health_and_metrics(lane: Lane) -> None:
    runner, port = await serve_console(lane, "127.0.0.1", 0, token="s3cret-token")
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
            for path in ("/", "/api/state", "/events"):
                async with session.get(base + path) as response:
                    assert response.status == 401, path
            async with session.post(base + "/api/sale", json={"amount": 100}) as response:
                assert response.status == 401
            async with session.get(base + "/api/state?token=wrong") as response:
                assert response.status == 401
            for path in ("/healthz", "/metrics"):
                async with session.get(base + path) as response:
                    assert response.status == 200, path
            async with session.get(base + "/api/state",
                                   headers={"Authorization": "Bearer s3cret-token"}) as response:
                assert response.status == 200
            async with session.get(base + "/?token=s3cret-token") as response:
                assert response.status == 200
                assert str(response.url) == base + "/"
                assert "posbridge console" in await response.text()
            async with session.post(base + "/api/sale", json={"amount": 100}) as response:
                assert response.status == 200
    finally:
        await runner.cleanup()
