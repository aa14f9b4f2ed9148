"""The clearing engine's building blocks on their own: Merkle root, apportionment, netting check, bench."""

from __future__ import annotations

from fractions import Fraction
from hashlib import sha256

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridtokenx.bench.clearing import random_book, run
from gridtokenx.market.clearing import Order, clear
from gridtokenx.market.clearing.apportion import apportion, is_apportioned
from gridtokenx.market.clearing.book import read_book
from gridtokenx.market.clearing.merkle import leaf_hashes, merkle_root
from gridtokenx.market.clearing.selftrade import cancellations_are_valid, self_trade_cancellations


def rfc6962_root(data: list[bytes]) -> bytes:
    """RFC 6962 §2.1 Merkle Tree Hash, written recursively from the RFC text."""
    if not data:
        return sha256(b"").digest()
    if len(data) == 1:
        return sha256(b"\x00" + data[0]).digest()
    split = 1 << ((len(data) - 1).bit_length() - 1)  # largest power of two below len(data)
    return sha256(b"\x01" + rfc6962_root(data[:split]) + rfc6962_root(data[split:])).digest()


@pytest.mark.parametrize("count", [*range(18), 31, 32, 33, 100])
def test_merkle_root_is_the_rfc6962_tree_hash(count: int) -> None:
    rows = [("bid" if i % 3 else "offer", f"id|{i}", i * 7 + 1, i * 3 - 5) for i in range(count)]
    sides, ids, fills, amounts = (
        (list(column) for column in zip(*rows, strict=True)) if rows else ([], [], [], [])
    )
    expected = rfc6962_root([f"{s}|{f}|{a}|{i}".encode() for s, i, f, a in rows])
    assert merkle_root(leaf_hashes(sides, ids, fills, amounts)) == expected.hex()


def test_certificate_root_commits_to_the_sorted_fills_and_payments() -> None:
    bids = [Order("zeta", 700, 30), Order("alpha", 400, 24)]
    offers = [Order("mu", 900, 12)]
    result = clear(bids, offers)
    side = {"zeta": "bid", "alpha": "bid", "mu": "offer"}
    data = [f"{side[i]}|{result.fills[i]}|{result.payments[i]}|{i}".encode() for i in sorted(result.fills)]
    assert result.certificate.merkle_root == rfc6962_root(data).hex()
    assert clear([], []).certificate.merkle_root == sha256(b"").hexdigest()


@settings(max_examples=200, deadline=None)
@given(
    weights=st.lists(st.integers(0, 10**6), min_size=1, max_size=30),
    scale=st.integers(-(10**4), 10**4),
    denominator=st.integers(1, 5000),
    round_up=st.booleans(),
    data=st.data(),
)
def test_apportion_rounds_each_share_one_way_and_its_check_agrees(
    weights: list[int], scale: int, denominator: int, round_up: bool, data: st.DataObject
) -> None:
    ids = [f"r{i:02d}" for i in range(len(weights))]
    exact = Fraction(sum(weights) * scale, denominator)
    total = -((-exact.numerator) // exact.denominator) if round_up else exact.numerator // exact.denominator
    column = np.array(weights, dtype=np.int64)
    values = apportion(column, scale, denominator, total, ids).tolist()
    assert sum(values) == total
    for value, weight in zip(values, weights, strict=True):
        assert abs(value - Fraction(weight * scale, denominator)) < 1
    assert is_apportioned(values, column, scale, denominator, total, ids)
    row = data.draw(st.integers(0, len(weights) - 1))
    other = data.draw(st.integers(0, len(weights) - 1))
    if row != other:
        moved = list(values)
        moved[row] += 1
        moved[other] -= 1
        assert not is_apportioned(moved, column, scale, denominator, total, ids)


def test_apportion_breaks_equal_remainders_by_id_not_position() -> None:
    weights = np.array([1, 1, 1], dtype=np.int64)
    assert apportion(weights, 2, 3, 2, ["c", "a", "b"]).tolist() == [0, 1, 1]


def test_netting_check_accepts_only_the_netting() -> None:
    bids = [Order("a1", 60, 30, "A"), Order("a2", 60, 30, "A"), Order("x", 5, 99, "X")]
    offers = [Order("s", 100, 5, "A"), Order("y", 5, 1)]
    bid_side, offer_side = read_book(bids, offers, None, None)
    netted = self_trade_cancellations(bid_side, offer_side)
    assert netted == {"a1": 60, "a2": 40, "s": 100}
    assert cancellations_are_valid(bid_side, offer_side, netted)
    for forged in (
        {"a1": 40, "a2": 60, "s": 100},  # priority by id broken
        {"a1": 60, "a2": 30, "s": 90},  # stops while still crossing
        {"a1": 60, "a2": 40, "s": 100, "x": 5},  # netting an owner with one side only
        {"a1": 60, "a2": 40, "s": 100, "y": 5},  # netting an order without owner
        {"a1": 60, "a2": 40, "s": 100, "ghost": 1},
        {"a1": 60, "a2": 40},
    ):
        assert not cancellations_are_valid(bid_side, offer_side, forged), forged


def test_random_book_follows_the_benchmark_scenario() -> None:
    bids, offers = random_book(2000, seed=5)
    assert len(bids) == len(offers) == 2000
    assert {o.id for o in bids}.isdisjoint(o.id for o in offers)
    assert all(500 <= o.limit_price <= 3500 for o in bids)
    assert all(300 <= o.limit_price <= 3000 for o in offers)
    assert all(100 <= o.quantity_wh <= 5000 for o in [*bids, *offers])
    assert random_book(2000, seed=5) == (bids, offers)


def test_bench_prints_a_row_per_size(capsys: pytest.CaptureFixture[str]) -> None:
    run([300, 600], seed=1)
    printed = capsys.readouterr().out
    assert "300" in printed and "600" in printed and "brute" in printed
