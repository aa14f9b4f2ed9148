"""Exact kWh <-> Wh and Wh -> token base unit conversion."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridtokenx.core.units import UnitError, kwh_to_wh, parse_decimal, wh_to_kwh, wh_to_token_base_units

FAST = settings(max_examples=200, deadline=None)


@pytest.mark.parametrize(
    ("kwh", "wh"),
    [
        ("1.2345", 1234),  # tie -> even (4)
        ("1.2355", 1236),  # tie -> even (6)
        ("0.0005", 0),
        ("0.0015", 2),
        ("0.00150001", 2),
        ("-0.0025", -2),
        ("-2", -2000),
        ("2.5e-3", 2),
        ("1E+2", 100_000),
        (Decimal("100.0004"), 100_000),
        (7, 7000),
        ("0.1", 100),  # the float 0.1 is 0.1000000000000000055...; the text is exact
        ("1.00000000000000000000000000000000000005", 1000),
    ],
)
def test_kwh_to_wh_rounds_half_to_even_exactly(kwh: str | Decimal | int, wh: int) -> None:
    assert kwh_to_wh(kwh) == wh


@pytest.mark.parametrize(
    "bad", [1.5, True, "NaN", "Infinity", "-Infinity", " 1", "1_000", "+1", ".5", "1.", "0x10", "", "1e10000"]
)
def test_kwh_to_wh_refuses_floats_bad_syntax_and_out_of_range(bad: object) -> None:
    with pytest.raises(UnitError):
        kwh_to_wh(bad)  # type: ignore[arg-type]


def test_non_finite_decimal_and_too_many_digits_are_refused() -> None:
    with pytest.raises(UnitError):
        kwh_to_wh(Decimal("NaN"))
    with pytest.raises(UnitError):
        parse_decimal("1." + "1" * 40)


def test_wh_to_kwh_is_exact_with_three_places() -> None:
    assert wh_to_kwh(1500) == Decimal("1.5") and str(wh_to_kwh(1500)) == "1.500"
    assert str(wh_to_kwh(-3)) == "-0.003"
    with pytest.raises(UnitError):
        wh_to_kwh(1.0)  # type: ignore[arg-type]


def test_token_base_units_default_is_one_token_per_kwh_with_nine_decimals() -> None:
    assert wh_to_token_base_units(1) == 10**6
    assert wh_to_token_base_units(1000) == 10**9
    assert wh_to_token_base_units(1234, "0.5", 9) == 617_000_000
    assert wh_to_token_base_units(1, Decimal("0.3"), 3) == 0  # 0.0003 token at 3 decimals: rounded down
    assert wh_to_token_base_units(7, "1", 2) == 0  # 0.7 base units -> 0, never over-minted
    with pytest.raises(UnitError):
        wh_to_token_base_units(-1)
    with pytest.raises(UnitError):
        wh_to_token_base_units(1, "0")


@FAST
@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_wh_kwh_round_trip(wh: int) -> None:
    assert kwh_to_wh(wh_to_kwh(wh)) == wh
    assert kwh_to_wh(str(wh_to_kwh(wh))) == wh


@FAST
@given(st.decimals(min_value=-(10**6), max_value=10**6, allow_nan=False, allow_infinity=False, places=7))
def test_kwh_to_wh_is_the_nearest_wh(kwh: Decimal) -> None:
    wh = kwh_to_wh(kwh)
    exact = Fraction(kwh) * 1000
    assert abs(exact - wh) <= Fraction(1, 2)
    if abs(exact - wh) == Fraction(1, 2):
        assert wh % 2 == 0
    assert kwh_to_wh(str(kwh)) == wh  # text and Decimal agree


@FAST
@given(
    st.integers(min_value=0, max_value=10**12),
    st.decimals(min_value=Decimal("0.001"), max_value=1000, places=3),
    st.integers(min_value=0, max_value=12),
)
def test_token_base_units_never_exceed_the_exact_amount(wh: int, ratio: Decimal, decimals: int) -> None:
    exact = Fraction(wh, 1000) * Fraction(ratio) * 10**decimals
    units = wh_to_token_base_units(wh, ratio, decimals)
    assert units <= exact < units + 1
