"""The console's HTTP server: static page, JSON API, server-sent events, health and metrics.

SSE follows the WHATWG HTML "Server-sent events" format (``event: state`` + one ``data:`` line
of JSON per change); Prometheus metrics use the text exposition format 0.0.4.
"""

from __future__ import annotations

import hmac
import json
import os
from collections.abc import AsyncIterator
from importlib.resources import files
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web
from posbridge.protocols.errors import CaptureRefused, DeviceError, PosBridgeError, UsageError

STATIC_DIR = Path(str(files("posbridge.host.console") / "static"))


class LaneControl(Protocol):
    """What the console needs from a running lane."""

    def snapshot(self) -> dict[str, Any]:
        """The lane's state as JSON-ready data (masked card data only)."""

    def watch(self) -> AsyncIterator[dict[str, Any]]:
        """Snapshots: the current one at once, then one after each change, until the lane stops."""

    async def open_sale(self, amount: int, customer: str | None) -> None:
        """Start a sale of ``amount`` minor units, waiting for a card; ``customer`` is attached."""

    async def cancel_sale(self) -> None:
        """Abandon the sale that is waiting for a card or a confirmation."""

    async def confirm_sale(self) -> None:
        """Capture a sale a soft risk rule held back, the cashier having confirmed it."""

    async def pay_by_checkin(self, amount: int, customer: str) -> None:
        """Charge a checked-in customer with no card (the customer's stored payment method)."""

    def health(self) -> dict[str, Any]:
        """``{"ok": bool, ...}`` for ``/healthz``."""

    def metrics_text(self) -> str:
        """Prometheus text exposition of the lane's metrics."""


LANE_KEY = web.AppKey("lane", LaneControl)


def _json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _read_json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UsageError("the request body must be a JSON object") from None
    if not isinstance(body, dict):
        raise UsageError("the request body must be a JSON object")
    return body


def _amount(body: dict[str, Any]) -> int:
    amount = body.get("amount")
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise UsageError("amount must be a positive whole number of minor units (cents)")
    return amount


def _customer(body: dict[str, Any], required: bool) -> str | None:
    customer = body.get("customer")
    if customer is None and not required:
        return None
    if not isinstance(customer, str) or not customer:
        raise UsageError("customer must be the id of a checked-in customer")
    return customer


async def _index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


async def _state(request: web.Request) -> web.Response:
    return web.json_response(request.app[LANE_KEY].snapshot())


async def _api_call(request: web.Request, action: str) -> web.Response:
    lane = request.app[LANE_KEY]
    try:
        body = await _read_json(request) if request.can_read_body else {}
        if action == "sale":
            await lane.open_sale(_amount(body), _customer(body, required=False))
        elif action == "cancel":
            await lane.cancel_sale()
        elif action == "confirm":
            await lane.confirm_sale()
        else:
            customer = _customer(body, required=True)
            assert customer is not None
            await lane.pay_by_checkin(_amount(body), customer)
    except UsageError as error:
        return _json_error(400, str(error))
    except CaptureRefused as error:
        return _json_error(409, str(error))
    except PosBridgeError as error:
        return _json_error(503, str(error))
    return web.json_response({"state": lane.snapshot()})


async def _sale(request: web.Request) -> web.Response:
    return await _api_call(request, "sale")


async def _cancel(request: web.Request) -> web.Response:
    return await _api_call(request, "cancel")


async def _confirm(request: web.Request) -> web.Response:
    return await _api_call(request, "confirm")


async def _pay_by_checkin(request: web.Request) -> web.Response:
    return await _api_call(request, "checkin")


async def _events(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)
    try:
        async for snapshot in request.app[LANE_KEY].watch():
            data = json.dumps(snapshot, separators=(",", ":"))
            await response.write(f"event: state\ndata: {data}\n\n".encode())
    except (ConnectionResetError, ConnectionError):
        pass
    return response


async def _health(request: web.Request) -> web.Response:
    health = request.app[LANE_KEY].health()
    return web.json_response(health, status=200 if health.get("ok") else 503)


async def _metrics(request: web.Request) -> web.Response:
    return web.Response(
        text=request.app[LANE_KEY].metrics_text(), content_type="text/plain", charset="utf-8",
        headers={"X-Content-Type-Options": "nosniff"},
    )


TOKEN_COOKIE = "posbridge_console"
OPEN_PATHS = frozenset({"/healthz", "/metrics"})


def _token_guard(token: str) -> Any:
    """Middleware: every page and API call needs ``token`` (Bearer header, cookie, or ``?token=`` once)."""

    @web.middleware
    async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path in OPEN_PATHS:
            response: web.StreamResponse = await handler(request)
            return response
        offered = request.query.get("token")
        if offered is not None and hmac.compare_digest(offered, token):
            redirect = web.HTTPSeeOther(request.rel_url.with_query({k: v for k, v in request.query.items()
                                                                    if k != "token"}))
            redirect.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="Strict")
            raise redirect
        header = request.headers.get("Authorization", "")
        presented = header.removeprefix("Bearer ") if header.startswith("Bearer ") else request.cookies.get(
            TOKEN_COOKIE, "")
        if not hmac.compare_digest(presented, token):
            return web.json_response({"error": "open the console with /?token=... ([console] token)"},
                                     status=401)
        response = await handler(request)
        return response

    return guard


def create_console_app(lane: LaneControl, token: str = "") -> web.Application:
    """The console for ``lane``: ``/``, ``/static/*``, ``/api/*``, ``/events``, ``/healthz``, ``/metrics``.

    With a ``token`` every route but ``/healthz`` and ``/metrics`` requires it.
    """
    app = web.Application(middlewares=[_token_guard(token)] if token else [])
    app[LANE_KEY] = lane
    app.router.add_get("/", _index)
    app.router.add_static("/static/", STATIC_DIR)
    app.router.add_get("/api/state", _state)
    app.router.add_post("/api/sale", _sale)
    app.router.add_post("/api/sale/cancel", _cancel)
    app.router.add_post("/api/sale/confirm", _confirm)
    app.router.add_post("/api/pay-by-checkin", _pay_by_checkin)
    app.router.add_get("/events", _events)
    app.router.add_get("/healthz", _health)
    app.router.add_get("/metrics", _metrics)
    return app


async def serve_console(
    lane: LaneControl, host: str, port: int, token: str = ""
) -> tuple[web.AppRunner, int]:
    """Serve the console on ``host:port`` (port 0 picks a free one); returns the runner and the port."""
    runner = web.AppRunner(create_console_app(lane, token), access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as error:
        await runner.cleanup()
        reason = os.strerror(error.errno) if error.errno else str(error)
        raise DeviceError(
            f"console: cannot listen on {host}:{port}: {reason} (choose another [console] port or --console)",
            host=host, port=port,
        ) from error
    bound = runner.addresses[0][1] if runner.addresses else port
    return runner, int(bound)
