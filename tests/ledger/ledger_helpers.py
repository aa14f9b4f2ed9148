"""Helpers shared by the ledger tests (imported by module name: tests/ledger has no package)."""

from __future__ import annotations

from pathlib import Path

from solders.keypair import Keypair

from gridtokenx.ledger.rpc_backend import RpcLedger

SOL = 1_000_000_000


def fast_rpc_ledger(
    url: str,
    directory: Path,
    authority: Keypair,
    fee_payer: Keypair,
    *,
    send_timeout: float = 10.0,
    read_timeout: float = 5.0,
) -> RpcLedger:
    """An RPC ledger with timings scaled to the test server's 10 ms blocks."""
    return RpcLedger(
        url,
        authority,
        fee_payer,
        directory,
        request_timeout=0.3,
        send_timeout=send_timeout,
        read_timeout=read_timeout,
        poll_interval=0.01,
        rebroadcast_interval=0.05,
    )
