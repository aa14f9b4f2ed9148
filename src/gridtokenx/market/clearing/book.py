"""Validation of an order book into column form.

Every order is checked before anything is computed, and the first bad order is named in a `ValueError`.
Fast vectorised checks run first; only when one fails does a per-order scan look for the culprit, so a
valid book of a million orders costs a few passes over plain lists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import NoReturn

import numpy as np

from gridtokenx.market.clearing.model import Order

INT64_BOUND = 2**63
"""Quantities, prices and each side's total quantity must lie strictly inside ±2**63 (int64 columns)."""


@dataclass(frozen=True, slots=True)
class Side:
    """One side of a book as parallel columns; row i is the i-th order as given."""

    ids: list[str]
    owners: list[str | None]
    quantities: list[int]
    prices: list[int]
    quantity: np.ndarray
    price: np.ndarray


def read_k(k: object) -> Fraction:
    """The price-rule weight k as an exact Fraction in [0, 1]; floats are refused (no float near money)."""
    if isinstance(k, bool) or not isinstance(k, int | Fraction):
        raise ValueError(f"k must be an int or a Fraction, got {k!r}")
    if not 0 <= k <= 1:
        raise ValueError(f"k must lie in [0, 1], got {k}")
    return Fraction(k)


def read_book(
    bids: Sequence[Order], offers: Sequence[Order], price_floor: int | None, price_cap: int | None
) -> tuple[Side, Side]:
    """Both sides in column form, or a `ValueError` naming the first bad order."""
    _check_bound("price_floor", price_floor)
    _check_bound("price_cap", price_cap)
    if price_floor is not None and price_cap is not None and price_floor > price_cap:
        raise ValueError(f"price_floor {price_floor} is above price_cap {price_cap}")
    bid_side = _read_side("bid", bids, price_floor, price_cap)
    offer_side = _read_side("offer", offers, price_floor, price_cap)
    seen = set(bid_side.ids)
    seen.update(offer_side.ids)
    if len(seen) != len(bid_side.ids) + len(offer_side.ids):
        _reject_duplicate(bid_side.ids + offer_side.ids)
    return bid_side, offer_side


def _check_bound(name: str, value: int | None) -> None:
    if value is not None and (type(value) is not int or not -INT64_BOUND < value < INT64_BOUND):
        raise ValueError(f"{name} must be an int tick price, got {value!r}")


def _read_side(side: str, orders: Sequence[Order], floor: int | None, cap: int | None) -> Side:
    if not isinstance(orders, list | tuple):
        orders = list(orders)  # a generator would be exhausted by the first of several passes
    if not set(map(type, orders)) <= {Order}:
        _reject_first_bad(side, orders, floor, cap)
    ids = [order.id for order in orders]
    quantities = [order.quantity_wh for order in orders]
    prices = [order.limit_price for order in orders]
    owners = [order.owner for order in orders]
    well_typed = (  # exact types, checked by C loops: bool is not an int quantity, a str subclass no id
        set(map(type, ids)) <= {str}
        and all(ids)
        and set(map(type, quantities)) <= {int}
        and set(map(type, prices)) <= {int}
        and set(map(type, owners)) <= {str, type(None)}
    )
    if not well_typed:
        _reject_first_bad(side, orders, floor, cap)
    try:
        quantity = np.array(quantities, dtype=np.int64)
        price = np.array(prices, dtype=np.int64)
    except OverflowError:
        _reject_first_bad(side, orders, floor, cap)
    in_range = not quantity.size or (
        int(quantity.min()) > 0
        and int(price.min()) > -INT64_BOUND
        and (floor is None or int(price.min()) >= floor)
        and (cap is None or int(price.max()) <= cap)
    )
    if not in_range:
        _reject_first_bad(side, orders, floor, cap)
    if sum(quantities) >= INT64_BOUND:
        raise ValueError(
            f"the {side} side totals {sum(quantities)} Wh, beyond the 2**63 - 1 Wh a book may hold"
        )
    return Side(ids, owners, quantities, prices, quantity, price)


def _reject_first_bad(side: str, orders: Sequence[Order], floor: int | None, cap: int | None) -> NoReturn:
    for index, order in enumerate(orders):
        problem = _problem(order, floor, cap)
        if problem:
            named = type(order) is Order and type(order.id) is str and order.id
            name = repr(order.id) if named else f"#{index}"
            raise ValueError(f"{side} {name}: {problem}")
    raise AssertionError("the fast book checks and the per-order checks disagree")


def _problem(order: object, floor: int | None, cap: int | None) -> str:
    """Why this order is unacceptable, or '' when it is fine."""
    if type(order) is not Order:
        return f"expected an Order, got {type(order).__name__}"
    if type(order.id) is not str or not order.id:
        return f"id must be a non-empty str, got {order.id!r}"
    if order.owner is not None and type(order.owner) is not str:
        return f"owner must be a str or None, got {order.owner!r}"
    quantity, price = order.quantity_wh, order.limit_price
    if type(quantity) is not int or not 0 < quantity < INT64_BOUND:
        return f"quantity_wh must be a positive int Wh below 2**63, got {quantity!r}"
    if type(price) is not int or not -INT64_BOUND < price < INT64_BOUND:
        return f"limit_price must be an int tick price inside ±2**63, got {price!r}"
    if floor is not None and price < floor:
        return f"limit_price {price} is below the price floor {floor} (orders are never clipped)"
    if cap is not None and price > cap:
        return f"limit_price {price} is above the price cap {cap} (orders are never clipped)"
    return ""


def _reject_duplicate(ids: list[str]) -> NoReturn:
    seen: set[str] = set()
    for order_id in ids:
        if order_id in seen:
            raise ValueError(f"duplicate order id {order_id!r}: ids must be unique across bids and offers")
        seen.add(order_id)
    raise AssertionError("the set size and the per-id scan disagree")
