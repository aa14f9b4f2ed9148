"""Uniform-price double auction: exact, deterministic, O(n log n), and checkable by anyone.

Units. Quantities are whole Wh. A price is a whole number of ticks per kWh, the tick being the payment
currency's base unit; so an amount is fill_wh × price / 1000 base units. Negative prices are allowed
(as in power markets) unless a floor forbids them. Nothing here is a float.

Rule R.
1. Allocation: maximise welfare Σ bid limit × fill − Σ offer limit × fill; among those allocations,
   maximise volume, so zero-surplus units trade.
2. Bounds: L = max(limits of offers that trade, limits of bids not fully filled);
   U = min(limits of bids that trade, limits of offers not fully filled). A partial fill pins the price.
3. Price: p = L + k·(U − L), k = 1/2 by default; an exact `Fraction`, or None when nothing trades.
4. Rationing: a price level that cannot fill entirely shares its traded Wh pro rata to order quantity,
   in whole Wh by largest remainder, equal remainders by ascending order id (Python string order).
5. No crossing, no trade. 6. Limits outside [price_floor, price_cap] are refused, never clipped; excess
   demand at the cap clears at the cap, rationed pro rata (this follows from 2–4).
7. Self-trade prevention, "decrement both": before the market clears, each owner's own crossing bids and
   offers are netted against each other and withdrawn from both sides, in priority order (best limit,
   then id), with no trade and no payment. An owner's remaining bids then lie strictly below its
   remaining offers, so at the one price it cannot both buy and sell: no owner ever appears on both
   sides of the result. Orders with owner None never net. Rule R then applies to the netted book: a
   netted order takes part with what is left of it, and one netted away entirely takes no part.
8. Bad input (not an Order, empty or non-str id, non-int or non-positive quantity, non-int limit,
   duplicate id across both sides) raises ValueError naming the order. Quantities and limits must fit
   in int64, and each side's total quantity must stay below 2**63 Wh.

Payments (creates and destroys no money). The money that changes hands is M = volume × p / 1000 rounded
to the nearest base unit, ties to even. Each side then shares M by largest remainder of the exact amounts
fill × p / 1000 (equal remainders by ascending id): every buyer pays the floor or the ceiling of its exact
amount, every seller receives the floor or the ceiling of its own, and Σ paid = Σ received = M exactly.
No side is favoured (rounding to nearest, not towards a side), no party is off by a whole unit, and no
house account is needed to absorb residues.

Determinism. Every tie is broken by order id and the output is built in id order, so the result does
not depend on the order of the input lists. `verify` re-checks a result in O(n) from its certificate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fractions import Fraction

from gridtokenx.market.clearing.book import Side, read_book, read_k
from gridtokenx.market.clearing.model import Certificate, ClearingResult, Order
from gridtokenx.market.clearing.result import Allocation, assemble
from gridtokenx.market.clearing.selftrade import market_side, self_trade_cancellations
from gridtokenx.market.clearing.sweep import sweep
from gridtokenx.market.clearing.verification import verify

__all__ = ["Certificate", "ClearingResult", "Order", "clear", "verify"]


def clear(
    bids: Sequence[Order],
    offers: Sequence[Order],
    *,
    price_cap: int | None = None,
    price_floor: int | None = None,
    k: Fraction = Fraction(1, 2),
) -> ClearingResult:
    """Clear one auction under rule R (see the module docstring). Pure: no I/O, no clock, no randomness."""
    return solve(bids, offers, price_cap, price_floor, k, sweep)


def solve(
    bids: Sequence[Order],
    offers: Sequence[Order],
    price_cap: int | None,
    price_floor: int | None,
    k: Fraction,
    allocate: Callable[[Side, Side], Allocation | None],
) -> ClearingResult:
    """Validate the book, net self-trades, allocate with `allocate`, then price and pay; shared by
    `clear` and the brute-force reference so the two differ only in how they allocate."""
    weight = read_k(k)
    bid_book, offer_book = read_book(bids, offers, price_floor, price_cap)
    cancelled = self_trade_cancellations(bid_book, offer_book)
    bids_in, offers_in = market_side(bid_book, cancelled), market_side(offer_book, cancelled)
    return assemble(bids_in, offers_in, allocate(bids_in, offers_in), weight, cancelled)
