"""The per-device sequence-number replay window (the IPsec/DTLS anti-replay pattern).

A device numbers every signed message with a growing `seq`. The gateway keeps the highest seq seen
and a bitmap of which of the `size` numbers below it were seen, so messages may arrive out of order
(MQTT redelivery, batch retries) yet each number is accepted once. A seq that falls below the window
is refused: it cannot be told apart from a replay. State is two values, easy to store in a row:
`highest` and `bitmap_bytes()`.
"""

from __future__ import annotations

from enum import StrEnum

import msgspec

DEFAULT_WINDOW = 1024


class SeqVerdict(StrEnum):
    FRESH = "fresh"
    REPLAYED = "replayed"
    TOO_OLD = "too_old"


class ReplayWindow(msgspec.Struct, frozen=True):
    """`highest` seen seq; bit i of `seen` set means seq `highest - i` was seen (bit 0 is `highest`).
    (A Struct: accepting a reading makes a new window.)"""

    highest: int
    seen: int = 1
    size: int = DEFAULT_WINDOW

    @classmethod
    def first(cls, seq: int, size: int = DEFAULT_WINDOW) -> ReplayWindow:
        return cls(highest=seq, seen=1, size=size)

    @classmethod
    def from_bitmap(cls, highest: int, bitmap: bytes, size: int = DEFAULT_WINDOW) -> ReplayWindow:
        return cls(highest=highest, seen=int.from_bytes(bitmap, "little") & ((1 << size) - 1), size=size)

    def bitmap_bytes(self) -> bytes:
        return self.seen.to_bytes(self.size // 8 + (self.size % 8 > 0), "little")

    def check(self, seq: int) -> SeqVerdict:
        if seq > self.highest:
            return SeqVerdict.FRESH
        offset = self.highest - seq
        if offset >= self.size:
            return SeqVerdict.TOO_OLD
        return SeqVerdict.REPLAYED if self.seen >> offset & 1 else SeqVerdict.FRESH

    def record(self, seq: int) -> ReplayWindow:
        """The window after accepting `seq` (call only when `check(seq)` is FRESH)."""
        mask = (1 << self.size) - 1
        if seq > self.highest:
            return ReplayWindow(seq, ((self.seen << (seq - self.highest)) | 1) & mask, self.size)
        return ReplayWindow(self.highest, self.seen | 1 << (self.highest - seq), self.size)
