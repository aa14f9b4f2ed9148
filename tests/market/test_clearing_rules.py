"""Hand-worked books for each step of rule R; every expected figure is derived in the comments."""

from __future__ import annotations

import re
from fractions import Fraction

import pytest
from test_clearing_invariants import cleared

from gridtokenx.market.clearing import Order, clear

# --- rule 1: welfare first, then volume ---------------------------------------------------------------


def test_zero_surplus_units_still_trade() -> None:
    # bid 20 = offer 20: no welfare either way, so volume decides: 1000 Wh at 20 → 1000·20/1000 = 20.
    result = cleared([Order("b", 1000, 20)], [Order("o", 1000, 20)])
    assert (result.volume_wh, result.price) == (1000, 20)
    assert result.payments == {"b": 20, "o": 20}


def test_welfare_beats_volume() -> None:
    # Pairing b2@10 with o2@25 would add volume but lose 15/kWh; only b1 and o1 trade.
    # L = max(o1 5, unfilled b2 10) = 10; U = min(b1 30, unfilled o2 25) = 25; p = 17.5.
    bids = [Order("b1", 2000, 30), Order("b2", 2000, 10)]
    offers = [Order("o1", 2000, 5), Order("o2", 2000, 25)]
    result = cleared(bids, offers)
    assert result.fills == {"b1": 2000, "o1": 2000}
    assert (result.certificate.lower, result.certificate.upper, result.price) == (10, 25, Fraction(35, 2))
    assert result.payments == {"b1": 35, "o1": 35}  # 2000·17.5/1000


# --- rule 2: bounds; a partial fill pins the price ----------------------------------------------------


def test_partial_bid_pins_the_price() -> None:
    # Supply 200 Wh < demand 300 Wh: b1 fills 200 of 300. L = max(o2 20, partial b1 30) = 30 = U.
    result = cleared([Order("b1", 300, 30)], [Order("o1", 100, 10), Order("o2", 100, 20)])
    assert result.fills == {"b1": 200, "o1": 100, "o2": 100}
    assert (result.certificate.lower, result.certificate.upper, result.price) == (30, 30, 30)
    assert result.payments == {"b1": 6, "o1": 3, "o2": 3}


def test_partial_offer_pins_the_price() -> None:
    # o1 sells 200 of 500. U = min(lowest bid 25, partial o1 10) = 10 = L.
    result = cleared([Order("b1", 100, 30), Order("b2", 100, 25)], [Order("o1", 500, 10)])
    assert result.fills == {"b1": 100, "b2": 100, "o1": 200}
    assert result.price == 10


# --- rule 3: p = L + k·(U − L) --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("k", "price"),
    [(Fraction(1, 2), 20), (Fraction(0), 10), (Fraction(1), 30), (Fraction(1, 3), Fraction(50, 3))],
)
def test_price_moves_with_k_between_the_bounds(k: Fraction, price: Fraction) -> None:
    # L = 10 (the offer), U = 30 (the bid); both fill entirely.
    result = cleared([Order("b", 3000, 30)], [Order("o", 3000, 10)], k=k)
    assert (result.certificate.lower, result.certificate.upper) == (10, 30)
    assert result.price == price and result.certificate.k == k
    assert result.payments == {"b": round(3 * price), "o": round(3 * price)}


def test_default_k_is_the_mid_point() -> None:
    result = cleared([Order("b", 1000, 31)], [Order("o", 1000, 10)])
    assert result.price == Fraction(41, 2)


# --- rule 4: pro-rata rationing at the margin ------------------------------------------------------------


def test_marginal_bid_level_is_shared_pro_rata() -> None:
    # 300 Wh supply for 600 Wh at one level: everyone gets half.
    bids = [Order("b1", 100, 20), Order("b2", 200, 20), Order("b3", 300, 20)]
    result = cleared(bids, [Order("o1", 300, 10)])
    assert result.fills == {"b1": 50, "b2": 100, "b3": 150, "o1": 300}
    assert result.certificate.marginal_bids == ("b1", "b2", "b3")


def test_largest_remainder_gets_the_odd_watt_hour() -> None:
    # 7 Wh over 5/3/2: exact 3.5, 2.1, 1.4 → floors 3, 2, 1 and the spare unit to x (remainder .5).
    bids = [Order("y", 3, 20), Order("x", 5, 20), Order("z", 2, 20)]
    result = cleared(bids, [Order("o", 7, 10)])
    assert result.fills == {"o": 7, "x": 4, "y": 2, "z": 1}


def test_equal_remainders_go_by_order_id_on_the_bid_side() -> None:
    # 2 Wh over three 1-Wh bids: each is owed 2/3; the two spare units go to the smallest ids.
    bids = [Order("c", 1, 20), Order("a", 1, 20), Order("b", 1, 20)]
    result = cleared(bids, [Order("o", 2, 10)])
    assert result.fills == {"a": 1, "b": 1, "o": 2}


