"""Largest-remainder (Hamilton) apportionment: whole units that add up exactly, ties broken by id.

Used twice with one rule: to ration a marginal price level's Wh pro rata to order quantity, and to turn
exact payments into whole base units. Share i is weights[i]·scale/denominator; everyone gets its floor,
and the units still missing go one each to the largest remainders, equal remainders by ascending id.
Each share is therefore rounded down or up, never further, and the total is exact.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gridtokenx.market.clearing_book import INT64_BOUND


def apportion(
    weights: np.ndarray, scale: int, denominator: int, total: int, ids: Sequence[str]
) -> np.ndarray:
    """Integers summing to `total`, each the floor or ceiling of weights[i]·scale/denominator.

    `total` must lie between the sum of the floors and that sum plus the count of inexact shares, which
    holds whenever it is the exact total rounded either way. `weights` are non-negative int64 with a sum
    below 2**63. Arithmetic is int64 when the products provably fit, Python integers otherwise, so the
    result is exact for any input.
    """
    fits = int(weights.sum()) * abs(scale) < INT64_BOUND and denominator < INT64_BOUND
    numerators = (weights if fits else weights.astype(object)) * scale
    shares = numerators // denominator
    remainders = numerators % denominator
    missing = total - int(shares.sum())
    if not missing:
        return shares
    cut = len(remainders) - missing
    threshold = np.partition(remainders, cut)[cut]  # the missing-th largest remainder
    bumped = remainders > threshold
    tied = np.flatnonzero(remainders == threshold).tolist()
    tied.sort(key=ids.__getitem__)
    bumped[tied[: missing - int(bumped.sum())]] = True
    return shares + bumped


def is_apportioned(
    values: Sequence[int],
    weights: Sequence[int],
    scale: int,
    denominator: int,
    total: int,
    ids: Sequence[str],
) -> bool:
    """Whether `values` is exactly `apportion(...)`, checked in O(n) without sorting.

    Each value is its floor, or floor + 1 where the share is inexact; they add up to `total`; and every
    bumped row precedes every other row in (remainder descending, id ascending) order.
    """
    if sum(values) != total:
        return False
    worst_bumped: tuple[int, str] | None = None
    best_other: tuple[int, str] | None = None
    for value, weight, order_id in zip(values, weights, ids, strict=True):
        share, remainder = divmod(weight * scale, denominator)
        key = (-remainder, order_id)
        if value == share + 1 and remainder:
            if worst_bumped is None or key > worst_bumped:
                worst_bumped = key
        elif value != share:
            return False
        elif best_other is None or key < best_other:
            best_other = key
    return worst_bumped is None or best_other is None or worst_bumped < best_other


def ration(quantities: np.ndarray, traded: int, ids: Sequence[str]) -> np.ndarray:
    """Rule 4: a price level's traded Wh split pro rata to order quantity, largest remainder, ties by id."""
    return apportion(quantities, traded, int(quantities.sum()), traded, ids)
