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

from collections.abc import Iterator, Sequence
from fractions import Fraction
from itertools import pairwise

from gridtokenx.market.clearing_apportion import is_apportioned
from gridtokenx.market.clearing_book import Side, read_book
from gridtokenx.market.clearing_merkle import leaf_hashes, merkle_root
from gridtokenx.market.clearing_model import Certificate, ClearingResult, Order
from gridtokenx.market.clearing_result import WH_PER_KWH, money_total
from gridtokenx.market.clearing_selftrade import cancellations_are_valid, market_side


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
    if not _keys_known(result.fills, bid_book, offer_book):
        return False
    bids_in, offers_in = market_side(bid_book, cancelled), market_side(offer_book, cancelled)
    bid_fills = [result.fills.get(order_id, 0) for order_id in bids_in.ids]
    offer_fills = [result.fills.get(order_id, 0) for order_id in offers_in.ids]
    volume = result.volume_wh
    if (
        sum(bid_fills) != volume
        or sum(offer_fills) != volume
        or sum(result.fills.values()) != 2 * volume  # no fill on an order netted away
        or any(fill > quantity for fill, quantity in zip(bid_fills, bids_in.quantities, strict=True))
        or any(fill > quantity for fill, quantity in zip(offer_fills, offers_in.quantities, strict=True))
    ):
        return False
    best_unfilled_bid = max(_limits(bids_in, bid_fills, unfilled=True), default=None)
    best_unfilled_offer = min(_limits(offers_in, offer_fills, unfilled=True), default=None)
    leftover_crosses = (
        best_unfilled_bid is not None
        and best_unfilled_offer is not None
        and best_unfilled_bid >= best_unfilled_offer
    )
    if leftover_crosses:
        return False  # volume is not maximal
    if volume == 0:
        empty = Certificate(None, None, None, certificate.k, (), (), cancelled, merkle_root(b""))
        return result.price is None and not result.payments and certificate == empty
    return _priced(result, bids_in, bid_fills, offers_in, offer_fills, best_unfilled_bid, best_unfilled_offer)


def _priced(
    result: ClearingResult,
    bids: Side,
    bid_fills: list[int],
    offers: Side,
    offer_fills: list[int],
    best_unfilled_bid: int | None,
    best_unfilled_offer: int | None,
) -> bool:
    """Bounds, price, rationing, marginal ids, payments and root of a result where something trades."""
    certificate = result.certificate
    lowest_bid = min(_limits(bids, bid_fills, unfilled=False))  # volume > 0: both sides trade
    highest_offer = max(_limits(offers, offer_fills, unfilled=False))
    lower = highest_offer if best_unfilled_bid is None else max(highest_offer, best_unfilled_bid)
    upper = lowest_bid if best_unfilled_offer is None else min(lowest_bid, best_unfilled_offer)
    price = lower + certificate.k * (upper - lower)
    if not (lower <= upper and (certificate.lower, certificate.upper) == (lower, upper)):
        return False
    if result.price != price or certificate.price != price:
        return False
    if lower == upper and not (
        _level_rationed(bids, bid_fills, lower) and _level_rationed(offers, offer_fills, lower)
    ):
        return False
    if not (
        _ids_exactly(certificate.marginal_bids, bids, lowest_bid)
        and _ids_exactly(certificate.marginal_offers, offers, highest_offer)
    ):
        return False
    return _payments_and_root(result, price, bids, bid_fills, offers, offer_fills)


def _payments_and_root(
    result: ClearingResult,
    price: Fraction,
    bids: Side,
    bid_fills: list[int],
    offers: Side,
    offer_fills: list[int],
) -> bool:
    payments = result.payments
    total = money_total(result.volume_wh, price)
    side_of: dict[str, str] = {}
    for name, side, fills in (("bid", bids, bid_fills), ("offer", offers, offer_fills)):
        rows = [row for row, fill in enumerate(fills) if fill]
        ids = [side.ids[row] for row in rows]
        if not all(order_id in payments for order_id in ids):
            return False
        amounts = [payments[order_id] for order_id in ids]
        weights = [fills[row] for row in rows]
        if not is_apportioned(amounts, weights, price.numerator, price.denominator * WH_PER_KWH, total, ids):
            return False
        side_of.update(dict.fromkeys(ids, name))
    if len(payments) != len(side_of):
        return False
    by_id = [order_id for order_id, fill in result.fills.items() if fill]
    by_id.sort()  # linear when the fills come in id order, as `clear` emits them
    leaves = leaf_hashes(
        [side_of[i] for i in by_id], by_id, [result.fills[i] for i in by_id], [payments[i] for i in by_id]
    )
    return result.certificate.merkle_root == merkle_root(leaves)


def _well_formed(result: object) -> bool:
    """Types and signs of every field, so the checks after it compare like with like."""
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
        and all(fill >= 0 for fill in result.fills.values())
        and _is_str_int_map(result.payments)
        and isinstance(certificate.self_trade_cancelled, dict)
        and type(certificate.merkle_root) is str
        and all(isinstance(ids, tuple) for ids in (certificate.marginal_bids, certificate.marginal_offers))
    )


def _is_str_int_map(values: object) -> bool:
    return (
        isinstance(values, dict)
        and all(type(key) is str for key in values)
        and all(type(value) is int for value in values.values())
    )


def _keys_known(fills: dict[str, int], bids: Side, offers: Side) -> bool:
    """Every fill key is an order of the book (zero fills may be listed or omitted)."""
    listed = sum(order_id in fills for order_id in bids.ids) + sum(
        order_id in fills for order_id in offers.ids
    )
    return listed == len(fills)


def _limits(side: Side, fills: list[int], *, unfilled: bool) -> Iterator[int]:
    """Limits of the side's orders that are not fully filled (unfilled) or that trade (not unfilled)."""
    for price, fill, quantity in zip(side.prices, fills, side.quantities, strict=True):
        if fill < quantity if unfilled else fill > 0:
            yield price


def _level_rationed(side: Side, fills: list[int], price: int) -> bool:
    """Rule 4 on the level at `price`: a partly filled level is shared pro rata, largest remainder."""
    rows = [row for row, limit in enumerate(side.prices) if limit == price]
    quantities = [side.quantities[row] for row in rows]
    values = [fills[row] for row in rows]
    level, traded = sum(quantities), sum(values)
    if traded in (0, level):
        return True
    return is_apportioned(values, quantities, traded, level, traded, [side.ids[row] for row in rows])


def _ids_exactly(claimed: tuple[str, ...], side: Side, price: int) -> bool:
    """`claimed` lists, in strictly ascending order, exactly the side's ids at `price`."""
    ids = {order_id for order_id, limit in zip(side.ids, side.prices, strict=True) if limit == price}
    ascending = all(a < b for a, b in pairwise(claimed))
    return ascending and len(claimed) == len(ids) and all(order_id in ids for order_id in claimed)
