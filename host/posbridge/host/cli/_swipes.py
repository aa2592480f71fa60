"""How a decoded swipe is shown: the one JSON record and the one human line that ``posbridge
decode``, ``posbridge listen`` and ``posbridge synth`` all print (issue 2 item 5, issue 3 item 3).

Track text is masked with :func:`posbridge.protocols.magstripe.masked_track_text` (PAN to first 6
and last 4, name and discretionary data hidden; PCI DSS 3.4.1) unless ``reveal`` is set; the card
object is always :meth:`MaskedCard.to_json`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from posbridge.protocols.errors import ParseError
from posbridge.protocols.magstripe import card_from_tracks, masked_track_text
from posbridge.protocols.types import Card, Swipe, Track


def track_text(track: Track, reveal: bool) -> str:
    """The characters between the sentinels, masked unless ``reveal``."""
    return track.text if reveal else masked_track_text(track)


def track_record(track: Track, reveal: bool) -> dict[str, Any]:
    """``{"format", "text", "direction", "lrc_ok"}`` for one track."""
    return {
        "format": track.format.value,
        "text": track_text(track, reveal),
        "direction": track.direction.value,
        "lrc_ok": track.lrc_ok,
    }


def card_of(tracks: Sequence[Track]) -> Card | None:
    """The card the tracks carry, or ``None`` when no format B PAN can be parsed."""
    try:
        return card_from_tracks(tracks)
    except ParseError:
        return None


def swipe_record(swipe: Swipe, reveal: bool) -> dict[str, Any]:
    """``{"channel", "tracks": [...], "card": {masked} | null}`` for one swipe."""
    card = card_of(swipe.tracks)
    return {
        "channel": swipe.channel,
        "tracks": [track_record(track, reveal) for track in swipe.tracks],
        "card": card.masked.to_json() if card is not None else None,
    }


def decoded_swipe_record(swipe: Swipe, reveal: bool) -> dict[str, Any]:
    """A swipe of a recording: ``{"start_s", "end_s"}`` (seconds into the file) plus :func:`swipe_record`."""
    return {
        "start_s": round(swipe.started_at, 4),
        "end_s": round(swipe.ended_at, 4),
        **swipe_record(swipe, reveal),
    }


def live_swipe_record(swipe: Swipe, reveal: bool) -> dict[str, Any]:
    """A live swipe: ``{"t"}`` (stream seconds at the swipe's start) plus :func:`swipe_record`."""
    return {"t": round(swipe.started_at, 4), **swipe_record(swipe, reveal)}


def tracks_summary(tracks: Sequence[Track], reveal: bool) -> str:
    """``T1 forward "B411111******1111^****^2712101****"`` for each track, joined."""
    return "  ".join(
        f'T{track.number or "?"} {track.direction.value} "{track_text(track, reveal)}"' for track in tracks
    )


def swipe_line(swipe: Swipe, reveal: bool) -> str:
    """One human-readable line for a swipe: time span, channel, masked card and tracks."""
    card = card_of(swipe.tracks)
    who = str(card.masked) if card is not None else "no card data"
    span = f"{swipe.started_at:8.3f}-{swipe.ended_at:.3f} s"
    return f"{span}  ch{swipe.channel}  {who}  {tracks_summary(swipe.tracks, reveal)}"
