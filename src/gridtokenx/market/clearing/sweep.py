"""The O(n log n) allocation: sort each side into price levels, sweep the curves, ration the margins.

Demand D(p) (bid Wh with limit ≥ p) falls and supply S(p) (offer Wh with limit ≤ p) rises in p, and
min(D, S) changes only at limit prices, so the welfare-maximal, then volume-maximal, volume is
V = max over limit prices p of min(D(p), S(p)): the units traded are the V best bid units and the V
best offer units, ties inside a price level shared pro rata (rule 4). All arithmetic is int64; no float.
"""

from __future__ import annotations

import numpy as np

from gridtokenx.market.clearing.apportion import ration
from gridtokenx.market.clearing.book import Side
from gridtokenx.market.clearing.result import Allocation


def sweep(bids: Side, offers: Side) -> Allocation | None:
    """The allocation of rule R on the market sides, or None when nothing crosses."""
    if not bids.ids or not offers.ids:
        return None
    bid_levels, bid_level_wh = _levels(bids)
    offer_levels, offer_level_wh = _levels(offers)
    demand = np.cumsum(bid_level_wh[::-1])[::-1]  # D at each bid level, ascending prices
    supply = np.cumsum(offer_level_wh)  # S at each offer level, ascending prices
    supply_at_bids = _supply_up_to(offer_levels, supply, bid_levels)
    demand_at_offers = _demand_from(bid_levels, demand, offer_levels)
    volume = max(
        int(np.minimum(demand, supply_at_bids).max()), int(np.minimum(supply, demand_at_offers).max())
    )
    if volume == 0:
        return None

    bid_at = int(np.count_nonzero(demand >= volume)) - 1  # lowest bid level still needed
    bid_traded = volume - (int(demand[bid_at + 1]) if bid_at + 1 < len(demand) else 0)
    bid_partial = bid_traded < int(bid_level_wh[bid_at])
    offer_at = int(np.searchsorted(supply, volume))  # highest offer level still needed
    offer_traded = volume - (int(supply[offer_at - 1]) if offer_at else 0)
    offer_partial = offer_traded < int(offer_level_wh[offer_at])
    bid_margin, offer_margin = int(bid_levels[bid_at]), int(offer_levels[offer_at])

    # L: traded offers and unfilled bids; U: traded bids and unfilled offers (rule R, step 2).
    lower = offer_margin
    if bid_partial:
        lower = max(lower, bid_margin)
    elif bid_at:
        lower = max(lower, int(bid_levels[bid_at - 1]))
    upper = bid_margin
    if offer_partial:
        upper = min(upper, offer_margin)
    elif offer_at + 1 < len(offer_levels):
        upper = min(upper, int(offer_levels[offer_at + 1]))

    return Allocation(
        volume=volume,
        bid_fills=_fills(bids, bids.price > bid_margin, bid_margin, bid_traded),
        offer_fills=_fills(offers, offers.price < offer_margin, offer_margin, offer_traded),
        lower=lower,
        upper=upper,
        bid_margin=bid_margin,
        offer_margin=offer_margin,
    )


def _levels(side: Side) -> tuple[np.ndarray, np.ndarray]:
    """Distinct limit prices ascending, and the total Wh at each."""
    order = np.argsort(side.price, kind="stable")
    prices = side.price[order]
    starts = np.flatnonzero(np.concatenate(([True], prices[1:] != prices[:-1])))
    return prices[starts], np.add.reduceat(side.quantity[order], starts)


def _supply_up_to(offer_levels: np.ndarray, supply: np.ndarray, prices: np.ndarray) -> np.ndarray:
    """S(p) for each p: offer Wh with limit ≤ p."""
    count = np.searchsorted(offer_levels, prices, side="right")
    return np.where(count > 0, supply[count - 1], 0)


def _demand_from(bid_levels: np.ndarray, demand: np.ndarray, prices: np.ndarray) -> np.ndarray:
    """D(p) for each p: bid Wh with limit ≥ p."""
    first = np.searchsorted(bid_levels, prices, side="left")
    return np.where(first < len(bid_levels), demand[np.minimum(first, len(bid_levels) - 1)], 0)


def _fills(side: Side, better: np.ndarray, margin: int, traded: int) -> np.ndarray:
    """Full fills beyond the margin, the margin level rationed, nothing behind it."""
    fills = np.where(better, side.quantity, 0)
    at_margin = np.flatnonzero(side.price == margin)
    fills[at_margin] = ration(side.quantity[at_margin], traded, [side.ids[row] for row in at_margin.tolist()])
    return fills
