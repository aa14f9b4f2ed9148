"""Re-checking a clearing result against its book in O(n), without re-solving the auction.

Rule R has exactly one outcome per book, and each of its steps has a local test:
- netting: `cancellations_are_valid` (per-owner optimality conditions);
- allocation: with L and U recomputed from the fills, L ≤ U proves welfare is maximal (bids priced above
  the price are full, offers priced below it are full, nothing priced on the wrong side trades), and an
  uncrossed residual book (best unfilled bid < best unfilled offer) proves volume is maximal;
- rationing: only a level priced at L = U can be partly filled, and `is_apportioned` checks that level;
- price, payments and the Merkle root are recomputed from the fills and compared.
The one sort, of fill ids for the Merkle root, is linear here because `clear` emits fills in id order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fractions import Fraction
from itertools import pairwise
from typing import cast

import numpy as np

from gridtokenx.market.clearing.apportion import is_apportioned
from gridtokenx.market.clearing.book import INT64_BOUND, Side, read_book
from gridtokenx.market.clearing.merkle import leaf_hashes, merkle_root
from gridtokenx.market.clearing.model import Certificate, ClearingResult, Order
from gridtokenx.market.clearing.result import WH_PER_KWH, money_total
from gridtokenx.market.clearing.selftrade import cancellations_are_valid, market_side


def verify(
    bids: Sequence[Order], offers: Sequence[Order], result: ClearingResult, *, k: Fraction | None = None
) -> bool:
    """Whether `result` is exactly what `clear` returns for this book.

    The certificate states the k it was cleared with; pass `k` to require that value too (a market's k
    is fixed; without it, a forger could re-price a result under another k). A malformed book raises
    `ValueError` as in `clear`; a malformed or tampered result returns False.
    """
    bid_book, offer_book = read_book(bids, offers, None, None)
    if not _well_formed(result) or (k is not None and result.certificate.k != k):
        return False
    certificate = result.certificate
    cancelled = certificate.self_trade_cancelled
    if not cancellations_are_valid(bid_book, offer_book, cancelled):
        return False
    bids_in, offers_in = market_side(bid_book, cancelled), market_side(offer_book, cancelled)
    fills = result.fills
    bid_fills = np.array([fills.get(order_id, 0) for order_id in bids_in.ids], dtype=np.int64)
    offer_fills = np.array([fills.get(order_id, 0) for order_id in offers_in.ids], dtype=np.int64)
    if (bid_fills > bids_in.quantity).any() or (offer_fills > offers_in.quantity).any():
        return False  # (which also keeps the sums below inside int64)
    volume = result.volume_wh
    if not int(bid_fills.sum()) == int(offer_fills.sum()) == volume or sum(fills.values()) != 2 * volume:
        return False  # the second test: no fill on an order netted away or outside the book
    if not _keys_known(
        fills, int(np.count_nonzero(bid_fills) + np.count_nonzero(offer_fills)), bid_book, offer_book
    ):
        return False
    best_unfilled_bid = _extreme(np.max, bids_in.price[bid_fills < bids_in.quantity])
    best_unfilled_offer = _extreme(np.min, offers_in.price[offer_fills < offers_in.quantity])
    if (
        best_unfilled_bid is not None
        and best_unfilled_offer is not None
        and best_unfilled_bid >= best_unfilled_offer
    ):
        return False  # a crossing pair is left over: volume is not maximal
    if volume == 0:
        empty = Certificate(None, None, None, certificate.k, (), (), cancelled, merkle_root(b""))
        return result.price is None and not result.payments and certificate == empty
    lowest_bid = int(bids_in.price[bid_fills > 0].min())  # volume > 0: both sides trade
    highest_offer = int(offers_in.price[offer_fills > 0].max())
    lower = highest_offer if best_unfilled_bid is None else max(highest_offer, best_unfilled_bid)
    upper = lowest_bid if best_unfilled_offer is None else min(lowest_bid, best_unfilled_offer)
    price = lower + certificate.k * (upper - lower)
    return (
        lower <= upper
        and (certificate.lower, certificate.upper) == (lower, upper)
        and result.price == price == certificate.price
        and (lower < upper or _level_rationed(bids_in, bid_fills, lower))
        and (lower < upper or _level_rationed(offers_in, offer_fills, lower))
        and _ids_exactly(certificate.marginal_bids, bids_in, lowest_bid)
        and _ids_exactly(certificate.marginal_offers, offers_in, highest_offer)
        and _payments_and_root(result, price, (bids_in, bid_fills), (offers_in, offer_fills))
    )


def _payments_and_root(
    result: ClearingResult,
    price: Fraction,
    bid_rows: tuple[Side, np.ndarray],
    offer_rows: tuple[Side, np.ndarray],
) -> bool:
    """Payments apportion the money on each side, cover exactly the filled orders, and match the root."""
    payments = result.payments
    total = money_total(result.volume_wh, price)
    side_of: dict[str, str] = {}
    for name, (side, fills) in (("bid", bid_rows), ("offer", offer_rows)):
        rows = np.flatnonzero(fills)
        ids = [side.ids[row] for row in rows.tolist()]
        found = [payments.get(order_id) for order_id in ids]
        if None in found:
            return False
        amounts = cast(list[int], found)
        scale, denominator = price.numerator, price.denominator * WH_PER_KWH
        if not is_apportioned(amounts, fills[rows], scale, denominator, total, ids):
            return False
        side_of.update(dict.fromkeys(ids, name))
    if len(payments) != len(side_of):
        return False
    by_id = [order_id for order_id, fill in result.fills.items() if fill]
    by_id.sort()  # linear when the fills come in id order, as `clear` emits them
    fills_by_id = [result.fills[order_id] for order_id in by_id]
    amounts_by_id = [payments[order_id] for order_id in by_id]
    leaves = leaf_hashes([side_of[order_id] for order_id in by_id], by_id, fills_by_id, amounts_by_id)
    return result.certificate.merkle_root == merkle_root(leaves)


def _well_formed(result: object) -> bool:
    """Types and ranges of every field, so the checks after it compare like with like."""
    if not isinstance(result, ClearingResult) or not isinstance(result.certificate, Certificate):
        return False
    certificate = result.certificate
    k = certificate.k
    return (
        type(result.volume_wh) is int
        and all(price is None or type(price) is Fraction for price in (result.price, certificate.price))
        and all(bound is None or type(bound) is int for bound in (certificate.lower, certificate.upper))
        and type(k) is Fraction
        and 0 <= k <= 1
        and _is_str_int_map(result.fills)
        and all(0 <= fill < INT64_BOUND for fill in result.fills.values())
        and _is_str_int_map(result.payments)
        and isinstance(certificate.self_trade_cancelled, dict)
        and type(certificate.merkle_root) is str
        and all(isinstance(ids, tuple) for ids in (certificate.marginal_bids, certificate.marginal_offers))
    )


def _is_str_int_map(values: object) -> bool:
    return (
        isinstance(values, dict)
        and set(map(type, values)) <= {str}
        and set(map(type, values.values())) <= {int}
    )


def _keys_known(fills: dict[str, int], positive: int, bids: Side, offers: Side) -> bool:
    """Every fill key is an order of the book; listed zero fills are allowed but must be of real orders.

    The positive fills were all found under market ids (their sum matched), so only when `fills` holds
    more keys than that do the zero entries need looking up.
    """
    if len(fills) == positive:
        return True
    listed = sum(order_id in fills for order_id in bids.ids) + sum(
        order_id in fills for order_id in offers.ids
    )
    return listed == len(fills)


def _extreme(pick: Callable[[np.ndarray], np.integer], prices: np.ndarray) -> int | None:
    return int(pick(prices)) if prices.size else None


def _level_rationed(side: Side, fills: np.ndarray, price: int) -> bool:
    """Rule 4 on the level at `price`: a partly filled level is shared pro rata, largest remainder."""
    rows = np.flatnonzero(side.price == price)
    quantities, values = side.quantity[rows], fills[rows]
    level, traded = int(quantities.sum()), int(values.sum())
    if traded in (0, level):
        return True
    ids = [side.ids[row] for row in rows.tolist()]
    return is_apportioned(values.tolist(), quantities, traded, level, traded, ids)


def _ids_exactly(claimed: tuple[str, ...], side: Side, price: int) -> bool:
    """`claimed` lists, in strictly ascending order, exactly the side's ids at `price`."""
    ids = {side.ids[row] for row in np.flatnonzero(side.price == price).tolist()}
    ascending = all(a < b for a, b in pairwise(claimed))
    return ascending and len(claimed) == len(ids) and all(order_id in ids for order_id in claimed)
