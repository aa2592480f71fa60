"""Wire and card formats: pure data, no I/O, no NumPy (the lowest posbridge layer)."""

from posbridge.protocols.errors import PosBridgeError
from posbridge.protocols.types import (
    Advertisement,
    BeaconId,
    Card,
    CheckIn,
    CheckOut,
    ChipRead,
    Direction,
    EncryptedCardData,
    MaskedCard,
    PresenceEvent,
    Swipe,
    Track,
    TrackFormat,
    Transaction,
    TransactionState,
    Zone,
)

__all__ = [
    "Advertisement",
    "BeaconId",
    "Card",
    "CheckIn",
    "CheckOut",
    "ChipRead",
    "Direction",
    "EncryptedCardData",
    "MaskedCard",
    "PosBridgeError",
    "PresenceEvent",
    "Swipe",
    "Track",
    "TrackFormat",
    "Transaction",
    "TransactionState",
    "Zone",
]