def test_equal_remainders_go_by_order_id_on_the_offer_side() -> None:
    offers = [Order("o2", 1, 10), Order("o3", 1, 10), Order("o1", 1, 10)]
    result = cleared([Order("b", 2, 20)], offers)
    assert result.fills == {"b": 2, "o1": 1, "o2": 1}
    assert result.certificate.marginal_offers == ("o1", "o2", "o3")


def test_ties_on_both_sides_of_the_margin_at_once() -> None:
    # Bid level 20 holds 9 Wh, offer level 20 holds 6 Wh, offer 10 holds 2 Wh: volume 8 (= supply).
    # Bids get 8·4/9, 8·5/9 = 3.56, 4.44 → 3, 4 + spare unit to the .56 remainder → 4, 4.
    bids = [Order("b1", 4, 20), Order("b2", 5, 20), Order("b0", 3, 15)]
    offers = [Order("o1", 2, 10), Order("o2", 3, 20), Order("o3", 3, 20)]
    result = cleared(bids, offers)
    assert result.fills == {"b1": 4, "b2": 4, "o1": 2, "o2": 3, "o3": 3}
    assert result.price == 20


# --- rule 5: no crossing, no trade ------------------------------------------------------------------------


def test_uncrossed_book_trades_nothing() -> None:
    result = cleared([Order("b", 1000, 19)], [Order("o", 1000, 20)])
    assert (result.price, result.volume_wh, result.fills, result.payments) == (None, 0, {}, {})
    assert result.certificate.lower is None and result.certificate.upper is None


def test_empty_book_and_single_orders() -> None:
    assert cleared([], []).price is None
    assert cleared([Order("b", 10, 20)], []).volume_wh == 0
    assert cleared([], [Order("o", 10, 20)]).volume_wh == 0


def test_equal_limits_everywhere() -> None:
    # All at 20: 60 Wh trade at 20, bids rationed 60 over 100/50 → 40, 20.
    result = cleared([Order("b1", 100, 20), Order("b2", 50, 20)], [Order("o1", 60, 20)])
    assert result.fills == {"b1": 40, "b2": 20, "o1": 60}
    assert result.price == 20


def test_negative_prices_clear_and_pay_the_other_way() -> None:
    # Both fill: L = -50 (the offer), U = -10 (the bid), p = -30; the seller pays 60 and the buyer gets it.
    result = cleared([Order("b", 2000, -10)], [Order("o", 2000, -50)])
    assert result.price == -30
    assert result.payments == {"b": -60, "o": -60}


# --- rule 6: caps and floors ------------------------------------------------------------------------------


def test_orders_outside_the_band_are_refused_not_clipped() -> None:
    with pytest.raises(ValueError, match=r"bid 'b7'.*above the price cap 50"):
        clear([Order("b7", 10, 51)], [], price_cap=50)
    with pytest.raises(ValueError, match=r"offer 'o3'.*below the price floor 5"):
        clear([], [Order("o3", 10, 4)], price_floor=5)
    with pytest.raises(ValueError, match="price_floor"):
        clear([], [], price_floor=10, price_cap=5)


def test_excess_demand_at_the_cap_clears_at_the_cap_pro_rata() -> None:
    # 400 Wh bid at the cap for 200 Wh offered: the cap level is curtailed 200·300/400, 200·100/400.
    bids = [Order("b1", 300, 50), Order("b2", 100, 50), Order("b3", 100, 40)]
    result = cleared(bids, [Order("o1", 200, 20)], price_cap=50, price_floor=0)
    assert result.fills == {"b1": 150, "b2": 50, "o1": 200}
    assert result.price == 50


def test_excess_supply_at_the_floor_clears_at_the_floor() -> None:
    offers = [Order("o1", 300, 5), Order("o2", 100, 5)]
    result = cleared([Order("b1", 200, 30)], offers, price_floor=5, price_cap=50)
    assert result.fills == {"b1": 200, "o1": 150, "o2": 50}
    assert result.price == 5


# --- rule 7: self-trade prevention (decrement both) ---------------------------------------------------------


def test_an_owners_crossing_orders_cancel_each_other() -> None:
    # A's bid 40 and offer 10 net away; the market is b2@30 vs o2@20: 100 Wh at 25.
    bids = [Order("a-bid", 100, 40, owner="A"), Order("b2", 100, 30, owner="B")]
    offers = [Order("a-offer", 100, 10, owner="A"), Order("o2", 100, 20, owner="C")]
    result = cleared(bids, offers)
    assert result.fills == {"b2": 100, "o2": 100}
    assert result.price == 25
    assert result.certificate.self_trade_cancelled == {"a-bid": 100, "a-offer": 100}


def test_netting_leaves_the_remainder_in_the_market() -> None:
    # A nets 100 of its 150 bid; its remaining 50@40 outbids b2, which then fills 50 of 100 and sets p = 30.
    bids = [Order("a-bid", 150, 40, owner="A"), Order("b2", 100, 30)]
    offers = [Order("a-offer", 100, 10, owner="A"), Order("o2", 100, 20)]
    result = cleared(bids, offers)
    assert result.fills == {"a-bid": 50, "b2": 50, "o2": 100}
    assert result.price == 30
    assert result.certificate.self_trade_cancelled == {"a-bid": 100, "a-offer": 100}


