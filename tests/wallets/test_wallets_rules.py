"""Exact decimal strings of token amounts (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridtokenx.wallets.rules import base_units_to_decimal
from gridtokenx.wallets.sealing import Sealer, WalletKeyError, parse_key


@pytest.mark.parametrize(
    ("amount", "decimals", "text"),
    [(1_500_000_000, 9, "1.5"), (7, 0, "7"), (1, 9, "0.000000001"), (0, 6, "0"), (-25, 1, "-2.5")],
)
def test_decimal_strings(amount: int, decimals: int, text: str) -> None:
    assert base_units_to_decimal(amount, decimals) == text


@given(st.integers(min_value=-(10**30), max_value=10**30), st.integers(min_value=0, max_value=18))
def test_decimal_string_round_trips_exactly(amount: int, decimals: int) -> None:
    from fractions import Fraction

    assert Fraction(base_units_to_decimal(amount, decimals)) * 10**decimals == amount


def test_sealed_seed_opens_only_with_its_key() -> None:
    key, other = bytes(range(32)), bytes(32)
    sealed = Sealer(key).seal(b"s" * 32)
    assert Sealer(key).open(sealed) == b"s" * 32
    with pytest.raises(WalletKeyError):
        Sealer(other).open(sealed)


def test_key_parsing_accepts_hex_and_base64_of_32_bytes() -> None:
    import base64

    key = bytes(range(32))
    assert parse_key(key.hex()) == key
    assert parse_key(base64.b64encode(key).decode()) == key
    assert parse_key(base64.urlsafe_b64encode(key).decode().rstrip("=")) == key
    from gridtokenx.core.settings import SettingsError

    with pytest.raises(SettingsError, match="32 bytes"):
        parse_key(base64.b64encode(b"short").decode())
