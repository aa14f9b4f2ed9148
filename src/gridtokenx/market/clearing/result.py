"""From an allocation to the public result: price, payments, Merkle root and certificate.

Shared by the fast sweep and the brute-force reference, so the two can differ only in the allocation.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from itertools import chain, repeat

import numpy as np

from gridtokenx.market.clearing.apportion import apportion
from gridtokenx.market.clearing.book import Side
from gridtokenx.market.clearing.merkle import DIGEST, leaf_hashes, merkle_root
from gridtokenx.market.clearing.model import Certificate, ClearingResult

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
        certificate = Certificate(None, None, None, k, (), (), cancelled, merkle_root(b""))
        return ClearingResult(None, 0, {}, {}, certificate)
    price = allocation.lower + k * (allocation.upper - allocation.lower)
    total = money_total(allocation.volume, price)
    bid_ids, bid_fills, bid_pay = _settle(bids, allocation.bid_fills, price, total)
    offer_ids, offer_fills, offer_pay = _settle(offers, allocation.offer_fills, price, total)
    ids = bid_ids + offer_ids
    fills = np.concatenate((bid_fills, offer_fills))
    payments = np.concatenate((bid_pay, offer_pay))
    sides = chain(repeat("bid", len(bid_ids)), repeat("offer", len(offer_ids)))
    # Rows are hashed in book order (memory order), then ids, fills, payments and leaves are permuted.
    leaves = np.frombuffer(leaf_hashes(sides, ids, fills.tolist(), payments.tolist()), dtype=np.uint8)
    by_id = sorted(range(len(ids)), key=ids.__getitem__)
    sorted_ids = [ids[row] for row in by_id]
    permutation = np.array(by_id, dtype=np.intp)
    certificate = Certificate(
        lower=allocation.lower,
        upper=allocation.upper,
        price=price,
        k=k,
        marginal_bids=_ids_at(bids, allocation.bid_margin),
        marginal_offers=_ids_at(offers, allocation.offer_margin),
        self_trade_cancelled=cancelled,
        merkle_root=merkle_root(leaves.reshape(-1, DIGEST)[permutation].tobytes()),
    )
    return ClearingResult(
        price=price,
        volume_wh=allocation.volume,
        fills=dict(zip(sorted_ids, fills[permutation].tolist(), strict=True)),
        payments=dict(zip(sorted_ids, payments[permutation].tolist(), strict=True)),
        certificate=certificate,
    )


def _settle(
    side: Side, fills: np.ndarray, price: Fraction, total: int
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Ids, fills and payments of the side's filled rows; payments apportion `total` by exact value."""
    rows = np.flatnonzero(fills)
    filled = fills[rows]
    ids = [side.ids[row] for row in rows.tolist()]
    return ids, filled, apportion(filled, price.numerator, price.denominator * WH_PER_KWH, total, ids)


def _ids_at(side: Side, price: int) -> tuple[str, ...]:
    return tuple(sorted(side.ids[row] for row in np.flatnonzero(side.price == price).tolist()))
