"""The merchant console: a web page served by ``posbridge run`` and ``posbridge demo`` (issue 8).

:func:`create_console_app` builds the aiohttp application: the static page (``static/``, plain
HTML/CSS/JS, no build step), a JSON API to open, cancel and pay sales, live state as server-sent
events on ``/events``, ``/healthz`` and Prometheus-format ``/metrics``. Everything it serves comes
from :meth:`LaneControl.snapshot`, which holds masked card data only (PCI DSS 3.4.1).
"""

from posbridge.host.console.server import LaneControl, create_console_app, serve_console

__all__ = ["LaneControl", "create_console_app", "serve_console"]
