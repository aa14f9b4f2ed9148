"""The event bus: in-process by default. Services collect events while they work and publish them
only after their transaction commits, so subscribers never see data that was rolled back."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from gridtokenx.core.types import utcnow

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Event:
    type: str
    data: dict[str, Any]
    at: str = field(default_factory=lambda: utcnow().isoformat())


Handler = Callable[[Event], Awaitable[None]]


class EventBus:
    """Fan-out to async handlers by event type ("*" receives everything); a failing handler is logged,
    never allowed to break the publisher."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = defaultdict(list)

    def subscribe(self, event_type: str, handler: Handler) -> Callable[[], None]:
        self._handlers[event_type].append(handler)
        return lambda: self._handlers[event_type].remove(handler)

    def has_subscribers(self) -> bool:
        return any(self._handlers.values())

    async def publish(self, event: Event) -> None:
        for handler in [*self._handlers.get(event.type, ()), *self._handlers.get("*", ())]:
            try:
                await handler(event)
            except Exception:
                log.exception("event_handler_failed", event_type=event.type)

    async def publish_all(self, events: list[Event]) -> None:
        for event in events:
            await self.publish(event)


class Outbox:
    """Events gathered during one unit of work, flushed to the bus after the commit."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def add(self, event_type: str, **data: Any) -> None:
        self.events.append(Event(event_type, data))

    async def flush(self, bus: EventBus) -> None:
        events, self.events = self.events, []
        await bus.publish_all(events)
