"""Logging that cannot leak a PAN (PCI DSS 3.3, 10.3): every record passes a redacting filter."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from posbridge.protocols.cards import redact_pans


class RedactingFilter(logging.Filter):
    """Rewrites each record's final message with :func:`redact_pans` before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_pans(message)
        if redacted != message or record.args:
            record.msg, record.args = redacted, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact_pans(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def configure_logging(
    level: int = logging.WARNING, log_file: Path | None = None, *, stderr: bool = True
) -> None:
    """Send posbridge's log to stderr (unless ``stderr=False``) and ``log_file``, every handler
    behind a redacting filter."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)] if stderr else []
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = logging.getLogger()
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(RedactingFilter())
        root.addHandler(handler)
    root.setLevel(level)
