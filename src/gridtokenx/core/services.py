"""Typed registry of the per-process services that domains hang off the app context.

A service is registered and found by its class, so `ctx.services.get(IngestPipeline)` is typed
as an `IngestPipeline` and the core never imports the domains above it."""

from __future__ import annotations

from typing import Any, TypeVar

T = TypeVar("T")


class ServiceNotRegistered(LookupError):
    """A route or worker asked for a service its process never wired (a wiring mistake)."""


class Services:
    def __init__(self) -> None:
        self._by_type: dict[type[Any], Any] = {}

    def add(self, service: T, *, as_type: type[T] | None = None) -> T:
        """Register `service` under its class (or `as_type`); the first registration wins, so a
        test can wire its own instance before the app wires the default."""
        key = as_type or type(service)
        return self._by_type.setdefault(key, service)

    def get(self, kind: type[T]) -> T:
        try:
            return self._by_type[kind]
        except KeyError:
            raise ServiceNotRegistered(f"{kind.__name__} is not wired in this process") from None

    def find(self, kind: type[T]) -> T | None:
        return self._by_type.get(kind)
