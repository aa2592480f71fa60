"""Change and alert notifications from the queue to the console and the log.

Listeners are plain callables or coroutine functions. A listener added from inside a running
event loop is always called on that loop (``call_soon_threadsafe``), so a capture made in a
worker thread still reaches an asyncio console safely; :meth:`EventHub.stream` offers the same
events as an async iterator.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from posbridge.host.queue.rules import Alert
from posbridge.protocols.types import Transaction

log = logging.getLogger("posbridge.queue")

_PENDING: set[asyncio.Future[None]] = set()

Listener = Callable[["QueueEvent"], None] | Callable[["QueueEvent"], Awaitable[None]]


@dataclass(frozen=True)
class QueueEvent:
    """``kind`` is ``"transaction"`` (a new or changed transaction), ``"alert"`` or ``"presence"``."""

    kind: str
    transaction: Transaction | None = None
    alert: Alert | None = None
    presence: dict[str, Any] | None = None


class EventHub:
    """Fan-out of :class:`QueueEvent` to listeners, thread-safe and asyncio-friendly."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: list[tuple[Listener, asyncio.AbstractEventLoop | None]] = []

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(event)`` for every event; returns a function that unsubscribes it."""
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        entry = (listener, loop)
        with self._lock:
            self._listeners.append(entry)

        def unsubscribe() -> None:
            with self._lock:
                if entry in self._listeners:
                    self._listeners.remove(entry)

        return unsubscribe

    async def stream(self) -> AsyncIterator[QueueEvent]:
        """Every event from now on, as an async iterator (``async for event in queue.events()``)."""
        inbox: asyncio.Queue[QueueEvent] = asyncio.Queue()
        unsubscribe = self.subscribe(inbox.put_nowait)
        try:
            while True:
                yield await inbox.get()
        finally:
            unsubscribe()

    def publish(self, event: QueueEvent) -> None:
        """Deliver ``event`` to every listener; a failing listener is logged, never fatal."""
        if event.alert is not None:
            log.warning(
                "alert %s: %s (key %s, card %s)",
                event.alert.kind.value,
                event.alert.message,
                event.alert.key,
                event.alert.card.masked_pan if event.alert.card else "-",
            )
        with self._lock:
            listeners = list(self._listeners)
        for listener, loop in listeners:
            if loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(self._invoke, listener, event)
            elif loop is None:
                self._invoke(listener, event)

    @staticmethod
    def _invoke(listener: Listener, event: QueueEvent) -> None:
        try:
            result = listener(event)
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                _PENDING.add(task)
                task.add_done_callback(_PENDING.discard)
        except Exception:
            log.exception("a queue listener failed")
