"""Keypair files: Solana CLI JSON format, mode 0600, never in logs."""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path

import pytest
from solders.keypair import Keypair

from gridtokenx.core.settings import load_settings
from gridtokenx.ledger.errors import LedgerConfigError
from gridtokenx.ledger.factory import build_ledger
from gridtokenx.ledger.keypairs import load_keypair, load_or_create_keypair, save_keypair


def test_saved_keypair_is_cli_json_readable_by_the_owner_only(tmp_path: Path) -> None:
    keypair = Keypair()
    path = tmp_path / "keys" / "id.json"

    save_keypair(path, keypair)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == json.loads(keypair.to_json()) == list(bytes(keypair))
    assert load_keypair(path) == keypair


def test_load_or_create_generates_once(tmp_path: Path) -> None:
    first = load_or_create_keypair(tmp_path / "authority.json")
    second = load_or_create_keypair(tmp_path / "authority.json")

    assert first == second


def test_keys_readable_by_others_or_malformed_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "id.json"
    save_keypair(path, Keypair())
    path.chmod(0o644)
    with pytest.raises(LedgerConfigError, match="chmod 600"):
        load_keypair(path)

    path.chmod(0o600)
    path.write_text('{"not": "a keypair"}')
    with pytest.raises(LedgerConfigError):
        load_keypair(path)
    with pytest.raises(LedgerConfigError):
        load_keypair(tmp_path / "missing.json")


async def test_secrets_never_reach_the_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with build_ledger(load_settings(data_dir=str(tmp_path))) as ledger:
        mint = await ledger.ensure_mint("energy", 9)
        await ledger.mint_to(mint, [(Keypair().pubkey(), 5)])
        secrets = [ledger.authority, ledger.fee_payer]

    text = caplog.text
    for keypair in secrets:
        assert str(keypair) not in text
        assert keypair.secret().hex() not in text
        assert json.dumps(list(bytes(keypair))) not in text
