"""Fixtures for the forwarder tests: the queue fixtures plus an in-process processor-sim."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from posbridge.host.processor_sim import ProcessorSim

from ..queue.conftest import ManualClock, clock, device_key, make_queue, pans

__all__ = ["ManualClock", "clock", "device_key", "make_queue", "pans", "sim"]


@pytest.fixture
async def sim() -> AsyncIterator[tuple[ProcessorSim, str]]:
    """A processor-sim on a free loopback port: ``(sim, base_url)``."""
    processor = ProcessorSim(accounts={"tok_alice": 10_000})
    url = await processor.start()
    yield processor, url
    await processor.stop()
