"""Brute-force twin of `clear`: the benchmark's yardstick and a second opinion in tests.

It tries every limit price as the clearing price and scans the whole book for each one, then fills
price levels best-first, scanning the book again per level: O(n × distinct prices), no sorting tricks.
Only input checks, netting, rounding helpers and result assembly are shared with `clear`, so a bug in
the sweep cannot hide in both.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import numpy as np

from gridtokenx.market.clearing.apportion import ration
from gridtokenx.market.clearing.book import Side
from gridtokenx.market.clearing.engine import solve
from gridtokenx.market.clearing.model import ClearingResult, Order
from gridtokenx.market.clearing.result import Allocation


def clear_reference(
    bids: Sequence[Order],
    offers: Sequence[Order],
    *,
    price_cap: int | None = None,
    price_floor: int | None = None,
    k: Fraction = Fraction(1, 2),
) -> ClearingResult:
    """Same contract and result as `clear`, computed the slow, obvious way."""
    return solve(bids, offers, price_cap, price_floor, k, _allocate)


def _allocate(bids: Side, offers: Side) -> Allocation | None:
    volume = 0
    for price in set(bids.prices) | set(offers.prices):
        demand = sum(wh for wh, limit in zip(bids.quantities, bids.prices, strict=True) if limit >= price)
        supply = sum(wh for wh, limit in zip(offers.quantities, offers.prices, strict=True) if limit <= price)
        volume = max(volume, min(demand, supply))
    if volume == 0:
        return None
    bid_fills, bid_margin = _fill_best_levels(bids, volume, best_first=sorted(set(bids.prices), reverse=True))
    offer_fills, offer_margin = _fill_best_levels(offers, volume, best_first=sorted(set(offers.prices)))
    bid_rows = list(zip(bids.prices, bid_fills, bids.quantities, strict=True))
    offer_rows = list(zip(offers.prices, offer_fills, offers.quantities, strict=True))
    lower = max(
        [limit for limit, fill, _ in offer_rows if fill > 0]
        + [limit for limit, fill, wh in bid_rows if fill < wh]
    )
    upper = min(
        [limit for limit, fill, _ in bid_rows if fill > 0]
        + [limit for limit, fill, wh in offer_rows if fill < wh]
    )
    return Allocation(
        volume=volume,
        bid_fills=np.array(bid_fills, dtype=np.int64),
        offer_fills=np.array(offer_fills, dtype=np.int64),
        lower=lower,
        upper=upper,
        bid_margin=bid_margin,
        offer_margin=offer_margin,
    )


def _fill_best_levels(side: Side, volume: int, best_first: list[int]) -> tuple[list[int], int]:
    """Fill whole levels best-first until `volume`; the level that overflows is rationed pro rata."""
    fills = [0] * len(side.ids)
    left = volume
    for level in best_first:
        rows = [row for row, limit in enumerate(side.prices) if limit == level]
        level_wh = sum(side.quantities[row] for row in rows)
        if level_wh >= left:
            wh = np.array([side.quantities[row] for row in rows], dtype=np.int64)
            shares = ration(wh, left, [side.ids[row] for row in rows]).tolist()
            for row, share in zip(rows, shares, strict=True):
                fills[row] = share
            return fills, level
        for row in rows:
            fills[row] = side.quantities[row]
        left -= level_wh
    raise AssertionError("volume exceeds the side's total quantity")
