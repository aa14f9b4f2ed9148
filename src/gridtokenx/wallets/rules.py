"""Pure formatting of token amounts: integer base units to the exact decimal string."""

from __future__ import annotations


def base_units_to_decimal(amount: int, decimals: int) -> str:
    """`1500000000, 9` -> "1.5"; `7, 0` -> "7"; exact for any size (string arithmetic, no floats)."""
    if decimals < 0:
        raise ValueError("decimals must be >= 0")
    sign = "-" if amount < 0 else ""
    whole, fraction = divmod(abs(amount), 10**decimals)
    if decimals == 0 or fraction == 0:
        return f"{sign}{whole}"
    digits = str(fraction).rjust(decimals, "0").rstrip("0")
    return f"{sign}{whole}.{digits}"
