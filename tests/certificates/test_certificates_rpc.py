"""Certificates through the RPC ledger backend (the local LiteSVM JSON-RPC server), including a
ledger outage in the middle of an issuance: the signed transactions are kept and resent, never
signed again, and the certificate completes once the chain answers."""

from __future__ import annotations

import httpx
import pytest
from solders.pubkey import Pubkey

from gridtokenx.certificates.service import Certificates
from gridtokenx.core.context import AppContext
from gridtokenx.ledger.local_rpc import Fault, LiteSvmRpcServer
from tests.certificates.cert_helpers import (
    device_with_generation,
    holds,
    hour_start,
    issue,
    ledger_of,
    wallet,
)
from tests.helpers import bearer, error_code, user_token


@pytest.fixture
def backend() -> str:
    return "postgres"


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"erc_settle_seconds": 0}


async def test_issue_transfer_retire_through_rpc(
    rpc_client: httpx.AsyncClient, ctx: AppContext, rpc_server: LiteSvmRpcServer
) -> None:
    client = rpc_client
    start = hour_start()
    device = await device_with_generation(client, ctx, start, [300, 310])
    cert = (await issue(client, device.owner, device.meter_id, start, start + 1800)).json()
    mint = Pubkey.from_string(cert["mint"])
    assert rpc_server.supply(mint) == 1
    ledger = await ledger_of(ctx)
    owner_wallet = await wallet(client, device.owner)
    assert await holds(ledger, owner_wallet, mint) == 1

    carol = await user_token(client, ctx, "carol@example.com")
    carol_wallet = await wallet(client, carol)
    moved = await client.post(
        f"/api/erc/{cert['id']}/transfer", json={"to_wallet": str(carol_wallet)}, headers=bearer(device.owner)
    )
    assert moved.status_code == 200, moved.text
    assert (await holds(ledger, carol_wallet, mint), await holds(ledger, owner_wallet, mint)) == (1, 0)

    retired = await client.post(
        f"/api/erc/{cert['id']}/retire",
        json={"beneficiary": "Carol", "purpose": "24/7"},
        headers=bearer(carol),
    )
    assert retired.status_code == 200, retired.text
    assert rpc_server.supply(mint) == 0
    verdict = (await client.get("/api/erc/verify", params={"mint": cert["mint"]})).json()
    assert verdict["valid"] is True and verdict["supply"] == 0, verdict
    after = await client.post(
        f"/api/erc/{cert['id']}/transfer", json={"to_wallet": str(owner_wallet)}, headers=bearer(carol)
    )
    assert after.status_code == 409 and error_code(after) == "CERTIFICATE_RETIRED"
    assert all(count == 1 for count in rpc_server.executions.values())


async def test_an_outage_mid_issuance_is_resumed_without_signing_again(
    rpc_client: httpx.AsyncClient, ctx: AppContext, rpc_server: LiteSvmRpcServer
) -> None:
    client = rpc_client
    start = hour_start()
    device = await device_with_generation(client, ctx, start, [200])
    rpc_server.faults.add("sendTransaction", Fault.DROP, times=10_000)  # the chain swallows everything
    stuck = await issue(client, device.owner, device.meter_id, start, start + 900)
    assert stuck.status_code == 503 and error_code(stuck) == "LEDGER_UNAVAILABLE", stuck.text
    again = await issue(client, device.owner, device.meter_id, start, start + 900)
    assert again.status_code == 409 and error_code(again) == "CERTIFICATE_EXISTS"  # the period stays taken
    listed = (await client.get("/api/erc", params={"status": "pending"}, headers=bearer(device.owner))).json()
    [pending] = listed["items"]

    rpc_server.faults.clear()
    assert await ctx.services.get(Certificates).resume_pending() == 1
    mint = Pubkey.from_string(pending["mint"])
    assert rpc_server.supply(mint) == 1
    assert all(count == 1 for count in rpc_server.executions.values())  # nothing landed twice
    verdict = (await client.get(f"/api/erc/{pending['id']}/verify")).json()
    assert verdict["valid"] is True and verdict["status"] == "active", verdict
    assert await ctx.services.get(Certificates).resume_pending() == 0
