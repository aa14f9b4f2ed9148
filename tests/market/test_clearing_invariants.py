"""The invariants every clearing must satisfy, and `verify` catching tampering.

`cleared` is the entry point the other clearing tests use: it clears, checks every invariant, checks that
the result does not depend on input order, and checks that `verify` accepts it and rejects a battery of
tampered copies.
"""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from typing import Any

import pytest

from gridtokenx.market.clearing import ClearingResult, Order, clear, verify
from gridtokenx.market.clearing.merkle import leaf_hashes, merkle_root


def cleared(bids: list[Order], offers: list[Order], **options: Any) -> ClearingResult:
    result = clear(bids, offers, **options)
    assert_invariants(bids, offers, result)
    assert clear(bids[::-1], offers[::-1], **options) == result
    assert verify(bids, offers, result) and verify(bids, offers, result, k=result.certificate.k)
    for name, forged in tampered(bids, offers, result):
        assert not verify(bids, offers, forged, k=result.certificate.k), name
    return result


def assert_invariants(bids: list[Order], offers: list[Order], result: ClearingResult) -> None:
    fills, payments, volume = result.fills, result.payments, result.volume_wh
    bought = sum(fills.get(order.id, 0) for order in bids)
    sold = sum(fills.get(order.id, 0) for order in offers)
    assert bought == sold == volume
    assert sum(fills.values()) == 2 * volume  # no fill for an id outside the book
    for order in [*bids, *offers]:
        assert 0 <= fills.get(order.id, 0) <= order.quantity_wh
    assert set(payments) == {order_id for order_id, fill in fills.items() if fill}
    paid = sum(payments.get(order.id, 0) for order in bids)
    received = sum(payments.get(order.id, 0) for order in offers)
    assert paid == received
    assert list(fills) == sorted(fills) and list(payments) == sorted(payments)
    buyers = {order.owner for order in bids if fills.get(order.id) and order.owner is not None}
    sellers = {order.owner for order in offers if fills.get(order.id) and order.owner is not None}
    assert not buyers & sellers, "an owner trades with itself"
    certificate = result.certificate
    if volume == 0:
        assert result.price is None and certificate.price is None and not payments
        return
    price = result.price
    assert isinstance(price, Fraction) and certificate.price == price
    assert certificate.lower is not None and certificate.upper is not None
    assert certificate.lower <= price <= certificate.upper
    assert price == certificate.lower + certificate.k * (certificate.upper - certificate.lower)
    for order in bids:
        assert not fills.get(order.id) or order.limit_price >= price
    for order in offers:
        assert not fills.get(order.id) or order.limit_price <= price
    assert paid == round(volume * price / 1000)
    for order_id, fill in fills.items():
        assert abs(payments[order_id] - fill * price / 1000) < 1  # floor or ceiling of the exact amount


