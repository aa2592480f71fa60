"""A payment processor stand-in on loopback HTTP, for tests, benchmarks and the demo (issue 7, §8).

It holds a test BDK (the ANSI X9.24-3-2017 Annex B AES-128 vector BDK), decrypts DUKPT payloads
(packed tracks: Track 1, Track 2 or both, parsed as ISO/IEC 7813 format B), approves or declines
by rules, charges customer account tokens (pay by check-in), and can be told to misbehave. It is
idempotent on the key: a key is charged at most once, whatever arrives.

HTTP API (JSON bodies; amounts in minor units)::

    POST /v1/authorizations            header Idempotency-Key: <key>  (must equal body "key")
         {"key", "amount", "currency", "lane", "source",
          one of "card": {"pan", "expiry" (YYMM), "service_code", "track2"?}
               | "dukpt": {"ksn" hex, "ciphertext" hex, "scheme": "aes128"|"tdes"}
               | "account_token": "..."}
      200 {"key", "status": "approved"|"declined", "reason", "processor_ref", "amount", "currency",
           "replayed": bool}            replayed=true when the key was seen before (nothing charged again)
      400 malformed request  409 same key, different amount or currency  503 told to fail
    GET  /v1/authorizations/{key}      200 the record as above, 404 {"error": "unknown key"}
    POST /v1/admin/faults              {"mode": "ok"|"fail"|"timeout"|"slow"|"drop"|"twice",
                                        "count": n (requests affected; omitted = until changed),
                                        "delay_s": seconds (slow/timeout)}
         fail: 503 without processing; slow: wait delay_s, then process; timeout: process, then
         wait delay_s before answering (the client sees an unknown outcome); drop: process, then
         close the connection without an answer; twice: the answer is sent twice in the body
         (two JSON lines).
    POST /v1/admin/accounts            {"<account token>": balance, ...}   set balances
    POST /v1/admin/decline             {"pans": [...], "amounts": [...]}     add to the decline list
    GET  /v1/admin/ledger              {"records": {key: record + "charges"}, "charged_total",
                                        "requests", "card_charges": {card hash: n}}
    GET  /healthz                      200 {"ok": true}

Decline rules, in order: undecryptable DUKPT payload or unreadable track data (a track whose
expiry is not YYMM with month 01-12 is unreadable), Luhn failure, invalid expiry date (a keyed
``"expiry"`` that is not a string YYMM with month 01-12, such as ``""`` or a number; absent or
``null`` is no expiry), expired card (YYMM before the current month), PAN or amount on the
decline list, amount over ``max_amount``, unknown account token, insufficient account balance.
Card data is never logged; records hold masked PANs only.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from posbridge.host.queue.capture import card_from_track2
from posbridge.host.queue.rules import card_expired
from posbridge.protocols.cards import luhn_valid, mask_pan
from posbridge.protocols.dukpt import KeyType, decrypt_tracks
from posbridge.protocols.errors import ConfigError, CryptoError, ParseError, UsageError
from posbridge.protocols.magstripe import card_from_tracks
from posbridge.protocols.types import EncryptedCardData, MaskedCard, is_valid_expiry

log = logging.getLogger("posbridge.processor_sim")

TEST_BDK = bytes.fromhex("FEDCBA9876543210F1F1F1F1F1F1F1F1")
"""The AES-128 BDK of ANSI X9.24-3-2017 Annex B (a published test key, never a production one)."""

FAULT_MODES = ("ok", "fail", "timeout", "slow", "drop", "twice")


@dataclass
class _Fault:
    mode: str = "ok"
    remaining: int | None = None
    delay_s: float = 0.0

    def take(self) -> str:
        if self.mode == "ok":
            return "ok"
        mode = self.mode
        if self.remaining is not None:
            self.remaining -= 1
            if self.remaining <= 0:
                self.mode, self.remaining = "ok", None
        return mode


@dataclass
class AuthorizationRecord:
    """The processor's record of one idempotency key."""

    key: str
    status: str
    reason: str | None
    processor_ref: str
    amount: int
    currency: str
    masked_pan: str | None
    card_hash: str | None = field(default=None, repr=False)
    charges: int = 0

    def answer(self, replayed: bool) -> dict[str, Any]:
        """The JSON answer for this record."""
        return {
            "key": self.key,
            "status": self.status,
            "reason": self.reason,
            "processor_ref": self.processor_ref,
            "amount": self.amount,
            "currency": self.currency,
            "replayed": replayed,
        }


