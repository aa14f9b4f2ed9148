"""The typed, versioned event model: what each event carries and who may see it.

Services publish with `Outbox.add("TokensMinted", user_id=..., ...)`: a name and plain JSON data.
Each known name has a msgspec type below that checks the data (the owner ids authorization needs
are required fields), a version, and an audience that the WebSocket hub routes by:
- public events go to the market channels;
- owner events go to the `user` channel of every user named in their owner fields, and meter
  events also to `meters:<meter_id>`.
Data a service adds beyond the declared fields travels along unchanged. Data that does not fit
its type is still published, but to admins only (never leaked), and counted as invalid.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from functools import cached_property
from typing import Any, NamedTuple

import msgspec

from gridtokenx.core.types import utcnow

Id = str | int  # owner and object ids: UUID strings today, integers in some domains


class Audience(StrEnum):
    PUBLIC = "public"  # everyone subscribed to the event's channels
    OWNER = "owner"  # the users named in the owner fields (and admins)


class Payload(msgspec.Struct, kw_only=True):
    """Base of every typed event: the fields it must carry; extra fields are allowed."""


# --- readings -------------------------------------------------------------------------------------


class MeterReadingReceived(Payload):
    meter_id: Id
    user_id: Id | None = None  # the meter's owner; None for a meter nobody has claimed yet
    reading_id: Id | None = None
    meter_serial: str | None = None
    interval_start: str | None = None
    trust: str | None = None
    flags: list[str] = []
    duplicate: bool = False


class MeterReadingVerified(MeterReadingReceived):
    mintable_wh: int = 0


class MeterReadingRejected(Payload):
    user_id: Id | None = None  # who submitted it; None over device-only transports (MQTT)
    meter_id: Id | None = None
    index: int = 0
    code: str | None = None
    message: str | None = None


# --- tokenization ---------------------------------------------------------------------------------


class TokensMinted(Payload):
    user_id: Id
    meter_id: Id | None = None
    amount: int | None = None  # token base units
    signature: str | None = None


class MintFailed(Payload):
    user_id: Id
    meter_id: Id | None = None
    reason: str | None = None


# --- market ---------------------------------------------------------------------------------------


class OrderPlaced(Payload):
    user_id: Id
    order_id: Id | None = None
    side: str | None = None
    quantity: int | None = None
    price: int | None = None


class OrderCancelled(Payload):
    user_id: Id
    order_id: Id | None = None


class OrderBookChanged(Payload):
    epoch_id: Id | None = None


class EpochTransition(Payload):
    epoch_id: Id | None = None
    status: str | None = None


class TradeExecuted(Payload):
    """One order's fill at the epoch's uniform price (a double auction pairs no buyer with a
    seller: every fill trades against the cleared pool)."""

    user_id: Id  # the order's owner
    order_id: Id | None = None
    epoch_id: Id | None = None
    side: str | None = None
    energy_wh: int | None = None
    amount: int | None = None


class SettlementConfirmed(Payload):
    user_id: Id
    order_id: Id | None = None
    epoch_id: Id | None = None
    settlement_id: Id | None = None
    signature: str | None = None


# --- certificates ---------------------------------------------------------------------------------


class CertificateIssued(Payload):
    user_id: Id
    certificate_id: Id | None = None
    energy_wh: int | None = None


class CertificateTransferred(Payload):
    from_user_id: Id
    to_user_id: Id
    certificate_id: Id | None = None


class CertificateRetired(Payload):
    user_id: Id
    certificate_id: Id | None = None


@dataclass(frozen=True)
class Kind:
    """How one event name is checked and routed."""

    type: type[Payload]
    version: int
    audience: Audience
    channels: tuple[str, ...] = ()  # the public channels it goes to
    owner_fields: tuple[str, ...] = ("user_id",)
    private_fields: tuple[str, ...] = ()  # left out of the public copy (a trade's parties)


KINDS: dict[str, Kind] = {
    "MeterReadingReceived": Kind(MeterReadingReceived, 1, Audience.OWNER),
    "MeterReadingVerified": Kind(MeterReadingVerified, 1, Audience.OWNER),
    "MeterReadingRejected": Kind(MeterReadingRejected, 1, Audience.OWNER),
    "TokensMinted": Kind(TokensMinted, 1, Audience.OWNER),
    "MintFailed": Kind(MintFailed, 1, Audience.OWNER),
    "OrderPlaced": Kind(OrderPlaced, 1, Audience.OWNER),
    "OrderCancelled": Kind(OrderCancelled, 1, Audience.OWNER),
    "OrderBookChanged": Kind(OrderBookChanged, 1, Audience.PUBLIC, ("orderbook", "market"), ()),
    "EpochTransition": Kind(EpochTransition, 1, Audience.PUBLIC, ("epochs", "market"), ()),
    "TradeExecuted": Kind(
        TradeExecuted,
        1,
        Audience.PUBLIC,
        ("market",),
        ("user_id",),
        private_fields=("user_id", "order_id"),
    ),
    "SettlementConfirmed": Kind(SettlementConfirmed, 1, Audience.OWNER),
    "CertificateIssued": Kind(CertificateIssued, 1, Audience.OWNER),
    "CertificateTransferred": Kind(
        CertificateTransferred, 1, Audience.OWNER, (), ("from_user_id", "to_user_id")
    ),
    "CertificateRetired": Kind(CertificateRetired, 1, Audience.OWNER),
}

UNKNOWN = Kind(Payload, 0, Audience.OWNER, (), ())
"""A name without a type, or data that failed its type: admins only."""

_ALIASES = {"owner_id": "user_id"}  # the readings pipeline names a meter's owner `owner_id`


_AS_IS = (str, int, bool, type(None))


def _plain(value: Any) -> Any:
    """JSON-able as sent: ids and exact decimals as strings, moments in ISO 8601."""
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def normalise(data: dict[str, Any]) -> dict[str, Any]:
    """Plain JSON values, legacy owner names under the model's name. (Most values are plain
    already: ingest makes two events per reading, so those skip the conversion.)"""
    out = {key: value if type(value) in _AS_IS else _plain(value) for key, value in data.items()}
    for legacy, name in _ALIASES.items():
        if legacy in out and name not in out:
            out[name] = out[legacy]
    return out


class Routing(NamedTuple):
    """Who may receive an event, worked out once when it is made (a tuple: one per event)."""

    audience: Audience
    channels: tuple[str, ...]
    users: frozenset[str]
    meter_id: str | None
    private_fields: tuple[str, ...]
    valid: bool


def route(event_type: str, data: dict[str, Any]) -> Routing:
    kind = KINDS.get(event_type)
    valid = kind is not None
    if kind is not None:
        try:
            msgspec.convert(data, kind.type, strict=False)
        except msgspec.ValidationError:
            valid = False
    if not valid or kind is None:
        kind = UNKNOWN
    users = frozenset(str(data[f]) for f in kind.owner_fields if data.get(f) is not None)
    meter = data.get("meter_id") if valid else None
    return Routing(
        kind.audience, kind.channels, users, None if meter is None else str(meter), kind.private_fields, valid
    )


def version_of(event_type: str) -> int:
    kind = KINDS.get(event_type)
    return kind.version if kind else 0


@dataclass(frozen=True)
class Event:
    """One event: its name, its plain JSON data, when it happened, and its id in the stream (0
    until the bus numbers it; events delivered locally during a Redis outage stay 0)."""

    type: str
    data: dict[str, Any]
    at: str = field(default_factory=lambda: utcnow().isoformat())
    id: int = 0
    v: int = 0

    @classmethod
    def make(cls, event_type: str, data: dict[str, Any], at: str | None = None) -> Event:
        return cls(event_type, normalise(data), at or utcnow().isoformat(), v=version_of(event_type))

    def numbered(self, event_id: int) -> Event:
        copy = Event(self.type, self.data, self.at, event_id, self.v)
        if "routing" in self.__dict__:  # worked out once per event, not once per copy
            copy.__dict__["routing"] = self.__dict__["routing"]
        return copy

    @cached_property
    def routing(self) -> Routing:
        return route(self.type, self.data)

    def wire(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "v": self.v, "at": self.at, "data": self.data}

    @classmethod
    def from_wire(cls, body: dict[str, Any]) -> Event:
        return cls(body["type"], body["data"], body["at"], int(body.get("id", 0)), int(body.get("v", 0)))
