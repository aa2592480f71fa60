"""Lane benchmark (issue 8): swipe-to-answer latency through the whole lane, and console fan-out.

    .venv/bin/python benchmarks/lane.py [--sales 40] [--watchers 20]

Runs the demo's lane (virtual magstripe head decoded by the swipe detector, SQLite queue,
forwarder, in-process processor simulator) and, for each sale, measures:

- read -> captured: from the moment the synthesized swipe is pushed to the virtual head until the
  capture is durable in the queue (includes real-time audio pacing of the swipe itself, ~0.3 s);
- captured -> approved: from the durable capture until the processor's answer is recorded;
- console: how long ``--watchers`` server-sent-event clients take to see the approved state.

Prints median and 95th percentile in milliseconds. Figures, never assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
from _figures import percentile
from posbridge.host.cli.demo import DemoShop


async def watcher(url: str, seen: dict[str, float], ready: asyncio.Event, done: asyncio.Event) -> None:
    async with aiohttp.ClientSession() as session, session.get(url) as events:
        ready.set()
        while not done.is_set():
            chunk = await events.content.readuntil(b"\n\n")
            if b'"status":"approved"' in chunk:
                key = chunk.split(b'"key":"', 1)[1].split(b'"', 1)[0].decode()
                seen.setdefault(key, time.perf_counter())


async def main(sales: int, watchers: int) -> None:
    with tempfile.TemporaryDirectory() as state:
        shop = DemoShop(Path(state), ("127.0.0.1", 0), seed=1, on_line=lambda line: None, auto_swipe=False)
        await shop.start()
        lane = shop.lane
        views: list[dict[str, float]] = [{} for _ in range(watchers)]
        done = asyncio.Event()
        readies = [asyncio.Event() for _ in range(watchers)]
        url = f"http://127.0.0.1:{shop.console_port}/events"
        tasks = [asyncio.create_task(watcher(url, views[i], readies[i], done)) for i in range(watchers)]
        await asyncio.gather(*(ready.wait() for ready in readies))
        to_capture, to_answer, to_console = [], [], []
        try:
            for index in range(sales):
                await lane.open_sale(1000 + index, None)
                pushed = time.perf_counter()
                shop.swipe(shop.test_card())
                while lane.sale.status == "waiting":
                    await asyncio.sleep(0.001)
                captured = time.perf_counter()
                while lane.sale.status not in ("approved", "declined", "refused", "confirm"):
                    await asyncio.sleep(0.001)
                answered = time.perf_counter()
                if lane.sale.status != "approved":
                    continue
                key = lane.sale.key
                while not all(key in view for view in views):
                    await asyncio.sleep(0.001)
                to_capture.append(captured - pushed)
                to_answer.append(answered - captured)
                to_console.append(max(view[key] for view in views) - answered)
        finally:
            done.set()
            for task in tasks:
                task.cancel()
            await shop.stop()
    for name, values in (
        ("read -> captured", to_capture),
        ("captured -> approved", to_answer),
        (f"approved -> {watchers} consoles", to_console),
    ):
        print(
            f"{name:>26}: median {statistics.median(values) * 1000:7.1f} ms, "
            f"p95 {percentile(values, 0.95) * 1000:7.1f} ms  ({len(values)} sales)"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sales", type=int, default=40)
    parser.add_argument("--watchers", type=int, default=20)
    options = parser.parse_args()
    asyncio.run(main(options.sales, options.watchers))
