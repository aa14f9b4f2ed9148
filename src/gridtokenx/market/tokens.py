"""The two tokens the market moves, and the platform escrow that holds them between order and settlement."""

from __future__ import annotations

from solders.keypair import Keypair
from solders.pubkey import Pubkey

from gridtokenx.core.errors import ApiError
from gridtokenx.core.settings import Settings, SettingsError
from gridtokenx.ledger.interface import Ledger
from gridtokenx.market.rules import ENERGY_DECIMALS, ENERGY_UNITS_PER_WH, PAYMENT_DECIMALS
from gridtokenx.tokenization import tokens as tokenization_tokens


async def energy_mint(ledger: Ledger, settings: Settings) -> Pubkey:
    """The energy token, as tokenization registers it (the one place the market learns it)."""
    return await tokenization_tokens.energy_mint(ledger, settings)


def check_energy_scale(settings: Settings) -> None:
    """The market prices and escrows energy at 1 token per kWh with 9 decimals; a platform minting
    at another ratio must not start a market that would move the wrong amounts."""
    if tokenization_tokens.units_per_wh(settings) != ENERGY_UNITS_PER_WH or (
        settings.tokenization_decimals != ENERGY_DECIMALS
    ):
        raise SettingsError(
            "invalid configuration: TOKENIZATION_KWH_TO_TOKEN_RATIO: the market trades the energy token "
            "at 1 token per kWh with 9 decimals; other ratios are not supported by the market yet"
        )


async def payment_mint(ledger: Ledger, settings: Settings) -> Pubkey:
    """The configured payment mint, or (outside distributed mode) the demo currency made on first use."""
    if settings.payment_mint:
        return Pubkey.from_string(settings.payment_mint)
    if settings.environment == "distributed":
        raise ApiError(
            "no payment mint configured (GRIDTOKENX_PAYMENT_MINT)", code="PAYMENT_MINT_UNSET", status_code=503
        )
    return await ledger.ensure_mint("payment", PAYMENT_DECIMALS)


def demo_currency(settings: Settings) -> bool:
    """Whether the platform issues the payment token itself (and so may hand some out)."""
    return not settings.payment_mint and settings.environment != "distributed"


def escrow_keypair(ledger: Ledger) -> Keypair:
    """The owner of the escrow accounts: derived from the platform authority, so never stored."""
    return ledger.derive_keypair("market-escrow", "v1")
