"""Backend selection from settings."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from solders.compute_budget import ID as COMPUTE_BUDGET_ID
from solders.keypair import Keypair

from gridtokenx.core.settings import load_settings
from gridtokenx.ledger.errors import LedgerConfigError
from gridtokenx.ledger.factory import build_ledger
from gridtokenx.ledger.keypairs import save_keypair
from gridtokenx.ledger.litesvm_backend import LiteSvmLedger
from gridtokenx.ledger.rpc_backend import RpcLedger


def test_embedded_backend_keeps_everything_under_the_ledger_directory(tmp_path: Path) -> None:
    settings = load_settings(data_dir=str(tmp_path))

    first, second = build_ledger(settings), build_ledger(settings)

    assert isinstance(first, LiteSvmLedger) and first.directory == settings.ledger_dir
    assert first.authority == second.authority and first.fee_payer == second.fee_payer
    assert first.authority != first.fee_payer
    for name in ("authority.json", "fee-payer.json"):
        assert stat.S_IMODE((settings.ledger_dir / name).stat().st_mode) == 0o600
    assert stat.S_IMODE(settings.ledger_dir.stat().st_mode) == 0o700


def test_authority_path_setting_is_honoured(tmp_path: Path) -> None:
    authority = Keypair()
    save_keypair(tmp_path / "wallet.json", authority)

    ledger = build_ledger(
        load_settings(data_dir=str(tmp_path), authority_keypair_path=str(tmp_path / "wallet.json"))
    )

    assert ledger.authority == authority


def test_rpc_backend_needs_a_url_and_an_existing_authority(tmp_path: Path) -> None:
    with pytest.raises(LedgerConfigError, match="SOLANA_RPC_URL"):
        build_ledger(load_settings(data_dir=str(tmp_path), ledger_backend="rpc"))
    with pytest.raises(LedgerConfigError, match="not found"):
        build_ledger(load_settings(data_dir=str(tmp_path), ledger_backend="rpc", solana_rpc_url="http://x"))


def test_rpc_backend_takes_fees_and_compute_limit_from_settings(tmp_path: Path) -> None:
    authority = Keypair()
    save_keypair(tmp_path / "ledger" / "authority.json", authority)
    settings = load_settings(
        data_dir=str(tmp_path),
        ledger_backend="rpc",
        solana_rpc_url="http://127.0.0.1:8899",
        solana_priority_fee_microlamports=5_000,
        solana_compute_unit_limit=300_000,
    )

    ledger = build_ledger(settings)

    assert isinstance(ledger, RpcLedger)
    assert ledger.fee_payer == authority  # no fee-payer.json: the authority pays
    limits = ledger.limits()
    assert limits.compute_units == 300_000
    assert [i.program_id for i in limits.prefix] == [COMPUTE_BUDGET_ID, COMPUTE_BUDGET_ID]

    payer = Keypair()
    save_keypair(tmp_path / "ledger" / "fee-payer.json", payer)
    assert build_ledger(settings).fee_payer == payer
