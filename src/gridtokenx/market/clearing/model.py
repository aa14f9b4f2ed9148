"""Value types of the clearing engine: orders go in, a result with its certificate comes out."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True, slots=True)
class Order:
    """A limit order: buy (bid) or sell (offer) up to `quantity_wh` Wh at `limit_price` ticks/kWh or better.

    Construction checks nothing on purpose: `clear` and `verify` validate the whole book, so a bad order
    is reported by id with a `ValueError` however the book was assembled.
    """

    id: str
    quantity_wh: int
    limit_price: int
    owner: str | None = None


@dataclass(frozen=True, slots=True)
class Certificate:
    """What a third party needs to re-check a clearing in O(n) without re-solving it.

    `lower`/`upper` are the bounds L and U of rule R (None when nothing trades); `price` = L + k·(U − L).
    `marginal_bids`/`marginal_offers` are the ids (sorted) at the lowest traded bid price level and the
    highest traded offer price level, the levels that are rationed pro rata when they cannot all fill.
    `self_trade_cancelled` maps order id to the Wh withdrawn by self-trade prevention (non-zero only).
    `merkle_root` is the hex RFC 6962 Merkle tree hash of the fills sorted by order id.
    """

    lower: int | None
    upper: int | None
    price: Fraction | None
    k: Fraction
    marginal_bids: tuple[str, ...]
    marginal_offers: tuple[str, ...]
    self_trade_cancelled: dict[str, int]
    merkle_root: str


@dataclass(frozen=True, slots=True)
class ClearingResult:
    """The outcome of one uniform-price auction.

    `fills` and `payments` are keyed by order id, hold only orders that trade, and iterate in id order.
    A payment is what a buyer pays or what a seller receives, in base units of the payment currency.
    """

    price: Fraction | None
    volume_wh: int
    fills: dict[str, int]
    payments: dict[str, int]
    certificate: Certificate
