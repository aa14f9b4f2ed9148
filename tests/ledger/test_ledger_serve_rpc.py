"""`gridtokenx ledger serve-rpc` as a real process: it prints its URL, serves RPC, ends on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from ledger_helpers import SOL, fast_rpc_ledger
from solders.keypair import Keypair

from gridtokenx.ledger.keypairs import load_or_create_keypair

START_TIMEOUT_S = 60


@pytest.fixture
def authority(tmp_path: Path) -> Keypair:
    return load_or_create_keypair(tmp_path / "authority.json")


@pytest.fixture
def served(tmp_path: Path, authority: Keypair) -> Iterator[tuple[subprocess.Popen[str], str]]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gridtokenx.cli",
            "ledger",
            "serve-rpc",
            "--port",
            "0",
            "--block-time",
            "0.01",
            "--fund",
            str(tmp_path / "authority.json"),
            "--fund-sol",
            "7",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), (url, process.stderr and process.stderr.read())
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=START_TIMEOUT_S)


def rpc(url: str, method: str, *params: object) -> object:
    reply = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
    reply.raise_for_status()
    body = reply.json()
    assert "error" not in body, body
    return body["result"]


async def test_serve_rpc_answers_json_rpc_and_runs_the_rpc_ledger(
    served: tuple[subprocess.Popen[str], str], tmp_path: Path, authority: Keypair
) -> None:
    process, url = served

    assert rpc(url, "getHealth") == "ok"
    funded = rpc(url, "getBalance", str(authority.pubkey()))
    assert isinstance(funded, dict) and funded["value"] == 7 * SOL  # --fund: the authority can pay
    first = rpc(url, "getBlockHeight")
    assert isinstance(first, int)

    authority, fee_payer = Keypair(), Keypair()
    async with fast_rpc_ledger(url, tmp_path, authority, fee_payer) as ledger:
        await ledger.airdrop(fee_payer.pubkey(), 10 * SOL)
        mint = await ledger.ensure_mint("energy", 9)
        owner = Keypair().pubkey()
        await ledger.mint_to(mint, [(owner, 2_000_000_000)])
        assert await ledger.get_supply(mint) == 2_000_000_000

    later = rpc(url, "getBlockHeight")
    assert isinstance(later, int) and later > first  # blocks advance with time

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=START_TIMEOUT_S) == 0


def test_serve_rpc_refuses_a_port_in_use(served: tuple[subprocess.Popen[str], str]) -> None:
    _, url = served
    port = url.rsplit(":", 1)[1]

    result = subprocess.run(
        [sys.executable, "-m", "gridtokenx.cli", "ledger", "serve-rpc", "--port", port],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=START_TIMEOUT_S,
    )

    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stdout
