"""Exact energy and token unit conversion.

Energy is stored and computed as integer watt-hours (Wh); token amounts as integer base units.
Decimal kWh exist only at the API edge, so these functions are the one place where a decimal
becomes an integer, each with a single documented rounding rule:

- kWh -> Wh: round to the nearest Wh, ties to even (banker's rounding). Unbiased over many
  readings, and identical for every caller, so a resend of the same text always gives the same Wh.
- Wh -> token base units: round toward zero (floor for the non-negative amounts we mint), so a
  conversion never creates more tokens than the energy behind them.

Floats are refused everywhere: `0.1` as a binary float is not 0.1 kWh.
"""

from __future__ import annotations

import re
from decimal import Decimal
from fractions import Fraction

WH_PER_KWH = 1000
# One terawatt-hour: far above any meter reading, low enough to keep every Wh value a small int.
MAX_ABS_KWH = Decimal(10) ** 9
# Significant digits accepted in one number; more is never meter data, and this bounds the work.
MAX_DIGITS = 40

# The JSON number grammar (RFC 8259), so strings are held to the same syntax as numbers:
# no whitespace, underscores, "NaN" or "Infinity" (all of which Decimal() would otherwise accept).
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?\Z")


class UnitError(ValueError):
    """A value that cannot be converted exactly (float, bad syntax, non-finite, out of range)."""


def parse_decimal(value: Decimal | str | int) -> Decimal:
    """A finite Decimal from a Decimal, an int or a JSON-number string; floats and bools are refused."""
    if isinstance(value, bool) or not isinstance(value, Decimal | str | int):
        raise UnitError(f"expected a decimal number, int or numeric string, got {type(value).__name__}")
    if isinstance(value, str):
        if not _NUMBER.match(value):
            raise UnitError(f"not a decimal number: {value!r}")
        value = Decimal(value)
    number = Decimal(value)
    if not number.is_finite():
        raise UnitError("not a finite number")
    if len(number.as_tuple().digits) > MAX_DIGITS:
        raise UnitError(f"more than {MAX_DIGITS} significant digits")
    return number


def kwh_to_wh(value: Decimal | str | int) -> int:
    """Convert kWh to integer Wh exactly, rounding half to even at the whole Wh.

    `Decimal("1.2345")` -> 1234, `"1.2355"` -> 1236, `"0.0005"` -> 0, `"-2"` -> -2000.
    The sign is kept: callers decide what a negative value means.
    """
    kwh = parse_decimal(value)
    if kwh.copy_abs() > MAX_ABS_KWH:
        raise UnitError(f"{kwh} kWh is out of range (|kWh| <= {MAX_ABS_KWH})")
    if kwh.is_zero() or kwh.adjusted() < -5:  # |kWh| < 1e-4 is under 0.1 Wh: skip a huge denominator
        return 0
    return round(Fraction(kwh) * WH_PER_KWH)  # exact rational; round() on a Fraction ties to even


def wh_to_kwh(wh: int) -> Decimal:
    """Integer Wh as an exact kWh Decimal with three places: 1500 -> Decimal("1.500")."""
    if isinstance(wh, bool) or not isinstance(wh, int):
        raise UnitError(f"Wh must be an int, got {type(wh).__name__}")
    return Decimal(wh).scaleb(-3)


def wh_to_token_base_units(wh: int, ratio: Decimal | str | int = Decimal(1), decimals: int = 9) -> int:
    """Token base units for `wh` of energy, rounded down so nothing is ever over-minted.

    `ratio` is tokens per kWh, `decimals` the token's decimals: with ratio 1 and 9 decimals,
    1 Wh = 10**6 base units and 1 kWh = 10**9. Computed in integers: floor(wh * ratio * 10**decimals / 1000).
    """
    if isinstance(wh, bool) or not isinstance(wh, int):
        raise UnitError(f"Wh must be an int, got {type(wh).__name__}")
    if wh < 0:
        raise UnitError("cannot convert negative energy to tokens")
    if isinstance(decimals, bool) or not isinstance(decimals, int) or not 0 <= decimals <= 18:
        raise UnitError("decimals must be an int in 0..18")
    tokens_per_kwh = Fraction(parse_decimal(ratio))
    if tokens_per_kwh <= 0:
        raise UnitError("ratio must be positive")
    numerator = wh * tokens_per_kwh.numerator * 10**decimals
    return numerator // (WH_PER_KWH * tokens_per_kwh.denominator)
