"""The close-once, context-manager behaviour every device channel shares."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class ClosingResource:
    """Closed exactly once, by :meth:`close` or by leaving a ``with`` block.

    Subclasses release what they hold in :meth:`_close`; ``closed`` tells whether that happened.
    """

    closed: bool = False

    def _close(self) -> None:
        """Release the device; called once, by the first :meth:`close`."""

    def close(self) -> None:
        """Close the channel; closing twice is harmless."""
        if not self.closed:
            self.closed = True
            self._close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
