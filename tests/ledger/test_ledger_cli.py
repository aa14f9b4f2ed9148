"""`gridtokenx ledger info` and `gridtokenx ledger snapshot` against a temporary data directory."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from solders.keypair import Keypair
from typer.testing import CliRunner

from gridtokenx.core.settings import get_settings, load_settings
from gridtokenx.ledger.cli import app
from gridtokenx.ledger.factory import build_ledger
from gridtokenx.ledger.keypairs import load_keypair, save_keypair
from gridtokenx.ledger.litesvm_backend import LiteSvmLedger
from gridtokenx.ledger.litesvm_engine import DB_NAME
from gridtokenx.ledger.local_rpc import LiteSvmRpcServer

runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GRIDTOKENX_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


async def mint_energy(data_dir: Path) -> int:
    async with build_ledger(load_settings(data_dir=str(data_dir))) as ledger:
        mint = await ledger.ensure_mint("energy", 9)
        await ledger.mint_to(mint, [(Keypair().pubkey(), 1_500_000_000)])
        assert isinstance(ledger, LiteSvmLedger)
        return ledger.log_position


def test_info_on_a_fresh_directory_generates_keys_and_shows_the_backend(data_dir: Path) -> None:
    result = runner.invoke(app, ["info"])

    assert result.exit_code == 0, result.output
    authority = load_keypair(data_dir / "ledger" / "authority.json")
    assert "litesvm" in result.output
    assert str(authority.pubkey()) in result.output


def test_info_lists_mints_with_supply(data_dir: Path) -> None:
    asyncio.run(mint_energy(data_dir))

    result = runner.invoke(app, ["info"])

    assert result.exit_code == 0, result.output
    assert "energy" in result.output
    assert "1.500000000 (1500000000 base units)" in result.output


def test_snapshot_reports_the_log_position_it_covers(data_dir: Path) -> None:
    position = asyncio.run(mint_energy(data_dir))

    result = runner.invoke(app, ["snapshot"])

    assert result.exit_code == 0, result.output
    with sqlite3.connect(data_dir / "ledger" / DB_NAME) as conn:
        (logged,) = conn.execute("SELECT MAX(pos) FROM log").fetchone()
        (snapshotted,) = conn.execute("SELECT MAX(pos) FROM snapshots").fetchone()
    assert logged == snapshotted >= position  # opening may log a clock tick first
    assert f"snapshot written at log position {logged}" in result.output


def test_rpc_backend_info_and_snapshot_refusal(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    authority = Keypair()
    save_keypair(data_dir / "ledger" / "authority.json", authority)
    with LiteSvmRpcServer() as server:
        url = server.url
        monkeypatch.setenv("GRIDTOKENX_LEDGER_BACKEND", "rpc")
        monkeypatch.setenv("GRIDTOKENX_SOLANA_RPC_URL", url)
        get_settings.cache_clear()

        info = runner.invoke(app, ["info"])
        snapshot = runner.invoke(app, ["snapshot"])

    assert info.exit_code == 0, info.output
    assert "rpc" in info.output and url in info.output and str(authority.pubkey()) in info.output
    assert snapshot.exit_code != 0
    assert "embedded backend" in snapshot.output
