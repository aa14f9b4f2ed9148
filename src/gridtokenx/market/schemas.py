"""Wire types of the market: the original platform's decimal strings in, exact strings out."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class OrderIn(BaseModel):
    """`order_type` is buy or sell (the newer contract); `side` is accepted for the v1 shape, where
    `order_type` said limit. Amounts stay raw so a JSON float gets our own code, not a coercion."""

    order_type: str | None = None
    side: str | None = None
    energy_amount: Any = None
    price_per_kwh: Any = None

    @property
    def direction(self) -> str:
        if self.order_type in ("buy", "sell"):
            return self.order_type
        return self.side or self.order_type or ""


class OrderOut(BaseModel):
    id: str
    epoch_id: int
    order_type: str
    status: str
    energy_amount: str
    price_per_kwh: str
    escrow_amount: str
    filled_amount: str
    settlement_amount: str
    escrow_signature: str | None
    approval_message: str | None = Field(None, description="base64 message to sign (self-custody only)")
    created_at: str


class ApprovalIn(BaseModel):
    signature: str


class FaucetIn(BaseModel):
    amount: Any = None


class AdminFaucetIn(BaseModel):
    user_id: str
    amount: Any = None


class FaucetOut(BaseModel):
    wallet_address: str
    amount: str
    amount_base_units: str


class EpochOut(BaseModel):
    id: int
    status: str
    starts_at: str
    ends_at: str
    clearing_price: str | None
    clearing_price_exact: str | None
    volume: str
    cleared_at: str | None
    settled_at: str | None


class FillOut(BaseModel):
    order_id: str
    order_type: str
    energy_amount: str
    amount: str


class SettlementOut(BaseModel):
    id: int
    seq: int
    status: str
    signature: str | None
    attempts: int
    error: str | None


class EpochDetail(EpochOut):
    fills: list[FillOut]
    settlements: list[SettlementOut]
    certificate: dict[str, Any] | None


class VerifyOut(BaseModel):
    epoch_id: int
    valid: bool
    reason: str


class Level(BaseModel):
    price_per_kwh: str
    energy_amount: str
    orders: int


class OrderBookOut(BaseModel):
    epoch_id: int | None
    bids: list[Level]
    asks: list[Level]


class TradeOut(BaseModel):
    epoch_id: int
    order_type: str
    energy_amount: str
    price_per_kwh: str
    total: str
    executed_at: str | None


class EpochStatusOut(BaseModel):
    current: EpochOut | None
    epoch_seconds: int
    seconds_to_gate: float | None


class StatsOut(BaseModel):
    epochs_cleared: int
    total_volume: str
    total_value: str
    last_price: str | None
    open_orders: int


class AdminEpochOut(BaseModel):
    cleared_epoch_id: int | None
    settled: list[int]
    waiting: list[int]


class RetryOut(BaseModel):
    id: int
    status: str
