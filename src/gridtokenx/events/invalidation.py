"""Which cache entries an event makes stale (pure): the cache follows the same after-commit
events the WebSocket clients get, so every write that publishes them invalidates for free."""

from __future__ import annotations

from gridtokenx.core.cache import CacheName
from gridtokenx.events.model import Event

ORDER_BOOK_KEY = "current"
_BOOK_EVENTS = frozenset(
    {"OrderPlaced", "OrderCancelled", "OrderBookChanged", "TradeExecuted", "EpochTransition"}
)


def stale_entries(event: Event) -> list[tuple[CacheName, str]]:
    data = event.data
    entries: list[tuple[CacheName, str]] = []
    if event.type in ("MeterReadingReceived", "MeterReadingVerified") and not data.get("duplicate"):
        if data.get("meter_id") is not None:
            entries.append((CacheName.RECENT_READINGS, str(data["meter_id"])))
        if data.get("user_id") is not None:
            entries.append((CacheName.USER_STATS, str(data["user_id"])))
    elif event.type in ("TokensMinted", "MintAdjusted") and data.get("user_id") is not None:
        entries.append((CacheName.USER_STATS, str(data["user_id"])))
    if event.type in _BOOK_EVENTS:
        entries.append((CacheName.ORDER_BOOK, ORDER_BOOK_KEY))
    return entries
