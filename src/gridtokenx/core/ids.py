"""Time-ordered UUIDs (RFC 9562 version 7) as text, cheap enough to make one per stored reading.

A v7 id starts with the Unix time in milliseconds, so rows inserted together land next to each
other in an index on the id instead of on random pages, and sorting ids roughly sorts by creation.
The random bits come from `os.urandom` in blocks: one system call per 4,096 ids, not one each.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

_BLOCK = 4096
_HEX_PER_ID = 20  # 74 random bits are needed; 80 are drawn
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}  # RFC 9562 variant 10xx
_random_parts: Iterator[str] = iter(())


def _refill() -> Iterator[str]:
    pool = os.urandom(_BLOCK * _HEX_PER_ID // 2).hex()
    return iter([pool[i : i + _HEX_PER_ID] for i in range(0, len(pool), _HEX_PER_ID)])


def uuid7() -> str:
    """A new version-7 UUID in canonical 8-4-4-4-12 lowercase form."""
    global _random_parts
    part = next(_random_parts, None)  # next() on a list iterator is atomic under the GIL
    if part is None:
        _random_parts = _refill()
        part = next(_random_parts)
    stamp = f"{time.time_ns() // 1_000_000:012x}"
    return f"{stamp[:8]}-{stamp[8:]}-7{part[:3]}-{_VARIANT[part[3]]}{part[4:7]}-{part[7:19]}"
