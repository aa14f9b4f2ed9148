"""Property suite: `clear` against an independent oracle on small random books.

The oracle shares no code with the engine:
- netting expands each owner's orders into single Wh units and pairs them best-first;
- an LP (HiGHS) finds the maximal welfare, then the maximal volume at that welfare;
- the traded units are the best `volume` units of each side; a level that is cut is shared with exact
  fractions, ties sorted by id; L and U come straight from their definitions;
- payments are rounded with exact fractions and an explicit sort.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from fractions import Fraction

import highspy
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_clearing_invariants import assert_invariants, cleared

from gridtokenx.market.clearing import Order, clear, verify
from gridtokenx.market.clearing.reference import clear_reference

WEIGHTS = [Fraction(1, 2), Fraction(0), Fraction(1), Fraction(1, 3)]


@dataclass(frozen=True)
class Expected:
    welfare: int
    volume: int
    fills: dict[str, int]
    lower: int | None
    upper: int | None
    price: Fraction | None
    payments: dict[str, int]
    netted: dict[str, int]


@st.composite
def books(draw: st.DrawFn) -> tuple[list[Order], list[Order]]:
    ids = draw(st.lists(st.text("abz09", min_size=1, max_size=3), min_size=2, max_size=12, unique=True))
    bids: list[Order] = []
    offers: list[Order] = []
    for order_id in ids:
        order = Order(
            order_id,
            draw(st.integers(1, 20)),
            draw(st.integers(-3, 8)),  # few levels, so ties and shared margins are common
            draw(st.sampled_from([None, None, "A", "B"])),
        )
        (bids if draw(st.booleans()) else offers).append(order)
    return bids, offers


def oracle(bids: list[Order], offers: list[Order], k: Fraction) -> Expected:
    netted = _net_by_units(bids, offers)
    left = {order.id: order.quantity_wh - netted[order.id] for order in [*bids, *offers]}
    bids = [order for order in bids if left[order.id]]
    offers = [order for order in offers if left[order.id]]
    welfare, volume = _lp_welfare_then_volume(bids, offers, left)
    fills = _best_units(bids, left, volume, best_first=True) | _best_units(
        offers, left, volume, best_first=False
    )
    assert welfare == sum(o.limit_price * fills[o.id] for o in bids) - sum(
        o.limit_price * fills[o.id] for o in offers
    ), "the LP and the unit allocation disagree"
    kept = {order_id: wh for order_id, wh in netted.items() if wh}
    if volume == 0:
        return Expected(welfare, 0, {}, None, None, None, {}, kept)
    lower = max(
        [o.limit_price for o in offers if fills[o.id]]
        + [o.limit_price for o in bids if fills[o.id] < left[o.id]]
    )
    upper = min(
        [o.limit_price for o in bids if fills[o.id]]
        + [o.limit_price for o in offers if fills[o.id] < left[o.id]]
    )
    price = lower + k * (upper - lower)
    money = round(volume * price / 1000)
    payments = _round_shares({o.id: fills[o.id] * price / 1000 for o in bids if fills[o.id]}, money)
    payments |= _round_shares({o.id: fills[o.id] * price / 1000 for o in offers if fills[o.id]}, money)
    nonzero = {order_id: wh for order_id, wh in fills.items() if wh}
    return Expected(welfare, volume, nonzero, lower, upper, price, payments, kept)


def _net_by_units(bids: list[Order], offers: list[Order]) -> Counter[str]:
    netted: Counter[str] = Counter()
    owners = {o.owner for o in bids if o.owner} & {o.owner for o in offers if o.owner}
    for owner in owners:
        bid_units = sorted(
            (-o.limit_price, o.id) for o in bids if o.owner == owner for _ in range(o.quantity_wh)
        )
        offer_units = sorted(
            (o.limit_price, o.id) for o in offers if o.owner == owner for _ in range(o.quantity_wh)
        )
        for (negated_bid, bid_id), (offer_price, offer_id) in zip(bid_units, offer_units, strict=False):
            if -negated_bid < offer_price:
                break
            netted[bid_id] += 1
            netted[offer_id] += 1
    return netted


def _lp_welfare_then_volume(bids: list[Order], offers: list[Order], left: dict[str, int]) -> tuple[int, int]:
    if not bids or not offers:
        return 0, 0
    lp = highspy.Highs()
    lp.silent()
    x = [lp.addVariable(lb=0, ub=left[o.id]) for o in bids]
    y = [lp.addVariable(lb=0, ub=left[o.id]) for o in offers]
    lp.addConstr(sum(x) - sum(y) == 0)
    welfare = sum(o.limit_price * v for o, v in zip(bids, x, strict=True)) - sum(
        o.limit_price * v for o, v in zip(offers, y, strict=True)
    )
    lp.maximize(welfare)
    best = lp.getObjectiveValue()
    lp.addConstr(welfare >= best - 1e-7)
    lp.maximize(sum(x))
    volume = lp.getObjectiveValue()
    assert abs(best - round(best)) < 1e-6 and abs(volume - round(volume)) < 1e-6
    return round(best), round(volume)


def _best_units(
    orders: list[Order], left: dict[str, int], volume: int, *, best_first: bool
) -> dict[str, int]:
    """The `volume` best units; a price level only partly reached is shared pro rata, exact fractions."""
    fills = dict.fromkeys((o.id for o in orders), 0)
    wanted = volume
    for level in sorted({o.limit_price for o in orders}, reverse=best_first):
        at_level = [o for o in orders if o.limit_price == level]
        level_wh = sum(left[o.id] for o in at_level)
        taken = min(level_wh, wanted)
        fills |= _round_shares({o.id: Fraction(left[o.id] * taken, level_wh) for o in at_level}, taken)
        wanted -= taken
    return fills


def _round_shares(exact: dict[str, Fraction], total: int) -> dict[str, int]:
    """Hamilton rounding: floors, then one unit each to the largest remainders, ties by ascending id."""
    floors = {order_id: share.numerator // share.denominator for order_id, share in exact.items()}
    by_remainder = sorted(exact, key=lambda order_id: (-(exact[order_id] - floors[order_id]), order_id))
    for order_id in by_remainder[: total - sum(floors.values())]:
        floors[order_id] += 1
    return floors


def _agrees(bids: list[Order], offers: list[Order], k: Fraction) -> None:
    result = cleared(bids, offers, k=k)
    expected = oracle(bids, offers, k)
    welfare = sum(o.limit_price * result.fills.get(o.id, 0) for o in bids) - sum(
        o.limit_price * result.fills.get(o.id, 0) for o in offers
    )
    assert (welfare, result.volume_wh) == (expected.welfare, expected.volume)
    assert result.fills == expected.fills
    certificate = result.certificate
    assert (certificate.lower, certificate.upper, result.price) == (
        expected.lower,
        expected.upper,
        expected.price,
    )
    assert result.payments == expected.payments
    assert certificate.self_trade_cancelled == expected.netted
    assert clear_reference(bids, offers, k=k) == result


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(book=books(), k=st.sampled_from(WEIGHTS))
def test_clear_matches_the_oracle(book: tuple[list[Order], list[Order]], k: Fraction) -> None:
    _agrees(*book, k)


@settings(max_examples=300, deadline=None)
@given(book=books(), data=st.data())
def test_result_is_invariant_under_any_permutation(
    book: tuple[list[Order], list[Order]], data: st.DataObject
) -> None:
    bids, offers = book
    result = clear(bids, offers)
    shuffled_bids = data.draw(st.permutations(bids))
    shuffled_offers = data.draw(st.permutations(offers))
    again = clear(shuffled_bids, shuffled_offers)
    assert again == result
    assert list(again.fills.items()) == list(result.fills.items())  # same iteration order too
    assert verify(shuffled_bids, shuffled_offers, result)


def test_larger_random_books_match_the_reference_and_verify() -> None:
    """Hundreds of orders on a narrow price grid with shared owners: many ties, partial levels, netting."""
    rng = np.random.default_rng(7)
    for _ in range(20):
        n = int(rng.integers(50, 400))
        orders = [
            Order(
                f"{rng.integers(0, 10**6):06d}-{i}",
                int(rng.integers(1, 3000)),
                int(rng.integers(10, 30)),
                None if rng.random() < 0.5 else f"owner-{rng.integers(0, 20)}",
            )
            for i in range(n)
        ]
        is_bid = rng.random(n) < 0.5
        bids = [o for o, bid in zip(orders, is_bid, strict=True) if bid]
        offers = [o for o, bid in zip(orders, is_bid, strict=True) if not bid]
        result = clear(bids, offers)
        assert_invariants(bids, offers, result)
        assert verify(bids, offers, result)
        assert clear_reference(bids, offers) == result
