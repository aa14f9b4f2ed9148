"""From an allocation to the public result: price, payments, Merkle root and certificate.

Shared by the fast sweep and the brute-force reference, so the two can differ only in the allocation.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from gridtokenx.market.clearing_apportion import apportion
from gridtokenx.market.clearing_book import Side
from gridtokenx.market.clearing_merkle import leaf_hashes, merkle_root
from gridtokenx.market.clearing_model import Certificate, ClearingResult

WH_PER_KWH = 1000


@dataclass(frozen=True, slots=True)
class Allocation:
    """Who trades how much (int64 Wh per row of each market side) and the bounds of rule R."""

    volume: int
    bid_fills: np.ndarray
    offer_fills: np.ndarray
    lower: int
    upper: int
    bid_margin: int  # the lowest bid price level that trades
    offer_margin: int  # the highest offer price level that trades


def money_total(volume_wh: int, price: Fraction) -> int:
    """Base units that change hands: volume·price/1000 rounded to nearest, ties to even."""
    return round(Fraction(volume_wh * price.numerator, price.denominator * WH_PER_KWH))


def assemble(
    bids: Side, offers: Side, allocation: Allocation | None, k: Fraction, cancelled: dict[str, int]
) -> ClearingResult:
    """The result of an allocation on the market sides (after self-trade netting)."""
    if allocation is None:
        certificate = Certificate(None, None, None, k, (), (), cancelled, merkle_root([]))
        return ClearingResult(None, 0, {}, {}, certificate)
    price = allocation.lower + k * (allocation.upper - allocation.lower)
    total = money_total(allocation.volume, price)
    bid_ids, bid_fills, bid_pay = _settle(bids, allocation.bid_fills, price, total)
    offer_ids, offer_fills, offer_pay = _settle(offers, allocation.offer_fills, price, total)
    ids, fills, pays = bid_ids + offer_ids, bid_fills + offer_fills, bid_pay + offer_pay
    sides = ["bid"] * len(bid_ids) + ["offer"] * len(offer_ids)
    by_id = sorted(range(len(ids)), key=ids.__getitem__)
    certificate = Certificate(
        lower=allocation.lower,
        upper=allocation.upper,
        price=price,
        k=k,
        marginal_bids=_ids_at(bids, allocation.bid_margin),
        marginal_offers=_ids_at(offers, allocation.offer_margin),
        self_trade_cancelled=cancelled,
        merkle_root=merkle_root(leaf_hashes((sides[row], ids[row], fills[row], pays[row]) for row in by_id)),
    )
    return ClearingResult(
        price=price,
        volume_wh=allocation.volume,
        fills={ids[row]: fills[row] for row in by_id},
        payments={ids[row]: pays[row] for row in by_id},
        certificate=certificate,
    )


def _settle(
    side: Side, fills: np.ndarray, price: Fraction, total: int
) -> tuple[list[str], list[int], list[int]]:
    """Ids, fills and payments of the side's filled rows; payments apportion `total` by exact value."""
    rows = np.flatnonzero(fills)
    filled = fills[rows]
    ids = [side.ids[row] for row in rows.tolist()]
    payments = apportion(filled, price.numerator, price.denominator * WH_PER_KWH, total, ids)
    return ids, filled.tolist(), payments.tolist()


def _ids_at(side: Side, price: int) -> tuple[str, ...]:
    return tuple(sorted(side.ids[row] for row in np.flatnonzero(side.price == price).tolist()))
