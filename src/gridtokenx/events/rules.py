"""Who sees which event on which channel: pure rules, tested without sockets."""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum

from gridtokenx.events.model import Audience, Event

PUBLIC_CHANNELS = frozenset({"market", "orderbook", "epochs"})
_METER_CHANNEL = re.compile(r"^meters:([A-Za-z0-9-]{1,64})$")


@dataclass(frozen=True)
class Viewer:
    """An authenticated WebSocket client."""

    user_id: str
    is_admin: bool = False


class Copy(StrEnum):
    FULL = "full"
    PUBLIC = "public"  # without the event's private fields (a trade's parties)


class ChannelError(ValueError):
    """A channel name that does not exist."""


def meter_of(channel: str) -> str | None:
    """The meter id of a `meters:<id>` channel, else None."""
    match = _METER_CHANNEL.match(channel)
    return match.group(1) if match else None


def check_channel(channel: str) -> None:
    if channel in PUBLIC_CHANNELS or channel == "user" or meter_of(channel) is not None:
        return
    raise ChannelError(f"unknown channel {channel!r}")


def visible(viewer: Viewer, channels: Collection[str], event: Event) -> Copy | None:
    """Which copy of `event` a viewer subscribed to `channels` receives, if any.

    Meter channels are authorized when subscribed to (owner or admin), so a subscription is
    enough here; `user` carries the viewer's own events, and every owner's to an admin."""
    routing = event.routing
    mine = "user" in channels and (viewer.is_admin or viewer.user_id in routing.users)
    if not routing.valid:
        return Copy.FULL if viewer.is_admin and "user" in channels else None
    if mine:
        return Copy.FULL
    if routing.meter_id is not None and f"meters:{routing.meter_id}" in channels:
        return Copy.FULL
    if routing.audience is Audience.PUBLIC and any(c in channels for c in routing.channels):
        return Copy.FULL if viewer.is_admin else Copy.PUBLIC
    return None


def public_copy(event: Event) -> dict[str, object]:
    body = event.wire()
    private = event.routing.private_fields
    if private:
        body["data"] = {k: v for k, v in event.data.items() if k not in private}
    return body
