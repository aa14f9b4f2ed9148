"""Every setting of the platform, read once from the environment (and an optional `.env`).

Names are `GRIDTOKENX_*`; the original platform's documented names (`DATABASE_URL`,
`TOKENIZATION_*`, `MQTT_*`, ...) are accepted too so its deployments keep working.
Defaults are the safe embedded set-up: SQLite under `./var/`, in-process bus, LiteSVM ledger.
"""

from __future__ import annotations

import os
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PREFIX = "GRIDTOKENX_"


def env(name: str, *legacy: str, **kwargs: Any) -> Any:
    """A field read from `GRIDTOKENX_<NAME>` or, failing that, from the legacy names."""
    return Field(validation_alias=AliasChoices(PREFIX + name.upper(), *legacy), **kwargs)


class SettingsError(Exception):
    """A bad configuration value; the message is one line naming the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True
    )

    # --- runtime -----------------------------------------------------------------------------------
    environment: Literal["embedded", "distributed", "test"] = env("environment", default="embedded")
    data_dir: Path = env("data_dir", default=Path("var"))
    network_id: str = env("network_id", default="gridtokenx-localnet", min_length=1, max_length=64)
    public_base_url: str = env("public_base_url", default="http://127.0.0.1:8000")
    host: str = env("host", default="127.0.0.1")
    port: int = env("port", "PORT", default=8000, ge=1, le=65535)
    log_level: Literal["debug", "info", "warning", "error"] = env("log_level", default="info")
    log_json: bool = env("log_json", default=True)

    # --- storage -----------------------------------------------------------------------------------
    database_url: str = env("database_url", "DATABASE_URL", default="")
    database_pool_size: int = env("database_pool_size", default=10, ge=1, le=200)
    auto_migrate: bool = env("auto_migrate", default=True)
    run_duties: bool | None = env("run_duties", default=None)
    readings_retention_days: int = env("readings_retention_days", default=0, ge=0)

    # --- shared services (distributed mode) --------------------------------------------------------
    redis_url: str | None = env("redis_url", "REDIS_URL", default=None)
    mqtt_broker_host: str | None = env("mqtt_broker_host", "MQTT_BROKER_HOST", default=None)
    mqtt_broker_port: int = env("mqtt_broker_port", "MQTT_BROKER_PORT", default=1883, ge=1, le=65535)
    mqtt_use_tls: bool = env("mqtt_use_tls", "MQTT_USE_TLS", default=False)
    mqtt_username: str | None = env("mqtt_username", "MQTT_USERNAME", default=None)
    mqtt_password: str | None = env("mqtt_password", "MQTT_PASSWORD", default=None)
    mqtt_topic_prefix: str = env("mqtt_topic_prefix", default="gridtokenx", pattern=r"^[A-Za-z0-9_/-]{1,64}$")
    mqtt_shared_group: str | None = env("mqtt_shared_group", default="gridtokenx-gateways")

    # --- HTTP --------------------------------------------------------------------------------------
    cors_origins: list[str] = env("cors_origins", "CORS_ALLOWED_ORIGINS", default_factory=list)
    max_body_bytes: int = env("max_body_bytes", default=8 * 1024 * 1024, ge=1024)
    rate_limit_default: str = env("rate_limit_default", default="600/minute")
    login_rate_limit_account: str = env("login_rate_limit_account", default="5/15minutes")
    login_rate_limit_ip: str = env("login_rate_limit_ip", default="20/15minutes")

    # --- accounts ----------------------------------------------------------------------------------
    jwt_secret: str | None = env("jwt_secret", "JWT_SECRET", default=None)
    jwt_issuer: str = env("jwt_issuer", default="gridtokenx")
    access_token_ttl_seconds: int = env("access_token_ttl_seconds", default=86_400, ge=60)
    refresh_token_ttl_seconds: int = env("refresh_token_ttl_seconds", default=30 * 86_400, ge=60)
    require_email_verification: bool = env("require_email_verification", default=True)
    email_token_ttl_seconds: int = env("email_token_ttl_seconds", default=86_400, ge=60)
    wallet_nonce_ttl_seconds: int = env("wallet_nonce_ttl_seconds", default=300, ge=10)
    smtp_host: str | None = env("smtp_host", "SMTP_HOST", default=None)
    smtp_port: int = env("smtp_port", "SMTP_PORT", default=587, ge=1, le=65535)
    smtp_username: str | None = env("smtp_username", "SMTP_USERNAME", default=None)
    smtp_password: str | None = env("smtp_password", "SMTP_PASSWORD", default=None)
    smtp_from: str = env("smtp_from", "EMAIL_FROM", default="no-reply@gridtokenx.local")

    # --- wallets -----------------------------------------------------------------------------------
    wallet_encryption_key: str | None = env("wallet_encryption_key", default=None, repr=False)

    # --- ledger ------------------------------------------------------------------------------------
    ledger_backend: Literal["litesvm", "rpc"] = env("ledger_backend", default="litesvm")
    solana_rpc_url: str | None = env("solana_rpc_url", "SOLANA_RPC_URL", default=None)
    solana_commitment: Literal["processed", "confirmed", "finalized"] = env(
        "solana_commitment", default="confirmed"
    )
    solana_priority_fee_microlamports: int = env("solana_priority_fee_microlamports", default=0, ge=0)
    solana_compute_unit_limit: int = env("solana_compute_unit_limit", default=200_000, ge=0, le=1_400_000)
    ledger_snapshot_every: int = env("ledger_snapshot_every", default=1_000, ge=1)
    authority_keypair_path: Path | None = env("authority_keypair_path", "AUTHORITY_WALLET_PATH", default=None)

    # --- tokenization ------------------------------------------------------------------------------
    tokenization_kwh_to_token_ratio: Decimal = env(
        "tokenization_kwh_to_token_ratio", "TOKENIZATION_KWH_TO_TOKEN_RATIO", default=Decimal(1), gt=0
    )
    tokenization_decimals: int = env("tokenization_decimals", "TOKENIZATION_DECIMALS", default=9, ge=0, le=12)
    tokenization_auto_mint_enabled: bool = env(
        "tokenization_auto_mint_enabled", "TOKENIZATION_AUTO_MINT_ENABLED", default=True
    )
    tokenization_polling_interval_secs: float = env(
        "tokenization_polling_interval_secs", "TOKENIZATION_POLLING_INTERVAL_SECS", default=5.0, gt=0
    )
    # Rows claimed per round. The worker mints once per owner per round, so a deep queue drains in
    # few large rounds: 100 rows a round minted about 460 readings/s here, 5,000 about 3,460/s
    # (docs/benchmarks.md, mint).
    tokenization_batch_size: int = env(
        "tokenization_batch_size", "TOKENIZATION_BATCH_SIZE", default=5_000, ge=1, le=10_000
    )
    tokenization_max_reading_kwh: Decimal = env(
        "tokenization_max_reading_kwh", "TOKENIZATION_MAX_READING_KWH", default=Decimal(100), gt=0
    )
    tokenization_reading_max_age_days: int = env(
        "tokenization_reading_max_age_days", "TOKENIZATION_READING_MAX_AGE_DAYS", default=7, ge=1
    )
    tokenization_max_in_flight: int = env("tokenization_max_in_flight", default=4, ge=1, le=64)
    tokenization_max_attempts: int = env("tokenization_max_attempts", default=5, ge=1)
    tokenization_backoff_base_secs: float = env("tokenization_backoff_base_secs", default=1.0, ge=0)
    tokenization_backoff_max_secs: float = env("tokenization_backoff_max_secs", default=60.0, ge=0)
    tokenization_lease_ttl_secs: float = env("tokenization_lease_ttl_secs", default=15.0, gt=0)

    # --- readings ----------------------------------------------------------------------------------
    batch_max_size: int = env("batch_max_size", "BATCH_MAX_SIZE", default=1000, ge=1, le=100_000)
    async_batch_threshold: int = env("async_batch_threshold", default=5000, ge=1)
    clock_skew_seconds: int = env("clock_skew_seconds", default=120, ge=0)

    # --- market ------------------------------------------------------------------------------------
    market_epoch_seconds: int = env(
        "market_epoch_seconds", "GRIDTOKENX_EPOCH_SECONDS", default=900, ge=60, le=3600
    )
    market_price_cap: int | None = env("market_price_cap", default=None, ge=1)
    market_price_floor: int | None = env("market_price_floor", default=None, ge=1)
    payment_mint: str | None = env("payment_mint", default=None)
    market_min_order_wh: int = env("market_min_order_wh", default=1000, ge=1)
    market_price_tick: int = env("market_price_tick", default=1, ge=1)
    market_order_rate_limit: str = env("market_order_rate_limit", default="120/minute")
    market_faucet_enabled: bool | None = env("market_faucet_enabled", default=None)
    market_faucet_max: Decimal = env("market_faucet_max", default=Decimal(10_000), gt=0)
    market_settlement_orders_per_tx: int = env("market_settlement_orders_per_tx", default=6, ge=1, le=12)

    # --- ingest durability -------------------------------------------------------------------------
    ingest_jobs_poll_seconds: float = env("ingest_jobs_poll_seconds", default=1.0, gt=0, le=60)
    # the gateway's MQTT identity: its broker session (and what queues while it is down) hangs on
    # it; default "gridtokenx-<host>-<id kept in the data dir>"
    mqtt_client_id: str | None = env("mqtt_client_id", "MQTT_CLIENT_ID", default=None, max_length=64)
    mqtt_session_expiry_seconds: int = env("mqtt_session_expiry_seconds", default=86_400, ge=0)
    mqtt_max_inflight: int = env("mqtt_max_inflight", default=200, ge=1, le=100_000)
    mqtt_batch_readings: int = env("mqtt_batch_readings", default=1000, ge=1, le=100_000)

    # --- certificates --------------------------------------------------------------------------
    erc_auto_issue: bool = env("erc_auto_issue", default=False)
    erc_period_seconds: int = env("erc_period_seconds", default=900, ge=60, le=3600)
    erc_settle_seconds: int = env("erc_settle_seconds", default=3600, ge=0)
    erc_expiry_seconds: int = env("erc_expiry_seconds", default=2 * 365 * 86_400, ge=0)
    erc_lookback_hours: int = env("erc_lookback_hours", default=24, ge=1, le=24 * 62)
    erc_technology: str = env("erc_technology", default="solar-pv", min_length=1, max_length=32)
    erc_country: str = env("erc_country", default="TH", min_length=2, max_length=8)

    # --- events ------------------------------------------------------------------------------------
    events_prefix: str = env("events_prefix", default="gridtokenx:events", pattern=r"^[A-Za-z0-9:_-]{1,64}$")
    events_replay_size: int = env("events_replay_size", default=10_000, ge=10, le=1_000_000)
    ws_send_queue: int = env("ws_send_queue", default=1_000, ge=1, le=100_000)
    ws_ping_interval_seconds: float = env("ws_ping_interval_seconds", default=20.0, gt=0)
    cache_enabled: bool = env("cache_enabled", default=True)
    cache_prefix: str = env("cache_prefix", default="gridtokenx:cache", pattern=r"^[A-Za-z0-9:_-]{1,64}$")
    metrics_port: int | None = env("metrics_port", default=None, ge=1, le=65535)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_csv(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip().startswith("["):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        """Accept the plain URLs the original platform documented and pick the async drivers."""
        if value.startswith(("postgres://", "postgresql://")):
            return "postgresql+asyncpg://" + value.split("://", 1)[1]
        if value.startswith("sqlite:///"):
            return "sqlite+aiosqlite:///" + value.removeprefix("sqlite:///")
        if value and not value.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
            raise ValueError("must be a postgresql:// or sqlite:/// URL")
        return value

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'gridtokenx.db'}"

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    @property
    def duties_in_gateway(self) -> bool:
        """Whether `serve` also runs the leased background duties: yes when embedded (one process
        owns the embedded ledger), no in distributed mode where `gridtokenx worker` runs them,
        unless `GRIDTOKENX_RUN_DUTIES` says otherwise."""
        if self.run_duties is not None:
            return self.run_duties
        return self.environment != "distributed"

    @property
    def ledger_dir(self) -> Path:
        return self.data_dir / "ledger"


def _variable_named(loc: tuple[Any, ...]) -> str:
    """The environment variable behind a failing field: the one actually set, else the primary name."""
    key = str(loc[0]) if loc else "?"
    for name, info in Settings.model_fields.items():
        alias = info.validation_alias
        choices = [str(c) for c in alias.choices] if isinstance(alias, AliasChoices) else []
        if key == name or key in choices:
            for choice in choices:
                if choice in os.environ or choice.lower() in os.environ:
                    return choice
            return choices[0] if choices else PREFIX + name.upper()
    return key


def load_settings(**overrides: Any) -> Settings:
    """Build settings, turning a validation failure into one line that names the variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise SettingsError(
            f"invalid configuration: {_variable_named(first['loc'])}: {first['msg']}"
        ) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
