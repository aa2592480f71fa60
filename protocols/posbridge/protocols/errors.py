"""The one error tree of posbridge.

Every error posbridge raises on purpose derives from :class:`PosBridgeError` and also from the
built-in exception a caller would naturally catch, so ``except ValueError`` keeps working around
a parser and ``except TimeoutError`` around a device. Third-party errors are wrapped with
``raise ... from``. Messages never hold clear card data: :class:`PosBridgeError` passes its message through
:func:`posbridge.protocols.cards.redact_pans` when it is raised, as a last line of defence, so
``str``, ``args`` and ``repr`` all show the masked form.

::

    PosBridgeError
    ├── ParseError (ValueError)               bad bytes or text in a wire, card or file format
    │   ├── TrackError                        ISO/IEC 7811/7813 track text, sentinels, parity
    │   ├── ChecksumError                     a CRC, LRC or parity check failed
    │   ├── FrameError                        a dongle link frame: COBS, length, fields
    │   │   └── UnsupportedFrame              unknown frame version or message type
    │   ├── TlvError                          EMV BER-TLV, DOL or APDU data
    │   ├── AdvertisementError                a BLE advertisement payload
    │   └── AudioFormatError                  a WAV file or raw PCM stream
    ├── UsageError (ValueError)               a bad command-line argument or URL
    ├── ConfigError (ValueError)              a bad configuration key or value (names the key)
    ├── CryptoError                           key derivation, encryption or decryption
    │   ├── KeyMaterialError (ValueError)     a key, BDK or KSN of the wrong form
    │   ├── KsnExhaustedError                 the DUKPT transaction counter is used up
    │   └── IntegrityError                    a sealed record or ciphertext failed to authenticate
    ├── DeviceError (OSError)                 an audio input, serial port or BLE adapter
    │   ├── DeviceNotFound (FileNotFoundError)
    │   ├── DeviceTimeout (TimeoutError)
    │   ├── DeviceDisconnected (ConnectionError)
    │   └── UnsupportedSetting (ValueError)   a rate, format or mode the device refuses
    ├── LinkError (ConnectionError)           the dongle link gave up (retries exhausted, NAK)
    ├── QueueError                            the transaction queue
    │   ├── IllegalTransition (RuntimeError)  a lifecycle step the state machine refuses
    │   ├── CaptureRefused                    over an offline limit or a risk rule (has a reason)
    │   └── UnknownTransaction (KeyError)
    └── ProcessorError (ConnectionError)      the payment processor or its simulator
        ├── ProcessorUnavailable              down, timed out or circuit open
        └── ProcessorRejected (ValueError)    the processor refused the request as malformed
"""

from __future__ import annotations

from typing import Any


class PosBridgeError(Exception):
    """Root of every deliberate posbridge error.

    ``message`` is one human-readable line; keyword ``context`` values become attributes so
    callers and JSON output can read structured fields (``err.offset``, ``err.key``, ...).
    """

    def __init__(self, message: str, /, **context: Any) -> None:
        from posbridge.protocols.cards import redact_pans

        message = redact_pans(message)
        super().__init__(message)
        self.message = message
        self.context: dict[str, Any] = dict(context)
        for name, value in context.items():
            setattr(self, name, value)

    def __str__(self) -> str:
        return self.message


class ParseError(PosBridgeError, ValueError):
    """Input bytes or text do not follow the format they claim to be in."""


class TrackError(ParseError):
    """A magnetic-stripe track violates ISO/IEC 7811-2 / 7813 (sentinels, characters, length)."""


class ChecksumError(ParseError):
    """A CRC, LRC or parity check failed."""


class FrameError(ParseError):
    """A dongle link frame is malformed (COBS, length, field values)."""


class UnsupportedFrame(FrameError):
    """A well-formed frame of a version or message type this side does not speak."""


class TlvError(ParseError):
    """EMV BER-TLV, DOL or APDU data is malformed (EMV Book 3, Annex B)."""


class AdvertisementError(ParseError):
    """A BLE advertisement payload is malformed."""


class AudioFormatError(ParseError):
    """A WAV file or raw PCM stream cannot be read as audio."""


class UsageError(PosBridgeError, ValueError):
    """A command-line argument, option or URL is not usable."""


class ConfigError(PosBridgeError, ValueError):
    """A configuration key or value is invalid; ``key`` names it."""


class CryptoError(PosBridgeError):
    """Key derivation, encryption or decryption failed."""


class KeyMaterialError(CryptoError, ValueError):
    """A key, BDK, initial key ID or KSN has the wrong form or length."""


class KsnExhaustedError(CryptoError):
    """The DUKPT transaction counter can go no further; the device needs a new initial key."""


class IntegrityError(CryptoError):
    """A sealed record or ciphertext failed authentication."""


class DeviceError(PosBridgeError, OSError):
    """An audio input, serial port or BLE adapter failed."""


class DeviceNotFound(DeviceError, FileNotFoundError):
    """The named device does not exist or is not plugged in."""


class DeviceTimeout(DeviceError, TimeoutError):
    """The device did not answer in time."""


class DeviceDisconnected(DeviceError, ConnectionError):
    """The device went away while in use."""


class UnsupportedSetting(DeviceError, ValueError):
    """The device refuses a rate, format or mode; the message names what it offers."""


class LinkError(PosBridgeError, ConnectionError):
    """The dongle link gave up: retries exhausted, or the peer refused a frame."""


class QueueError(PosBridgeError):
    """The transaction queue failed."""


class IllegalTransition(QueueError, RuntimeError):
    """A transaction lifecycle step the state machine does not allow."""


class CaptureRefused(QueueError):
    """A capture refused by an offline limit or a risk rule; ``reason`` is cashier-readable."""


class UnknownTransaction(QueueError, KeyError):
    """No transaction has that idempotency key."""

    def __str__(self) -> str:
        return PosBridgeError.__str__(self)


class ProcessorError(PosBridgeError, ConnectionError):
    """The payment processor (or its simulator) failed."""


class ProcessorUnavailable(ProcessorError):
    """The processor is down, timed out, or the circuit breaker is open."""


class ProcessorRejected(ProcessorError, ValueError):
    """The processor refused the request as malformed."""
