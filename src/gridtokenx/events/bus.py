"""The event bus: in-process by default. Services collect events while they work and publish them
only after their transaction commits, so subscribers never see data that was rolled back.

The bus numbers every event (a monotonically increasing id per stream) and keeps the last ones in
a bounded replay buffer, so a WebSocket client that reconnects can ask for what it missed. The
Redis backend (`events/redis_bus.py`) shares numbering, delivery and the buffer between processes.
"""

from __future__ import annotations

from collections import Counter, defaultdict, deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import structlog

from gridtokenx.core.metrics import (
    EVENTS_INVALID,
    EVENTS_PUBLISHED,
    MINT_FAILURES,
    SETTLEMENTS_CONFIRMED,
    TOKENS_MINTED,
    TRADES_EXECUTED,
)
from gridtokenx.core.types import utcnow
from gridtokenx.events.model import Event

__all__ = ["Event", "EventBus", "Handler", "Outbox", "Replay"]

log = structlog.get_logger(__name__)

Handler = Callable[[Event], Awaitable[None]]

_DOMAIN_COUNTERS = {
    "TokensMinted": TOKENS_MINTED,
    "MintFailed": MINT_FAILURES,
    "TradeExecuted": TRADES_EXECUTED,
    "SettlementConfirmed": SETTLEMENTS_CONFIRMED,
}


def count_published(events: Iterable[Event]) -> None:
    """Counted by the publishing process only, so a cluster-wide sum counts each event once
    (per type and batch: a batch of readings publishes two thousand events)."""
    published: Counter[str] = Counter()
    for event in events:
        published[event.type] += 1
        if not event.routing.valid:
            EVENTS_INVALID.labels(event.type).inc()
            log.warning("event_data_invalid", event_type=event.type)
    for event_type, count in published.items():
        EVENTS_PUBLISHED.labels(event_type).inc(count)
        counter = _DOMAIN_COUNTERS.get(event_type)
        if counter is not None:
            counter.inc(count)


class Replay:
    """A bounded buffer of the latest numbered events."""

    def __init__(self, size: int) -> None:
        self._events: deque[Event] = deque(maxlen=size)

    def add(self, event: Event) -> None:
        if event.id:
            self._events.append(event)

    def since(self, after: int) -> list[Event] | None:
        """Events with an id above `after`, or None when some of them already left the buffer."""
        if not self._events or after >= self._events[-1].id:
            return []
        if after < self._events[0].id - 1:
            return None
        return [event for event in self._events if event.id > after]


class EventBus:
    """Fan-out to async handlers by event type ("*" receives everything); a failing handler is logged,
    never allowed to break the publisher."""

    def __init__(self, replay_size: int = 10_000) -> None:
        self._handlers: dict[str, list[Handler]] = defaultdict(list)
        self._next_id = 1
        self.replay_buffer = Replay(replay_size)

    def subscribe(self, event_type: str, handler: Handler) -> Callable[[], None]:
        self._handlers[event_type].append(handler)
        return lambda: self._handlers[event_type].remove(handler)

    def has_subscribers(self) -> bool:
        return any(self._handlers.values())

    async def publish(self, event: Event) -> None:
        await self.publish_all([event])

    async def publish_all(self, events: list[Event]) -> None:
        count_published(events)
        for event in events:
            numbered = event.numbered(self._next_id)
            self._next_id += 1
            self.replay_buffer.add(numbered)
            await self.deliver(numbered)

    async def deliver(self, event: Event) -> None:
        """Hand one event to this process's handlers."""
        for handler in [*self._handlers.get(event.type, ()), *self._handlers.get("*", ())]:
            try:
                await handler(event)
            except Exception:
                log.exception("event_handler_failed", event_type=event.type)

    async def replay(self, after: int) -> list[Event] | None:
        """What a client that saw `after` missed, or None when the buffer no longer reaches back."""
        return self.replay_buffer.since(after)

    async def start(self) -> None:
        """Nothing to run in-process; the Redis backend listens here."""

    async def stop(self) -> None:
        """Nothing to stop in-process."""


class Outbox:
    """Events gathered during one unit of work, flushed to the bus after the commit."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.at = utcnow().isoformat()  # one unit of work, one moment

    def add(self, event_type: str, **data: Any) -> None:
        self.events.append(Event.make(event_type, data, self.at))

    async def flush(self, bus: EventBus) -> None:
        events, self.events = self.events, []
        if events:
            await bus.publish_all(events)
