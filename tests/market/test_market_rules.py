"""Pure market rules: exact decimal edges, order policy, escrow sizes, epochs, settlement legs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gridtokenx.market.clearing import Order, clear
from gridtokenx.market.rules import (
    Asset,
    Booked,
    OrderPolicy,
    RuleError,
    Side,
    buy_escrow,
    check_order,
    energy_wh,
    epoch_window,
    format_units,
    legs_of,
    price_per_kwh,
    settlement_groups,
    totals,
)


@pytest.mark.parametrize(
    ("value", "wh"), [("50.0", 50_000), ("1", 1000), ("0.001", 1), ("12.345", 12_345), ("0", 0)]
)
def test_energy_strings_convert_exactly(value: str, wh: int) -> None:
    assert energy_wh(value) == wh


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (50.0, "DECIMAL_STRING_REQUIRED"),
        (50, "DECIMAL_STRING_REQUIRED"),
        (None, "DECIMAL_STRING_REQUIRED"),
        ("-1", "DECIMAL_NEGATIVE"),
        ("NaN", "DECIMAL_INVALID"),
        ("1e3", "DECIMAL_INVALID"),
        (" 1", "DECIMAL_INVALID"),
        ("1.", "DECIMAL_INVALID"),
        ("01", "DECIMAL_INVALID"),
        ("9" * 30, "DECIMAL_INVALID"),
        ("1.0005", "DECIMAL_TOO_PRECISE"),
    ],
)
def test_bad_energy_is_refused_with_a_code(value: object, code: str) -> None:
    with pytest.raises(RuleError) as error:
        energy_wh(value)
    assert error.value.code == code and error.value.field == "energy_amount"


def test_price_has_the_currency_precision() -> None:
    assert price_per_kwh("0.15") == 150_000
    assert price_per_kwh("3", 0) == 3
    with pytest.raises(RuleError, match="more than 6 decimal places"):
        price_per_kwh("0.1234567")


def test_format_round_trips() -> None:
    assert format_units(1500, 3) == "1.500" and energy_wh(format_units(1500, 3)) == 1500
    assert format_units(7, 0) == "7"


POLICY = OrderPolicy(min_wh=1000, tick=10, floor=100, cap=1_000_000)


@pytest.mark.parametrize(
    ("side", "role", "wh", "price", "code"),
    [
        (Side.SELL, "consumer", 1000, 1000, "ROLE_CANNOT_SELL"),
        (Side.BUY, "consumer", 999, 1000, "ORDER_TOO_SMALL"),
        (Side.BUY, "consumer", 1000, 0, "PRICE_NOT_POSITIVE"),
        (Side.BUY, "consumer", 1000, 1005, "PRICE_OFF_TICK"),
        (Side.SELL, "prosumer", 1000, 90, "PRICE_BELOW_FLOOR"),
        (Side.SELL, "prosumer", 1000, 1_000_010, "PRICE_ABOVE_CAP"),
    ],
)
def test_order_policy_refusals(side: Side, role: str, wh: int, price: int, code: str) -> None:
    with pytest.raises(RuleError) as error:
        check_order(side, role, wh, price, POLICY)
    assert error.value.code == code


def test_order_policy_accepts_edges() -> None:
    check_order(Side.BUY, "consumer", 1000, 100, POLICY)
    check_order(Side.SELL, "prosumer", 1000, 1_000_000, POLICY)


def test_buy_escrow_rounds_up() -> None:
    assert buy_escrow(1000, 150_000) == 150_000
    assert buy_escrow(1, 1) == 1  # 0.001 base units owed: one whole unit locked
    assert buy_escrow(1500, 3) == 5  # 4.5 -> 5


def test_epochs_align_to_utc_wall_clock() -> None:
    start, end = epoch_window(datetime(2026, 12, 4, 14, 52, 31, tzinfo=UTC), 900)
    assert (start, end) == (
        datetime(2026, 12, 4, 14, 45, tzinfo=UTC),
        datetime(2026, 12, 4, 15, 0, tzinfo=UTC),
    )


def test_settlement_legs_return_every_escrowed_unit() -> None:
    # Two sellers, three buyers at different limits; every order's legs add up to its escrow.
    offers = [Order("s1", 3000, 100_000, "A"), Order("s2", 2000, 120_000, "B")]
    bids = [Order("b1", 2000, 200_000, "C"), Order("b2", 2000, 130_000, "D"), Order("b3", 2000, 90_000, "E")]
    result = clear(bids, offers)
    booked = [
        Booked(o.id, Side.SELL, o.owner or "", o.quantity_wh, o.quantity_wh * 10**6) for o in offers
    ] + [
        Booked(o.id, Side.BUY, o.owner or "", o.quantity_wh, buy_escrow(o.quantity_wh, o.limit_price))
        for o in bids
    ]
    groups = settlement_groups(booked, result.fills, result.payments, per_group=2)
    assert [len({leg.order_id for leg in g}) for g in groups] == [2, 2, 1]
    legs = [leg for group in groups for leg in group]
    escrowed = totals([])
    for order in booked:
        escrowed[Asset.ENERGY if order.side is Side.SELL else Asset.PAYMENT] += order.escrow
    assert totals(legs) == escrowed
    # b3's limit is under the price: nothing fills, its whole deposit comes back.
    assert "b3" not in result.fills
    assert [(leg.asset, leg.amount) for leg in legs if leg.order_id == "b3"] == [
        (Asset.PAYMENT, buy_escrow(2000, 90_000))
    ]


def test_legs_refuse_to_exceed_escrow() -> None:
    with pytest.raises(ValueError, match="exceeds its escrow"):
        legs_of(Booked("x", Side.BUY, "w", 1000, 10), 1000, 11)
