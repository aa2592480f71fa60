"""The transaction lifecycle as a state machine (issue 7, "Lifecycle").

::

    captured ──► forwarding ──► approved ─┐
       │  ▲          │   └────► declined ─┼──► settled
       │  └─(retry)─ failed ◄──┘          │
       └──► failed (expired offline) ─────┘
    refused   (over an offline limit or a hard risk rule; terminal)

A step outside :data:`ALLOWED_TRANSITIONS` raises :class:`IllegalTransition`; a step to the
state a transaction is already in is not a transition and is refused too, so an answer the
processor delivers twice is applied once.
"""

from __future__ import annotations

from types import MappingProxyType

from posbridge.protocols.errors import IllegalTransition
from posbridge.protocols.types import TransactionState

State = TransactionState

ALLOWED_TRANSITIONS: MappingProxyType[TransactionState, frozenset[TransactionState]] = MappingProxyType(
    {
        State.CAPTURED: frozenset({State.FORWARDING, State.FAILED}),
        State.FORWARDING: frozenset({State.APPROVED, State.DECLINED, State.FAILED}),
        State.APPROVED: frozenset({State.SETTLED}),
        State.DECLINED: frozenset({State.SETTLED}),
        State.FAILED: frozenset({State.SETTLED, State.CAPTURED}),
        State.SETTLED: frozenset(),
        State.REFUSED: frozenset(),
    }
)

PENDING_STATES: frozenset[TransactionState] = frozenset({State.CAPTURED, State.FORWARDING})
"""States whose amount counts against the offline limits (not yet answered by the processor)."""

ANSWERED_STATES: frozenset[TransactionState] = frozenset({State.APPROVED, State.DECLINED})


def check_transition(key: str, current: TransactionState, target: TransactionState) -> None:
    """Raise :class:`IllegalTransition` unless ``current -> target`` is a lifecycle step."""
    if target not in ALLOWED_TRANSITIONS[current]:
        raise IllegalTransition(
            f"transaction {key} cannot go from {current.value} to {target.value}",
            key=key,
            current=current.value,
            target=target.value,
        )
