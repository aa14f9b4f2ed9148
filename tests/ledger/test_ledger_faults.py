"""No fault of the network or the node causes a double mint or a lost mint (RPC backend)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger_helpers import SOL, fast_rpc_ledger
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature

from gridtokenx.ledger.errors import LedgerUnavailable, TransactionFailed
from gridtokenx.ledger.local_rpc import Fault, LiteSvmRpcServer
from gridtokenx.ledger.rpc_backend import DB_NAME, RpcLedger

SEND_FAULTS = list(Fault)
READ_METHODS = ["getSignatureStatuses", "getLatestBlockhash", "getBlockHeight"]


async def funded(
    server: LiteSvmRpcServer, directory: Path, authority: Keypair, fee_payer: Keypair, **timing: float
) -> RpcLedger:
    ledger = fast_rpc_ledger(server.url, directory, authority, fee_payer, **timing)
    await ledger.start()
    await ledger.airdrop(fee_payer.pubkey(), 50 * SOL)
    return ledger


async def with_holder(
    server: LiteSvmRpcServer, directory: Path, authority: Keypair, fee_payer: Keypair, **timing: float
) -> tuple[RpcLedger, Pubkey, Pubkey]:
    """A funded ledger, a 9-decimal mint and one owner with its token account."""
    ledger = await funded(server, directory, authority, fee_payer, **timing)
    mint = await ledger.create_mint(9)
    owner = Keypair().pubkey()
    await ledger.create_associated_token_accounts(mint, [owner])
    return ledger, mint, owner


def sent_rows(directory: Path) -> list[tuple[Signature, str]]:
    with sqlite3.connect(directory / DB_NAME) as conn:
        rows = conn.execute("SELECT signature, state FROM sent ORDER BY created_at").fetchall()
    return [(Signature.from_bytes(sig), state) for sig, state in rows]


def assert_each_executed_once(server: LiteSvmRpcServer, signatures: list[Signature]) -> None:
    assert [server.executions[s] for s in signatures] == [1] * len(signatures)


@pytest.mark.parametrize("fault", SEND_FAULTS)
async def test_send_faults_never_double_or_lose_a_mint(
    rpc_server: LiteSvmRpcServer, tmp_path: Path, fault: Fault
) -> None:
    ledger, mint, owner = await with_holder(rpc_server, tmp_path, Keypair(), Keypair())
    rpc_server.faults.add("sendTransaction", fault, times=2)

    signatures = await ledger.mint_to(mint, [(owner, 1_000)], idempotency_key="outbox:1")

    assert rpc_server.faults.injected[fault] >= 1  # a lost reply needs no second send: the status shows it
    assert rpc_server.supply(mint) == 1_000
    assert_each_executed_once(rpc_server, signatures)
    assert await ledger.mint_to(mint, [(owner, 1_000)], idempotency_key="outbox:1") == signatures
    assert rpc_server.supply(mint) == 1_000
    await ledger.close()


@pytest.mark.parametrize("method", READ_METHODS)
@pytest.mark.parametrize("fault", [Fault.TIMEOUT, Fault.RATE_LIMIT, Fault.MALFORMED, Fault.MALFORMED_ERROR])
async def test_faults_while_confirming_never_double_or_lose_a_mint(
    rpc_server: LiteSvmRpcServer, tmp_path: Path, method: str, fault: Fault
) -> None:
    ledger, mint, owner = await with_holder(rpc_server, tmp_path, Keypair(), Keypair())
    if method == "getBlockHeight":  # the height is only asked while the transaction is unseen
        rpc_server.faults.add("sendTransaction", Fault.DROP)
    rpc_server.faults.add(method, fault, times=3)

    signatures = await ledger.mint_to(mint, [(owner, 250)], idempotency_key="outbox:2")

    assert rpc_server.faults.injected[fault] >= 1
    assert rpc_server.supply(mint) == 250
    assert_each_executed_once(rpc_server, signatures)
    await ledger.close()


async def test_expired_blockhash_is_signed_again_only_after_proven_expiry(
    rpc_server: LiteSvmRpcServer, tmp_path: Path
) -> None:
    ledger, mint, owner = await with_holder(rpc_server, tmp_path, Keypair(), Keypair())
    rpc_server.faults.add("sendTransaction", Fault.DROP, times=10_000)  # a leader that drops everything

    async def congestion_clears() -> None:
        while rpc_server.faults.injected[Fault.DROP] < 3:
            await asyncio.sleep(0.01)
        rpc_server.expire_blockhashes()
        rpc_server.faults.clear()

    signatures, _ = await asyncio.gather(
        ledger.mint_to(mint, [(owner, 42)], idempotency_key="outbox:3"), congestion_clears()
    )

    rows = sent_rows(tmp_path)
    mint_rows = rows[-2:]
    assert [state for _, state in mint_rows] == ["expired", "landed"]
    assert rpc_server.executions[mint_rows[0][0]] == 0  # the first signature never landed
    assert signatures == [mint_rows[1][0]]
    assert rpc_server.supply(mint) == 42
    assert_each_executed_once(rpc_server, signatures)
    await ledger.close()


async def test_landed_with_lost_reply_and_expired_blockhash_is_not_signed_again(
    rpc_server: LiteSvmRpcServer, tmp_path: Path
) -> None:
    ledger, mint, owner = await with_holder(rpc_server, tmp_path, Keypair(), Keypair())
    landed_before = sum(rpc_server.executions.values())
    rpc_server.faults.add("sendTransaction", Fault.LOST_REPLY)
    rpc_server.faults.add("getSignatureStatuses", Fault.MALFORMED, times=10_000)  # blind to the landing

    async def expire_once_landed() -> None:
        while sum(rpc_server.executions.values()) == landed_before:
            await asyncio.sleep(0.01)
        rpc_server.expire_blockhashes()
        await asyncio.sleep(0.1)
        rpc_server.faults.clear()

    signatures, _ = await asyncio.gather(
        ledger.mint_to(mint, [(owner, 9)], idempotency_key="outbox:4"), expire_once_landed()
    )

    assert [state for _, state in sent_rows(tmp_path)][-1] == "landed"
    assert "expired" not in [state for _, state in sent_rows(tmp_path)]
    assert rpc_server.supply(mint) == 9
    assert_each_executed_once(rpc_server, signatures)
    await ledger.close()


async def test_timeout_then_restart_resumes_the_stored_bytes(
    rpc_server: LiteSvmRpcServer, tmp_path: Path
) -> None:
    authority, fee_payer = Keypair(), Keypair()
    first, mint, owner = await with_holder(rpc_server, tmp_path, authority, fee_payer, send_timeout=0.8)
    rpc_server.faults.add("sendTransaction", Fault.TIMEOUT, times=10_000)

    with pytest.raises(LedgerUnavailable):
        await first.mint_to(mint, [(owner, 5)], idempotency_key="outbox:5")
    await first.close()
    pending = sent_rows(tmp_path)[-1]
    assert pending[1] == "pending" and rpc_server.supply(mint) == 0
    rpc_server.faults.clear()

    second = fast_rpc_ledger(rpc_server.url, tmp_path, authority, fee_payer)
    await second.start()
    signatures = await second.mint_to(mint, [(owner, 5)], idempotency_key="outbox:5")

    assert signatures == [pending[0]]  # the same signed bytes, not a new signature
    assert rpc_server.supply(mint) == 5
    assert_each_executed_once(rpc_server, signatures)
    await second.close()


async def test_resuming_long_after_landing_finds_it_in_history(
    rpc_server: LiteSvmRpcServer, tmp_path: Path
) -> None:
    authority, fee_payer = Keypair(), Keypair()
    first, mint, owner = await with_holder(rpc_server, tmp_path, authority, fee_payer, send_timeout=0.5)
    rpc_server.faults.add("sendTransaction", Fault.LOST_REPLY)
    rpc_server.faults.add("getSignatureStatuses", Fault.MALFORMED, times=10_000)

    with pytest.raises(LedgerUnavailable):  # it landed, but this process never learnt it
        await first.mint_to(mint, [(owner, 3)], idempotency_key="outbox:6")
    await first.close()
    assert rpc_server.supply(mint) == 3
    rpc_server.faults.clear()
    rpc_server.advance(400)  # past the blockhash window and out of the recent status cache

    second = fast_rpc_ledger(rpc_server.url, tmp_path, authority, fee_payer)
    await second.start()
    signatures = await second.mint_to(mint, [(owner, 3)], idempotency_key="outbox:6")

    assert [state for _, state in sent_rows(tmp_path)][-1] == "landed"
    assert "expired" not in [state for _, state in sent_rows(tmp_path)]
    assert rpc_server.supply(mint) == 3
    assert_each_executed_once(rpc_server, signatures)
    await second.close()


async def test_preflight_refusal_keeps_the_bytes_until_they_land_or_expire(
    rpc_server: LiteSvmRpcServer, tmp_path: Path
) -> None:
    ledger = await funded(rpc_server, tmp_path, Keypair(), Keypair())
    mint = await ledger.create_mint(6)
    alice, bob = Keypair(), Keypair()
    await ledger.mint_to(mint, [(alice.pubkey(), 100)])

    with pytest.raises(TransactionFailed) as refused:
        await ledger.transfer_checked(mint, alice, bob.pubkey(), 150, idempotency_key="trade:1")
    assert not refused.value.landed and refused.value.logs
    await ledger.mint_to(mint, [(alice.pubkey(), 100)])  # now the same bytes can succeed
    signature = await ledger.transfer_checked(mint, alice, bob.pubkey(), 150, idempotency_key="trade:1")

    assert signature == refused.value.signature
    assert await ledger.get_token_balance(bob.pubkey(), mint) == 150
    assert_each_executed_once(rpc_server, [signature])
    await ledger.close()


async def test_reads_retry_through_rate_limits_and_garbage(
    rpc_server: LiteSvmRpcServer, tmp_path: Path
) -> None:
    ledger = await funded(rpc_server, tmp_path, Keypair(), Keypair())
    for fault in (Fault.RATE_LIMIT, Fault.MALFORMED, Fault.MALFORMED_ERROR, Fault.TIMEOUT):
        rpc_server.faults.add("getBalance", fault)

    assert await ledger.get_balance(ledger.fee_payer.pubkey()) == 50 * SOL
    assert rpc_server.faults.injected[Fault.MALFORMED_ERROR] == 1
    await ledger.close()


async def test_a_second_machine_with_the_same_authority_adopts_the_mint(
    rpc_server: LiteSvmRpcServer, tmp_path: Path
) -> None:
    authority = Keypair()
    first = await funded(rpc_server, tmp_path / "a", authority, Keypair())
    second = await funded(rpc_server, tmp_path / "b", authority, Keypair())

    mint = await first.ensure_mint("energy", 9)
    adopted = await second.ensure_mint("energy", 9)

    assert adopted == mint
    assert [r.address for r in await second.mints()] == [mint]
    await first.close()
    await second.close()


async def test_unreachable_node_is_reported_as_unavailable(tmp_path: Path) -> None:
    server = LiteSvmRpcServer().start()
    url = server.url
    server.stop()
    ledger = fast_rpc_ledger(url, tmp_path, Keypair(), Keypair(), read_timeout=0.3)
    await ledger.start()

    with pytest.raises(LedgerUnavailable):
        await ledger.get_balance(Pubkey.new_unique())
    await ledger.close()


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    plan=st.lists(
        st.tuples(st.sampled_from(["sendTransaction", *READ_METHODS]), st.sampled_from(list(Fault))),
        min_size=1,
        max_size=8,
    ),
    amounts=st.lists(st.integers(1, 10**12), min_size=1, max_size=4),
)
def test_random_fault_storms_mint_exactly_once(
    tmp_path_factory: pytest.TempPathFactory, plan: list[tuple[str, Fault]], amounts: list[int]
) -> None:
    async def scenario() -> None:
        directory = tmp_path_factory.mktemp("storm")
        with LiteSvmRpcServer(block_time=0.01, timeout_hold=0.6) as server:
            ledger = await funded(server, directory, Keypair(), Keypair(), send_timeout=2.0)
            mint = await ledger.create_mint(9)
            owners = [Keypair().pubkey() for _ in amounts]
            await ledger.create_associated_token_accounts(mint, owners)
            for method, fault in plan:
                server.faults.add(method, fault)
            landed: list[Signature] = []
            for i, (owner, amount) in enumerate(zip(owners, amounts, strict=True)):
                while True:  # the tokenization worker's loop: retry the same key until it lands
                    try:
                        landed += await ledger.mint_to(mint, [(owner, amount)], idempotency_key=f"outbox:{i}")
                        break
                    except LedgerUnavailable:
                        continue
            assert server.supply(mint) == sum(amounts)
            assert_each_executed_once(server, landed)
            await ledger.close()

    asyncio.run(scenario())