def test_netting_follows_priority_then_id() -> None:
    # A's best bid (50) nets first against its best offer (5), then a1 before a2 at equal limits.
    bids = [Order("a2", 60, 30, owner="A"), Order("a1", 60, 30, owner="A"), Order("a0", 50, 50, owner="A")]
    offers = [Order("s", 120, 5, owner="A"), Order("t", 100, 45, owner="A")]
    result = cleared(bids, offers)
    assert result.certificate.self_trade_cancelled == {"a0": 50, "a1": 60, "a2": 10, "s": 120}
    assert result.volume_wh == 0  # what is left (a2 50@30, t 100@45) does not cross


def test_an_owner_whose_orders_do_not_cross_keeps_both() -> None:
    bids = [Order("a-bid", 100, 10, owner="A"), Order("b", 100, 30)]
    offers = [Order("a-offer", 100, 20, owner="A")]
    result = cleared(bids, offers)
    assert result.certificate.self_trade_cancelled == {}
    assert result.fills == {"a-offer": 100, "b": 100}


def test_orders_without_owner_never_net() -> None:
    result = cleared([Order("b", 100, 40)], [Order("o", 100, 10)])
    assert result.fills == {"b": 100, "o": 100} and result.certificate.self_trade_cancelled == {}


# --- rule 8: bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "order",
    [
        Order("bad", 0, 10),
        Order("bad", -5, 10),
        Order("bad", 1.5, 10),  # type: ignore[arg-type]
        Order("bad", True, 10),
        Order("bad", "10", 10),  # type: ignore[arg-type]
        Order("bad", 10, 10.0),  # type: ignore[arg-type]
        Order("bad", 10, Fraction(21, 2)),  # type: ignore[arg-type]
        Order("bad", 2**63, 10),
        Order("bad", 10, 10, owner=7),  # type: ignore[arg-type]
    ],
)
def test_bad_values_name_the_order(order: Order) -> None:
    with pytest.raises(ValueError, match=re.escape("'bad'")):
        clear([Order("fine", 10, 10), order], [])
    with pytest.raises(ValueError, match=re.escape("'bad'")):
        clear([], [order])


def test_duplicate_ids_are_refused_within_and_across_sides() -> None:
    with pytest.raises(ValueError, match=r"duplicate order id 'x'"):
        clear([Order("x", 1, 1), Order("x", 2, 2)], [])
    with pytest.raises(ValueError, match=r"duplicate order id 'x'"):
        clear([Order("x", 1, 1)], [Order("x", 1, 1)])


def test_malformed_entries_are_named_by_position() -> None:
    with pytest.raises(ValueError, match=r"bid #1: expected an Order"):
        clear([Order("a", 1, 1), ("b", 1, 1)], [])  # type: ignore[list-item]
    with pytest.raises(ValueError, match=r"offer #0: id must be a non-empty str"):
        clear([], [Order("", 1, 1)])


@pytest.mark.parametrize("k", [0.5, Fraction(3, 2), -1, True])
def test_k_must_be_an_exact_weight_in_the_unit_interval(k: object) -> None:
    with pytest.raises(ValueError, match="k must"):
        clear([], [], k=k)  # type: ignore[arg-type]


def test_a_side_total_beyond_int64_is_refused() -> None:
    with pytest.raises(ValueError, match="the bid side totals"):
        clear([Order("a", 2**62, 1), Order("b", 2**62, 1)], [])


# --- payments --------------------------------------------------------------------------------------------


def test_payments_round_half_to_even_and_balance_exactly() -> None:
    # 3 bids of 500 Wh at p = 5 → each owes 2.5; M = 1500·5/1000 = 7.5 → 8 (ties to even).
    # Buyers: floors 2, 2, 2, two spare units by id → a, b pay 3. Seller receives 8.
    bids = [Order("c", 500, 5), Order("a", 500, 5), Order("b", 500, 5)]
    result = cleared(bids, [Order("s", 1500, 5)])
    assert result.payments == {"a": 3, "b": 3, "c": 2, "s": 8}


def test_huge_values_stay_exact() -> None:
    # Products overflow int64: the exact Python-integer path must give the same invariants.
    bids = [Order("b1", 2**61, 2**61), Order("b2", 2**61 - 1, 2**61)]
    offers = [Order("o1", 2**62 - 5, -(2**60))]
    result = cleared(bids, offers)
    assert result.volume_wh == 2**62 - 5
    assert result.price == 2**61  # the bids are rationed, so they pin the price
    money = round(Fraction((2**62 - 5) * 2**61, 1000))
    assert sum(result.payments[i] for i in ("b1", "b2")) == result.payments["o1"] == money