def tampered(
    bids: list[Order], offers: list[Order], result: ClearingResult
) -> list[tuple[str, ClearingResult]]:
    """Forged copies of `result`, each wrong in one way; where possible the Merkle root is re-forged too."""
    side = {order.id: "bid" for order in bids} | {order.id: "offer" for order in offers}
    certificate = result.certificate
    forged: list[tuple[str, ClearingResult]] = [
        ("volume", replace(result, volume_wh=result.volume_wh + 1)),
        ("root", replace(result, certificate=replace(certificate, merkle_root="00" * 32))),
        ("k", replace(result, certificate=replace(certificate, k=certificate.k / 2 + Fraction(1, 7)))),
    ]

    def reroot(fills: dict[str, int], payments: dict[str, int]) -> ClearingResult:
        ids = sorted(order_id for order_id, fill in fills.items() if fill)
        root = merkle_root(
            leaf_hashes(
                [side[i] for i in ids], ids, [fills[i] for i in ids], [payments.get(i, 0) for i in ids]
            )
        )
        return replace(
            result, fills=fills, payments=payments, certificate=replace(certificate, merkle_root=root)
        )

    filled = [order_id for order_id, fill in result.fills.items() if fill]
    for order_id in filled[:3] + filled[-2:]:
        for delta in (1, -1):
            fills = dict(result.fills)
            fills[order_id] += delta
            forged.append((f"fill {order_id}{delta:+}", replace(result, fills=fills)))
            forged.append((f"fill {order_id}{delta:+} re-rooted", reroot(fills, result.payments)))
        payments = dict(result.payments)
        payments[order_id] += 1
        forged.append((f"payment {order_id}+1 re-rooted", reroot(result.fills, payments)))
    for ids in ([i for i in filled if side[i] == "bid"], [i for i in filled if side[i] == "offer"]):
        if len(ids) >= 2:
            fills, payments = dict(result.fills), dict(result.payments)
            fills[ids[0]] -= 1
            fills[ids[-1]] += 1
            forged.append(("fill moved within a side, re-rooted", reroot(fills, result.payments)))
            payments[ids[0]] -= 1
            payments[ids[-1]] += 1
            forged.append(("payment moved within a side, re-rooted", reroot(result.fills, payments)))
    unfilled = [order.id for order in [*bids, *offers] if not result.fills.get(order.id)]
    if unfilled:
        fills = dict(result.fills)
        fills[unfilled[0]] = 1
        forged.append(("fill on an unfilled order, re-rooted", reroot(fills, result.payments)))
    if result.price is not None:
        for shift in (Fraction(1, 2), Fraction(-1, 3)):
            price = result.price + shift
            forged.append((f"price {shift}", replace(result, price=price)))
            forged.append(
                (
                    f"price {shift} everywhere",
                    replace(result, price=price, certificate=replace(certificate, price=price)),
                )
            )
        assert certificate.lower is not None and certificate.upper is not None
        forged.append(
            ("lower", replace(result, certificate=replace(certificate, lower=certificate.lower - 1)))
        )
        forged.append(
            ("upper", replace(result, certificate=replace(certificate, upper=certificate.upper + 1)))
        )
        forged.append(("marginal bids", replace(result, certificate=replace(certificate, marginal_bids=()))))
        forged.append(
            ("marginal offers", replace(result, certificate=replace(certificate, marginal_offers=())))
        )
    if certificate.self_trade_cancelled:
        netted = dict(certificate.self_trade_cancelled)
        first = next(iter(netted))
        netted[first] -= 1
        forged.append(
            ("netting", replace(result, certificate=replace(certificate, self_trade_cancelled=netted)))
        )
    return forged


def _book() -> tuple[list[Order], list[Order]]:
    bids = [Order("b1", 1000, 30), Order("b2", 500, 25), Order("b3", 800, 25), Order("b4", 300, 20)]
    offers = [Order("o1", 600, 10), Order("o2", 700, 22), Order("o3", 1000, 28)]
    return bids, offers


def test_a_clean_result_passes_every_check_and_each_forgery_fails() -> None:
    bids, offers = _book()
    result = cleared(bids, offers)
    assert result.volume_wh == 1300
    assert len(tampered(bids, offers, result)) > 20


def test_verify_pins_k_when_asked() -> None:
    bids, offers = [Order("b", 100, 30)], [Order("o", 100, 10)]
    result = cleared(bids, offers)
    assert result.price == 20
    assert verify(bids, offers, result, k=Fraction(1, 2))
    assert not verify(bids, offers, result, k=Fraction(1, 3))
    repriced = clear(bids, offers, k=Fraction(1, 3))
    assert verify(bids, offers, repriced) and not verify(bids, offers, repriced, k=Fraction(1, 2))


def test_verify_rejects_a_result_of_another_book() -> None:
    bids, offers = _book()
    result = cleared(bids, offers)
    other = [*bids[:-1], Order("b4", 300, 26)]  # now outbids the 25 level
    assert not verify(other, offers, result)


def test_verify_rejects_malformed_results() -> None:
    bids, offers = _book()
    result = clear(bids, offers)
    assert result.price is not None
    float_fill = dict(result.fills)
    float_fill["b1"] = 1000.0  # type: ignore[assignment]
    assert not verify(bids, offers, replace(result, fills=float_fill))
    assert not verify(bids, offers, replace(result, price=float(result.price)))  # type: ignore[arg-type]
    assert not verify(bids, offers, replace(result, fills={**result.fills, "ghost": 0}))
    assert not verify(bids, offers, "not a result")  # type: ignore[arg-type]


def test_verify_refuses_a_malformed_book_like_clear() -> None:
    bids, offers = _book()
    result = clear(bids, offers)
    with pytest.raises(ValueError, match=r"duplicate order id 'b1'"):
        verify([*bids, Order("b1", 5, 5)], offers, result)
