"""Pick and configure the ledger backend from settings at start-up."""

from __future__ import annotations

from gridtokenx.core.settings import Settings
from gridtokenx.ledger.errors import LedgerConfigError
from gridtokenx.ledger.interface import Ledger
from gridtokenx.ledger.keypairs import load_keypair, load_or_create_keypair
from gridtokenx.ledger.litesvm_backend import LiteSvmLedger
from gridtokenx.ledger.rpc_backend import RpcLedger

AUTHORITY_FILE = "authority.json"
FEE_PAYER_FILE = "fee-payer.json"


def build_ledger(settings: Settings, *, read_only: bool = False) -> Ledger:
    """A ledger ready to `start()` (or use as `async with`).

    Embedded mode generates the authority and fee-payer keypairs on first run under the ledger
    directory. RPC mode requires the authority keypair to exist; the fee payer defaults to it
    unless `fee-payer.json` is present. `read_only` opens the embedded ledger for inspection
    while another process owns it.
    """
    directory = settings.ledger_dir
    authority_path = settings.authority_keypair_path or directory / AUTHORITY_FILE
    if settings.ledger_backend == "litesvm":
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        authority = load_or_create_keypair(authority_path)
        fee_payer = load_or_create_keypair(directory / FEE_PAYER_FILE)
        return LiteSvmLedger(
            directory,
            authority,
            fee_payer,
            snapshot_every=settings.ledger_snapshot_every,
            read_only=read_only,
        )
    if not settings.solana_rpc_url:
        raise LedgerConfigError("GRIDTOKENX_SOLANA_RPC_URL must be set when GRIDTOKENX_LEDGER_BACKEND=rpc")
    authority = load_keypair(authority_path)
    fee_payer_path = directory / FEE_PAYER_FILE
    fee_payer = load_keypair(fee_payer_path) if fee_payer_path.exists() else authority
    return RpcLedger(
        settings.solana_rpc_url,
        authority,
        fee_payer,
        directory,
        commitment=settings.solana_commitment,
        priority_fee_microlamports=settings.solana_priority_fee_microlamports,
        compute_unit_limit=settings.solana_compute_unit_limit,
    )
