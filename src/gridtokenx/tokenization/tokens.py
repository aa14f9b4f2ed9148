"""The energy token: one place that registers its mint and converts Wh into its base units."""

from __future__ import annotations

from solders.pubkey import Pubkey

from gridtokenx.core.settings import Settings
from gridtokenx.ledger.interface import Ledger
from gridtokenx.tokenization.rules import base_units_per_wh

ENERGY_LABEL = "energy"


def units_per_wh(settings: Settings) -> int:
    """Base units per Wh from TOKENIZATION_KWH_TO_TOKEN_RATIO and TOKENIZATION_DECIMALS (exact)."""
    return base_units_per_wh(settings.tokenization_kwh_to_token_ratio, settings.tokenization_decimals)


async def energy_mint(ledger: Ledger, settings: Settings) -> Pubkey:
    """The energy token's mint, created on first use and listed by the wallet balances."""
    return await ledger.ensure_mint(ENERGY_LABEL, settings.tokenization_decimals)
