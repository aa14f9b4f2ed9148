"""Self-trade prevention by "decrement both" netting, applied before the market clears.

For each owner (a non-null `owner`) with orders on both sides, that owner's own crossing orders are
matched against each other first and the matched quantity is withdrawn from both, no trade and no money:
the owner's bids in priority (limit high→low, then id), its offers in priority (limit low→high, then id),
paired unit by unit while the bid limit ≥ the offer limit. What remains of the owner's bids is then
priced strictly below what remains of its offers, so at one uniform price p the owner can no longer buy
(needs bid ≥ p) and sell (needs offer ≤ p) at the same time: a self-trade is impossible, not just unpaired.
Other owners' orders are untouched, and the outcome does not depend on input order.
"""

from __future__ import annotations

import numpy as np

from gridtokenx.market.clearing.book import Side


def self_trade_cancellations(bids: Side, offers: Side) -> dict[str, int]:
    """Wh withdrawn per order id (non-zero only) by netting each owner's own crossing orders."""
    owners = _owners_on_both_sides(bids, offers)
    if not owners:
        return {}
    bid_rows = _rows_by_owner(bids, owners)
    offer_rows = _rows_by_owner(offers, owners)
    cancelled: dict[str, int] = {}
    for owner in sorted(owners):
        own_bids = sorted(bid_rows[owner], key=lambda row: (-bids.prices[row], bids.ids[row]))
        own_offers = sorted(offer_rows[owner], key=lambda row: (offers.prices[row], offers.ids[row]))
        _net(bids, own_bids, offers, own_offers, cancelled)
    return dict(sorted(cancelled.items()))


def market_side(side: Side, cancelled: dict[str, int]) -> Side:
    """The side as it enters the market: quantities less netting, fully netted orders dropped."""
    if not cancelled or not any(order_id in cancelled for order_id in side.ids):
        return side
    quantities = [
        quantity - cancelled.get(order_id, 0)
        for order_id, quantity in zip(side.ids, side.quantities, strict=True)
    ]
    keep = [row for row, quantity in enumerate(quantities) if quantity]
    kept_quantities = [quantities[row] for row in keep]
    kept_prices = [side.prices[row] for row in keep]
    return Side(
        ids=[side.ids[row] for row in keep],
        owners=[side.owners[row] for row in keep],
        quantities=kept_quantities,
        prices=kept_prices,
        quantity=np.array(kept_quantities, dtype=np.int64),
        price=np.array(kept_prices, dtype=np.int64),
    )


def cancellations_are_valid(bids: Side, offers: Side, cancelled: dict[str, int]) -> bool:
    """Whether `cancelled` is exactly the netting above, checked in O(n) from its optimality conditions.

    Per owner: both sides withdraw the same Wh; withdrawn rows come first in priority order (at most one
    row partly withdrawn); the last withdrawn units still cross; what remains no longer crosses.
    """
    if any(type(wh) is not int or wh <= 0 for wh in cancelled.values()):
        return False
    owners = _owners_on_both_sides(bids, offers)
    if not owners:
        return not cancelled
    found = 0
    stats = {owner: (_OwnerSide(), _OwnerSide()) for owner in owners}
    for slot, (side, sign) in enumerate(((bids, -1), (offers, 1))):
        for order_id, owner, quantity, price in zip(
            side.ids, side.owners, side.quantities, side.prices, strict=True
        ):
            if owner in stats:
                wh = cancelled.get(order_id, 0)
                if wh > quantity:
                    return False
                found += wh > 0
                stats[owner][slot].add((sign * price, order_id), wh, quantity - wh)
    if found != len(cancelled):
        return False  # a cancellation on an order whose owner is not on both sides, or on no order
    return all(_owner_is_netted(own_bids, own_offers) for own_bids, own_offers in stats.values())


def _owners_on_both_sides(bids: Side, offers: Side) -> set[str]:
    owners = {owner for owner in bids.owners if owner is not None}
    owners.intersection_update(owner for owner in offers.owners if owner is not None)
    return owners


class _OwnerSide:
    """One owner's orders on one side, reduced to the two rows that decide the netting.

    Keys are (±price, id) so that a smaller key has better priority on either side; the price of each
    extreme row is recovered from its key (bids store -price).
    """

    __slots__ = ("first_left", "last_cut", "withdrawn")

    def __init__(self) -> None:
        self.last_cut: tuple[int, str] | None = None  # worst-priority row with something withdrawn
        self.first_left: tuple[int, str] | None = None  # best-priority row with something left
        self.withdrawn = 0

    def add(self, key: tuple[int, str], withdrawn: int, left: int) -> None:
        if withdrawn:
            self.withdrawn += withdrawn
            if self.last_cut is None or key > self.last_cut:
                self.last_cut = key
        if left and (self.first_left is None or key < self.first_left):
            self.first_left = key


def _owner_is_netted(own_bids: _OwnerSide, own_offers: _OwnerSide) -> bool:
    if own_bids.withdrawn != own_offers.withdrawn:
        return False
    for own in (own_bids, own_offers):
        if own.last_cut is not None and own.first_left is not None and own.last_cut > own.first_left:
            return False
    if own_bids.last_cut is not None and own_offers.last_cut is not None:
        lowest_cut_bid, highest_cut_offer = -own_bids.last_cut[0], own_offers.last_cut[0]
        if lowest_cut_bid < highest_cut_offer:
            return False
    if own_bids.first_left is None or own_offers.first_left is None:
        return True
    highest_left_bid, lowest_left_offer = -own_bids.first_left[0], own_offers.first_left[0]
    return highest_left_bid < lowest_left_offer


def _rows_by_owner(side: Side, owners: set[str]) -> dict[str, list[int]]:
    rows: dict[str, list[int]] = {owner: [] for owner in owners}
    for row, owner in enumerate(side.owners):
        if owner in rows:
            rows[owner].append(row)
    return rows


def _net(
    bids: Side, own_bids: list[int], offers: Side, own_offers: list[int], cancelled: dict[str, int]
) -> None:
    """Pair the owner's best bid with its best offer while they cross, withdrawing the smaller remainder."""
    left_bid = {row: bids.quantities[row] for row in own_bids}
    left_offer = {row: offers.quantities[row] for row in own_offers}
    b = o = 0
    while b < len(own_bids) and o < len(own_offers):
        bid_row, offer_row = own_bids[b], own_offers[o]
        if bids.prices[bid_row] < offers.prices[offer_row]:
            return
        matched = min(left_bid[bid_row], left_offer[offer_row])
        for side, row, left in ((bids, bid_row, left_bid), (offers, offer_row, left_offer)):
            left[row] -= matched
            order_id = side.ids[row]
            cancelled[order_id] = cancelled.get(order_id, 0) + matched
        b += left_bid[bid_row] == 0
        o += left_offer[offer_row] == 0