class ProcessorSim:
    """The simulated processor: an aiohttp application plus its ledger.

    ``max_amount`` in minor units; ``accounts`` maps account tokens to balances (minor units);
    ``clock`` gives seconds since the epoch (for card expiry).
    """

    def __init__(
        self,
        bdk: bytes = TEST_BDK,
        *,
        max_amount: int = 1_000_000,
        decline_pans: Iterable[str] = (),
        decline_amounts: Iterable[int] = (),
        accounts: Mapping[str, int] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        KeyType.for_key(bdk, "the BDK")
        if max_amount < 0:
            raise ConfigError(f"max_amount must not be negative, got {max_amount}", key="max_amount")
        self._bdk = bdk
        self.max_amount = max_amount
        self._decline_hashes = {self._hash(pan) for pan in decline_pans}
        self.decline_amounts = set(decline_amounts)
        self.accounts: dict[str, int] = dict(accounts or {})
        self.clock = clock
        self.records: dict[str, AuthorizationRecord] = {}
        self.requests = 0
        self._fault = _Fault()
        self._locks: dict[str, asyncio.Lock] = {}
        self._runner: web.AppRunner | None = None
        self.app = web.Application()
        self.app.add_routes(
            [
                web.post("/v1/authorizations", self._authorize),
                web.get("/v1/authorizations/{key}", self._lookup),
                web.post("/v1/admin/faults", self._set_fault),
                web.post("/v1/admin/accounts", self._set_accounts),
                web.post("/v1/admin/decline", self._add_declines),
                web.get("/v1/admin/ledger", self._ledger),
                web.get("/healthz", self._health),
            ]
        )

    @staticmethod
    def _hash(pan: str) -> str:
        return hashlib.sha256(pan.encode()).hexdigest()

    # ------------------------------------------------------------------ running

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on ``host:port`` (0 = a free port) and return the base URL."""
        if not 0 <= port <= 65535:
            raise UsageError(f"port must be 0-65535, got {port}", port=port)
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        bound = sockets[0].getsockname()[1] if sockets else port
        return f"http://{host}:{bound}"

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def set_fault(self, mode: str, count: int | None = None, delay_s: float = 0.0) -> None:
        """Misbehave as ``mode`` (see the module docstring) for ``count`` requests or until changed."""
        if mode not in FAULT_MODES:
            raise UsageError(f"fault mode must be one of {', '.join(FAULT_MODES)}", mode=mode)
        self._fault = _Fault(mode, count, delay_s)

    # ------------------------------------------------------------------ rules

    def _card_from_body(self, body: Mapping[str, Any]) -> tuple[str | None, object, str | None]:
        """(pan, expiry, decline reason) from the request's card data; a keyed expiry as sent."""
        if "dukpt" in body:
            payload = body["dukpt"]
            try:
                encrypted = EncryptedCardData(
                    bytes.fromhex(payload["ksn"]),
                    bytes.fromhex(payload["ciphertext"]),
                    MaskedCard("", "", 0, "unknown"),
                    str(payload.get("scheme", "aes128")),
                )
                tracks = decrypt_tracks(self._bdk, encrypted)
            except (CryptoError, ParseError, KeyError, TypeError, ValueError):
                return None, None, "cannot decrypt card data"
            try:
                card = card_from_tracks(tracks)
            except ParseError:
                return None, None, "unreadable track data"
            return card.pan, card.expiry, None
        card_body = body.get("card")
        if not isinstance(card_body, Mapping):
            raise ParseError("no card data")
        if card_body.get("track2"):
            try:
                card = card_from_track2(str(card_body["track2"]))
            except ParseError:
                return None, None, "unreadable track data"
            return card.pan, card.expiry, None
        pan = str(card_body.get("pan", ""))
        expiry: object = card_body.get("expiry")
        return pan, expiry, None

    def _decide(self, body: Mapping[str, Any]) -> tuple[str, str | None, str | None, str | None]:
        """(status, reason, masked pan, card hash) for a new request; debits accounts when approved."""
        amount = int(body["amount"])
        if "account_token" in body:
            token = str(body["account_token"])
            if token not in self.accounts:
                return "declined", "unknown account", None, None
            if self.accounts[token] < amount:
                return "declined", "insufficient funds", None, None
            if amount in self.decline_amounts or amount > self.max_amount:
                return "declined", "amount over limit", None, None
            self.accounts[token] -= amount
            return "approved", None, None, "token:" + hashlib.sha256(token.encode()).hexdigest()
        pan, expiry, reason = self._card_from_body(body)
        if reason is not None or pan is None:
            return "declined", reason or "no card data", None, None
        masked, card_hash = mask_pan(pan), self._hash(pan)
        if not luhn_valid(pan):
            return "declined", "invalid card number", masked, card_hash
        if expiry is not None and not is_valid_expiry(expiry):
            return "declined", "invalid expiry date", masked, card_hash
        if isinstance(expiry, str) and card_expired(expiry, self.clock()):
            return "declined", "expired card", masked, card_hash
        if card_hash in self._decline_hashes or amount in self.decline_amounts:
            return "declined", "do not honor", masked, card_hash
        if amount > self.max_amount:
            return "declined", "amount over limit", masked, card_hash
        return "approved", None, masked, card_hash

    # ------------------------------------------------------------------ handlers

    @staticmethod
    def _json(payload: Any, status: int = 200) -> web.Response:
        return web.json_response(payload, status=status)

    async def _authorize(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        mode = self._fault.take()
        delay = self._fault.delay_s
        if mode == "fail":
            return self._json({"error": "processor unavailable (simulated)"}, 503)
        if mode == "slow":
            await asyncio.sleep(delay)
        try:
            body = await request.json()
            key = request.headers.get("Idempotency-Key", "")
            if not isinstance(body, dict) or not key or body.get("key") != key:
                raise ParseError("Idempotency-Key header must equal the body's key")
            amount, currency = body["amount"], body["currency"]
            if not isinstance(amount, int) or amount <= 0 or not isinstance(currency, str):
                raise ParseError("amount must be a positive integer and currency a code")
        except (ParseError, KeyError, ValueError) as error:
            return self._json({"error": f"malformed request: {type(error).__name__}"}, 400)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            record = self.records.get(key)
            replayed = record is not None
            if record is None:
                try:
                    status, reason, masked, card_hash = self._decide(body)
                except (ParseError, KeyError, TypeError, ValueError):
                    return self._json({"error": "malformed card data"}, 400)
                record = AuthorizationRecord(
                    key,
                    status,
                    reason,
                    f"sim_{uuid.uuid4().hex[:16]}",
                    amount,
                    currency,
                    masked,
                    card_hash,
                    charges=1 if status == "approved" else 0,
                )
                self.records[key] = record
            elif record.amount != amount or record.currency != currency:
                return self._json({"error": "idempotency key reused with a different amount"}, 409)
        answer = record.answer(replayed)
        if mode == "timeout":
            await asyncio.sleep(delay or 30.0)
        if mode == "drop":
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError
        if mode == "twice":
            text = json.dumps(answer) + "\n" + json.dumps(answer) + "\n"
            return web.Response(text=text, content_type="application/json")
        return self._json(answer)

    async def _lookup(self, request: web.Request) -> web.Response:
        record = self.records.get(request.match_info["key"])
        if record is None:
            return self._json({"error": "unknown key"}, 404)
        return self._json(record.answer(True))

    async def _set_fault(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            self.set_fault(str(body.get("mode", "ok")), body.get("count"), float(body.get("delay_s", 0.0)))
        except (UsageError, ValueError, AttributeError) as error:
            return self._json({"error": str(error)}, 400)
        return self._json(
            {"mode": self._fault.mode, "count": self._fault.remaining, "delay_s": self._fault.delay_s}
        )

    async def _set_accounts(self, request: web.Request) -> web.Response:
        body = await request.json()
        if not isinstance(body, dict) or not all(isinstance(v, int) for v in body.values()):
            return self._json({"error": "expected {token: balance}"}, 400)
        self.accounts.update({str(token): balance for token, balance in body.items()})
        return self._json({"accounts": len(self.accounts)})

    async def _add_declines(self, request: web.Request) -> web.Response:
        body = await request.json()
        self._decline_hashes.update(self._hash(str(pan)) for pan in body.get("pans", []))
        self.decline_amounts.update(int(amount) for amount in body.get("amounts", []))
        return self._json({"ok": True})

    def ledger(self) -> dict[str, Any]:
        """The ledger as served by ``GET /v1/admin/ledger``."""
        card_charges: Counter[str] = Counter()
        for record in self.records.values():
            if record.charges and record.card_hash:
                card_charges[record.card_hash] += record.charges
        return {
            "records": {
                key: {**record.answer(False), "masked_pan": record.masked_pan, "charges": record.charges}
                for key, record in self.records.items()
            },
            "charged_total": sum(r.amount for r in self.records.values() if r.charges),
            "requests": self.requests,
            "card_charges": dict(card_charges),
        }

    async def _ledger(self, request: web.Request) -> web.Response:
        return self._json(self.ledger())

    async def _health(self, request: web.Request) -> web.Response:
        return self._json({"ok": True})
