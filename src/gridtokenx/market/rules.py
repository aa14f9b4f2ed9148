"""Pure market rules: exact decimal edges, order validation, escrow sizes, epochs and settlement legs.

Energy is whole Wh; a price is whole payment base units per kWh (the clearing engine's tick), so
an amount of money is Wh × price / 1000 base units. A buyer escrows the ceiling of quantity × limit,
which always covers what the engine makes it pay (at most the ceiling of fill × price with
fill ≤ quantity and price ≤ limit); the rest comes back at settlement.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum

WH_PER_KWH = 1000
ENERGY_DECIMALS = 9
ENERGY_UNITS_PER_WH = 10 ** (ENERGY_DECIMALS - 3)
PAYMENT_DECIMALS = 6
# Far above any order and below int64 once multiplied by a price.
MAX_DIGITS = 18
_DECIMAL = re.compile(r"(?:0|[1-9][0-9]*)(?:\.[0-9]+)?\Z")


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class RuleError(ValueError):
    """A refused input: `code` is the machine-readable reason, `field` the input it concerns."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


def parse_units(value: object, *, scale: int, field: str) -> int:
    """A non-negative decimal string as an integer count of 10**-scale, exactly or not at all.

    JSON numbers are refused (a float is not an exact amount); so are NaN, exponents, signs and
    digits beyond `scale` places (never rounded: 1.2345 kWh is not 1.234 kWh).
    """
    if not isinstance(value, str):
        raise RuleError("DECIMAL_STRING_REQUIRED", f'{field} must be a decimal string like "1.5"', field)
    if value.startswith("-") and _DECIMAL.match(value[1:]):
        raise RuleError("DECIMAL_NEGATIVE", f"{field} must not be negative", field)
    if not _DECIMAL.match(value) or len(value) > MAX_DIGITS + 2:
        raise RuleError("DECIMAL_INVALID", f"{field} is not a plain decimal number: {value[:40]!r}", field)
    number = Decimal(value).scaleb(scale)
    if number != number.to_integral_value():
        raise RuleError(
            "DECIMAL_TOO_PRECISE", f"{field} has more than {scale} decimal places ({value})", field
        )
    return int(number)


def format_units(amount: int, scale: int) -> str:
    """The exact decimal string of `amount` × 10**-scale: 1500, 3 -> "1.500"."""
    return str(Decimal(amount).scaleb(-scale)) if scale else str(amount)


def energy_wh(value: object) -> int:
    """kWh string -> Wh: at most three decimal places."""
    return parse_units(value, scale=3, field="energy_amount")


def price_per_kwh(value: object, decimals: int = PAYMENT_DECIMALS) -> int:
    """Currency per kWh string -> payment base units per kWh."""
    return parse_units(value, scale=decimals, field="price_per_kwh")


@dataclass(frozen=True, slots=True)
class OrderPolicy:
    min_wh: int = 1000
    tick: int = 1
    floor: int | None = None
    cap: int | None = None


SELLING_ROLES = frozenset({"prosumer", "producer", "user", "admin"})


def check_order(side: Side, role: str, quantity_wh: int, price: int, policy: OrderPolicy) -> None:
    """Raise RuleError when an order may not enter the book."""
    if side is Side.SELL and role not in SELLING_ROLES:
        raise RuleError("ROLE_CANNOT_SELL", f"a {role} account cannot sell energy", "order_type")
    if quantity_wh < policy.min_wh:
        raise RuleError(
            "ORDER_TOO_SMALL",
            f"an order needs at least {format_units(policy.min_wh, 3)} kWh",
            "energy_amount",
        )
    if price <= 0:
        raise RuleError("PRICE_NOT_POSITIVE", "price_per_kwh must be above zero", "price_per_kwh")
    if price % policy.tick:
        raise RuleError(
            "PRICE_OFF_TICK", f"price_per_kwh must be a multiple of {policy.tick} base units", "price_per_kwh"
        )
    if policy.floor is not None and price < policy.floor:
        raise RuleError("PRICE_BELOW_FLOOR", f"price is below the floor of {policy.floor}", "price_per_kwh")
    if policy.cap is not None and price > policy.cap:
        raise RuleError("PRICE_ABOVE_CAP", f"price is above the cap of {policy.cap}", "price_per_kwh")


def energy_units(wh: int) -> int:
    """Energy token base units (9 decimals, 1 token per kWh) for `wh`."""
    return wh * ENERGY_UNITS_PER_WH


def buy_escrow(quantity_wh: int, limit_price: int) -> int:
    """Payment base units a bid locks: the ceiling of quantity × limit."""
    return -(-quantity_wh * limit_price // WH_PER_KWH)


def escrow_of(side: Side, quantity_wh: int, limit_price: int) -> int:
    return energy_units(quantity_wh) if side is Side.SELL else buy_escrow(quantity_wh, limit_price)


# ---- epochs ---------------------------------------------------------------------------------------
def epoch_start(now: datetime, seconds: int) -> datetime:
    """The UTC wall-clock boundary at or before `now` (epochs of `seconds` from midnight UTC)."""
    stamp = int(now.timestamp())
    return datetime.fromtimestamp(stamp - stamp % seconds, tz=UTC)


def epoch_window(now: datetime, seconds: int) -> tuple[datetime, datetime]:
    start = epoch_start(now, seconds)
    return start, start + timedelta(seconds=seconds)


# ---- settlement -----------------------------------------------------------------------------------
class Asset(StrEnum):
    ENERGY = "energy"
    PAYMENT = "payment"


@dataclass(frozen=True, slots=True)
class Booked:
    """An order as it stood when its epoch cleared."""

    id: str
    side: Side
    owner: str  # the wallet address its escrow came from and its proceeds go to
    quantity_wh: int
    escrow: int


@dataclass(frozen=True, slots=True)
class Leg:
    """One transfer out of the platform escrow."""

    order_id: str
    asset: Asset
    to: str
    amount: int


def legs_of(order: Booked, filled_wh: int, payment: int) -> list[Leg]:
    """Everything one order's escrow becomes: its proceeds and what is left of its own deposit.

    A buyer gets its energy and the rest of its money; a seller gets paid and its unsold energy
    back. The legs of an order always add up to its escrow, so trading creates and destroys nothing.
    """
    if order.side is Side.BUY:
        moves = [(Asset.ENERGY, energy_units(filled_wh)), (Asset.PAYMENT, order.escrow - payment)]
    else:
        moves = [(Asset.PAYMENT, payment), (Asset.ENERGY, order.escrow - energy_units(filled_wh))]
    legs = [Leg(order.id, asset, order.owner, amount) for asset, amount in moves if amount]
    if any(leg.amount < 0 for leg in legs):
        raise ValueError(f"order {order.id}: settlement exceeds its escrow")
    return legs


def settlement_groups(
    orders: Sequence[Booked], fills: dict[str, int], payments: dict[str, int], per_group: int
) -> list[list[Leg]]:
    """The epoch's legs in groups of `per_group` orders (one atomic transaction each), in id order."""
    ordered = sorted(orders, key=lambda order: order.id)
    groups: list[list[Leg]] = []
    for start in range(0, len(ordered), per_group):
        legs = [
            leg
            for order in ordered[start : start + per_group]
            for leg in legs_of(order, fills.get(order.id, 0), payments.get(order.id, 0))
        ]
        if legs:
            groups.append(legs)
    return groups


def totals(legs: Iterable[Leg]) -> dict[Asset, int]:
    out = dict.fromkeys(Asset, 0)
    for leg in legs:
        out[leg.asset] += leg.amount
    return out
