"""Largest-remainder (Hamilton) apportionment: whole units that add up exactly, ties broken by id.

Used twice with one rule: to ration a marginal price level's Wh pro rata to order quantity, and to turn
exact payments into whole base units. Share i is weights[i]·scale/denominator; everyone gets its floor,
and the units still missing go one each to the largest remainders, equal remainders by ascending id.
Each share is therefore rounded down or up, never further, and the total is exact.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gridtokenx.market.clearing.book import INT64_BOUND


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
    weights: np.ndarray,
    scale: int,
    denominator: int,
    total: int,
    ids: Sequence[str],
) -> bool:
    """Whether `values` is exactly `apportion(weights, scale, denominator, total, ids)`, in O(n).

    Each value is its floor, or floor + 1 where the share is inexact; they add up to `total`; and every
    bumped row precedes every other row in (remainder descending, id ascending) order, which only needs
    the extreme remainders and, if those tie, the extreme ids among the tied rows: no sort.
    """
    fits = int(weights.sum()) * abs(scale) < INT64_BOUND and denominator < INT64_BOUND
    numerators = (weights if fits else weights.astype(object)) * scale
    shares = numerators // denominator
    remainders = numerators % denominator
    try:
        bumps = np.array(values, dtype=np.int64 if fits else object) - shares
    except OverflowError:  # a value no int64 share could round to
        return False
    bumped = bumps == 1
    if not ((bumps == 0) | bumped).all() or int(bumps.sum()) != total - int(shares.sum()):
        return False
    if not bumped.any():
        return True
    if not (remainders[bumped] > 0).all():
        return False
    if bumped.all():
        return True
    lowest_bumped, highest_other = remainders[bumped].min(), remainders[~bumped].max()
    if lowest_bumped != highest_other:
        return bool(lowest_bumped > highest_other)
    tied = remainders == lowest_bumped
    last_bumped = max(ids[row] for row in np.flatnonzero(tied & bumped).tolist())
    first_other = min(ids[row] for row in np.flatnonzero(tied & ~bumped).tolist())
    return last_bumped < first_other


def ration(quantities: np.ndarray, traded: int, ids: Sequence[str]) -> np.ndarray:
    """Rule 4: a price level's traded Wh split pro rata to order quantity, largest remainder, ties by id."""
    return apportion(quantities, traded, int(quantities.sum()), traded, ids)
