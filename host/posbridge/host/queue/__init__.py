"""The POS transaction queue: offline store-and-forward, exactly once (issue 7).

Open one by URL, in the manner of pyserial's ``serial_for_url``::

    queue = open_queue("sqlite:///var/lib/posbridge/queue.db")      # one lane, embedded
    queue = open_queue("nats://127.0.0.1:4222?outbox=/var/lib/posbridge/queue.db&lane=lane-1")  # fleet

Both give a :class:`TransactionQueue`: the SQLite outbox is always the source of truth; the
``nats://`` form adds a :class:`JetStreamQueue` publisher (``Nats-Msg-Id`` = idempotency key)
that a store or HQ :class:`JetStreamForwarder` consumes. Query parameters: ``lane``,
``key_file``, ``max_amount``, ``max_total``, ``max_count``, ``max_age_s``; for ``nats://`` also
``outbox`` (the lane's SQLite file), ``stream`` and ``subject``.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Any

from posbridge.host.queue.capture import CaptureRequest, card_from_track2
from posbridge.host.queue.events import QueueEvent
from posbridge.host.queue.lifecycle import ALLOWED_TRANSITIONS, PENDING_STATES, check_transition
from posbridge.host.queue.rules import (
    Alert,
    AlertKind,
    ConfirmationRequired,
    OfflineLimits,
    RiskRules,
)
from posbridge.host.queue.sealing import DeviceKey
from posbridge.host.queue.store import (
    AuditEntry,
    OfflineStatus,
    OutboundPayment,
    ProcessorAnswer,
    QueueStatus,
    TransactionQueue,
)
from posbridge.protocols.errors import UsageError

__all__ = [
    "ALLOWED_TRANSITIONS",
    "PENDING_STATES",
    "Alert",
    "AlertKind",
    "AuditEntry",
    "CaptureRequest",
    "ConfirmationRequired",
    "DeviceKey",
    "OfflineLimits",
    "OfflineStatus",
    "OutboundPayment",
    "ProcessorAnswer",
    "QueueEvent",
    "QueueStatus",
    "RiskRules",
    "TransactionQueue",
    "card_from_track2",
    "check_transition",
    "open_queue",
]

_LIMIT_PARAMS = {
    "max_amount": ("max_transaction_amount", int),
    "max_total": ("max_total_amount", int),
    "max_count": ("max_count", int),
    "max_age_s": ("max_age_s", float),
}


_URL_PARAMS = {"lane", "key_file", "outbox", "stream", "subject", *_LIMIT_PARAMS}


def _limits(params: dict[str, str], limits: OfflineLimits | None) -> OfflineLimits | None:
    chosen: dict[str, Any] = {}
    for name, (field_name, kind) in _LIMIT_PARAMS.items():
        if name in params:
            try:
                chosen[field_name] = kind(params[name])
            except ValueError:
                raise UsageError(f"queue URL parameter {name} must be a number", parameter=name) from None
    if not chosen:
        return limits
    base = limits or OfflineLimits()
    return OfflineLimits(**{**base.__dict__, **chosen})


def open_queue(url: str, **options: Any) -> TransactionQueue:
    """Open the queue at ``url`` (``sqlite:///PATH`` or ``nats://HOST:PORT?outbox=PATH``).

    ``options`` are passed to :class:`TransactionQueue` (``lane``, ``limits``, ``rules``,
    ``device_key``, ``key_path``, ``clock``, ``presence_retention_s``) and win over URL parameters.
    """
    parsed = urllib.parse.urlsplit(url)
    params = dict(urllib.parse.parse_qsl(parsed.query))
    unknown = sorted(set(params) - _URL_PARAMS)
    if unknown:
        known = ", ".join(sorted(_URL_PARAMS))
        raise UsageError(f"unknown queue URL parameter(s) {', '.join(unknown)} (known: {known})", url=url)
    if "lane" in params:
        options.setdefault("lane", params["lane"])
    if "key_file" in params:
        options.setdefault("key_path", params["key_file"])
    options["limits"] = _limits(params, options.get("limits"))
    if parsed.scheme == "sqlite":
        if not parsed.path or parsed.netloc:
            raise UsageError(f"a SQLite queue URL is sqlite:///PATH, got {url}")
        return TransactionQueue(Path(parsed.path), **options)
    if parsed.scheme == "nats":
        from posbridge.host.queue.jetstream import JetStreamQueue

        outbox = params.get("outbox")
        if not outbox or not parsed.hostname:
            raise UsageError("a fleet queue URL is nats://HOST:PORT?outbox=PATH (the lane's SQLite outbox)")
        server = f"nats://{parsed.hostname}:{parsed.port or 4222}"
        return JetStreamQueue(
            Path(outbox),
            server=server,
            stream=params.get("stream", "POSBRIDGE"),
            subject=params.get("subject", "posbridge.tx"),
            **options,
        )
    raise UsageError(f"unknown queue URL scheme in {url}: use sqlite:///PATH or nats://HOST:PORT?outbox=PATH")
