"""The embedded ledger survives restarts and crashes with every account identical."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from solders.account import Account
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import Message
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer
from solders.transaction import Transaction
from spl.memo.constants import MEMO_PROGRAM_ID
from spl.token.constants import TOKEN_PROGRAM_ID

from gridtokenx.core.settings import load_settings
from gridtokenx.ledger.errors import LedgerUnavailable, ReplayDivergence, TransactionFailed
from gridtokenx.ledger.factory import build_ledger
from gridtokenx.ledger.litesvm_backend import LiteSvmLedger
from gridtokenx.ledger.litesvm_engine import DB_NAME
from gridtokenx.ledger.records import CertificateMetadata, TransferLeg


def open_ledger(
    directory: Path, authority: Keypair, fee_payer: Keypair, **options: bool | int
) -> LiteSvmLedger:
    snapshot_every = int(options.get("snapshot_every", 1000))
    snapshot_on_close = bool(options.get("snapshot_on_close", True))
    read_only = bool(options.get("read_only", False))
    return LiteSvmLedger(
        directory,
        authority,
        fee_payer,
        snapshot_every=snapshot_every,
        snapshot_on_close=snapshot_on_close,
        read_only=read_only,
    )


@dataclass
class Day:
    energy: Pubkey
    money: Pubkey
    certificate: Pubkey
    users: list[Keypair]


async def busy_day(ledger: LiteSvmLedger) -> Day:
    """A bit of everything the platform does, including a transaction that fails on chain."""
    energy = await ledger.ensure_mint("energy", 9)
    money = await ledger.create_mint(6, token_program=TOKEN_PROGRAM_ID, label="money")
    users = [Keypair() for _ in range(25)]
    await ledger.mint_to(
        energy, [(u.pubkey(), 1_000 + i) for i, u in enumerate(users)], idempotency_key="o:1"
    )
    await ledger.mint_to(money, [(users[0].pubkey(), 5_000)])
    await ledger.transfer_atomic(
        [
            TransferLeg(energy, users[1], users[0].pubkey(), 300),
            TransferLeg(money, users[0], users[1].pubkey(), 70),
        ]
    )
    await ledger.burn_checked(energy, users[2], 2)
    with pytest.raises(TransactionFailed):
        await ledger.transfer_checked(energy, users[3], users[4].pubkey(), 10**9)
    issued = await ledger.issue_certificate(
        CertificateMetadata("REC", "GREC", "u", (("k", "v"),)), users[5].pubkey()
    )
    await ledger.transfer_certificate(issued.mint, users[5], users[6].pubkey())
    await ledger.airdrop(users[7].pubkey(), 12_345)
    return Day(energy=energy, money=money, certificate=issued.mint, users=users)


async def test_restart_replays_snapshot_and_tail_to_identical_state(tmp_path: Path) -> None:
    authority, fee_payer = Keypair(), Keypair()
    late = Keypair().pubkey()
    async with open_ledger(
        tmp_path, authority, fee_payer, snapshot_every=7, snapshot_on_close=False
    ) as ledger:
        day = await busy_day(ledger)
        minted = await ledger.mint_to(day.energy, [(late, 9)], idempotency_key="o:2")
        before = await ledger.state()
        written = ledger.log_position

    async with open_ledger(tmp_path, authority, fee_payer) as reopened:
        stats = reopened.replay_stats
        assert 0 < stats.snapshot_pos < written
        assert stats.replayed == written - stats.snapshot_pos > 0
        assert await reopened.state() == before
        # Keys and the signature index are durable too: a retry is recognised, not re-minted.
        assert await reopened.mint_to(day.energy, [(late, 9)], idempotency_key="o:2") == minted
        assert await reopened.get_token_balance(late, day.energy) == 9
        status = await reopened.get_signature_status(minted[0])
        assert status is not None and status.ok


async def test_restart_compares_every_balance_and_supply(tmp_path: Path) -> None:
    authority, fee_payer = Keypair(), Keypair()
    async with open_ledger(tmp_path, authority, fee_payer, snapshot_every=5) as ledger:
        day = await busy_day(ledger)
        mints = [day.energy, day.money, day.certificate]
        balances = {
            (u.pubkey(), m): await ledger.get_token_balance(u.pubkey(), m) for u in day.users for m in mints
        }
        supplies = {m: await ledger.get_supply(m) for m in mints}
        lamports = {u.pubkey(): await ledger.get_balance(u.pubkey()) for u in day.users}

    async with open_ledger(tmp_path, authority, fee_payer) as reopened:
        assert {k: await reopened.get_token_balance(*k) for k in balances} == balances
        assert {m: await reopened.get_supply(m) for m in supplies} == supplies
        assert {k: await reopened.get_balance(k) for k in lamports} == lamports
        assert sum(balances[(u.pubkey(), day.energy)] for u in day.users) == supplies[day.energy]
        assert [r.label for r in await reopened.mints()] == ["energy", "money"]


CHILD = textwrap.dedent(
    """
    import asyncio, json, os, sys
    from solders.keypair import Keypair
    from gridtokenx.core.settings import load_settings
    from gridtokenx.ledger.factory import build_ledger

    async def main():
        ledger = build_ledger(load_settings(data_dir=sys.argv[1], ledger_snapshot_every=4))
        await ledger.start()
        mint = await ledger.ensure_mint("energy", 9)
        owners = [Keypair().pubkey() for _ in range(30)]
        signatures = {}
        for i in range(0, 30, 3):
            batch = [(o, 100 + i) for o in owners[i:i + 3]]
            sigs = await ledger.mint_to(mint, batch, idempotency_key=f"batch:{i}")
            signatures[i] = [str(s) for s in sigs]
        if ledger.log_position == ledger.snapshot_position:  # the last batch ended on a snapshot:
            await ledger.airdrop(Keypair().pubkey(), 1)  # leave a tail to replay (supply unchanged)
        state = await ledger.state()
        with open(sys.argv[2], "w") as out:
            json.dump({
                "state": {str(k): bytes(v).hex() for k, v in state.items()},
                "owners": [str(o) for o in owners],
                "signatures": signatures,
                "tail": ledger.log_position - ledger.snapshot_position,
            }, out)
        os._exit(0)  # a crash: no close, no final snapshot, writer thread killed mid-life

    asyncio.run(main())
    """
)


async def test_crash_without_close_loses_nothing(tmp_path: Path) -> None:
    dump = tmp_path / "state.json"
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, str(tmp_path / "data"), str(dump)
    )
    assert await child.wait() == 0
    written = json.loads(dump.read_text())
    expected = {
        Pubkey.from_string(k): Account.from_bytes(bytes.fromhex(v)) for k, v in written["state"].items()
    }
    owners = [Pubkey.from_string(o) for o in written["owners"]]

    async with build_ledger(load_settings(data_dir=str(tmp_path / "data"))) as reopened:
        assert isinstance(reopened, LiteSvmLedger)
        # the tail after the last periodic snapshot, as the crashed writer left it
        assert written["tail"] > 0 and reopened.replay_stats.replayed == written["tail"]
        assert await reopened.state() == expected
        mint = await reopened.ensure_mint("energy", 9)
        total = sum(3 * (100 + i) for i in range(0, 30, 3))
        assert await reopened.get_supply(mint) == total
        for i in range(0, 30, 3):  # every batch's key survived the crash: retries mint nothing more
            retry = await reopened.mint_to(
                mint, [(o, 100 + i) for o in owners[i : i + 3]], idempotency_key=f"batch:{i}"
            )
            assert [str(s) for s in retry] == written["signatures"][str(i)]
        assert await reopened.get_supply(mint) == total


async def test_identical_resend_after_restart_is_recognised_not_replayed(tmp_path: Path) -> None:
    authority, fee_payer, sender, receiver = Keypair(), Keypair(), Keypair(), Keypair()
    async with open_ledger(tmp_path, authority, fee_payer) as ledger:
        await ledger.airdrop(sender.pubkey(), 10**9)
        blockhash, _ = await ledger.latest_blockhash()
        message = Message(
            [
                transfer(
                    TransferParams(
                        from_pubkey=sender.pubkey(), to_pubkey=receiver.pubkey(), lamports=1_000_000
                    )
                )
            ],
            sender.pubkey(),
        )
        tx = Transaction([sender], message, blockhash)
        await ledger.send_transaction(tx)

    async with open_ledger(tmp_path, authority, fee_payer) as reopened:
        # LiteSVM's blockhash sequence restarts with every instance, so the old bytes would pass its
        # own checks again; only the durable signature index stops them.
        assert (await reopened.latest_blockhash())[0] == blockhash
        assert await reopened.send_transaction(tx) == tx.signatures[0]
        assert await reopened.get_balance(receiver.pubkey()) == 1_000_000


async def test_same_request_after_restart_is_a_new_transaction(tmp_path: Path) -> None:
    authority, fee_payer, owner = Keypair(), Keypair(), Keypair().pubkey()
    async with open_ledger(tmp_path, authority, fee_payer) as ledger:
        mint = await ledger.create_mint(9, idempotency_key="m")
        first = await ledger.mint_to(mint, [(owner, 50)])

    async with open_ledger(tmp_path, authority, fee_payer) as reopened:
        second = await reopened.mint_to(mint, [(owner, 50)])
        assert second != first
        assert await reopened.get_token_balance(owner, mint) == 100


async def test_clock_follows_wall_time_across_restarts(tmp_path: Path) -> None:
    authority, fee_payer = Keypair(), Keypair()
    async with open_ledger(tmp_path, authority, fee_payer) as ledger:
        await ledger.create_mint(9)
        assert abs(await ledger.unix_timestamp() - time.time()) <= 2

    async with open_ledger(tmp_path, authority, fee_payer) as reopened:
        assert abs(await reopened.unix_timestamp() - time.time()) <= 2


async def test_one_writer_per_directory_while_read_only_inspection_works(tmp_path: Path) -> None:
    authority, fee_payer = Keypair(), Keypair()
    async with open_ledger(tmp_path, authority, fee_payer) as ledger:
        mint = await ledger.create_mint(9)
        await ledger.mint_to(mint, [(Keypair().pubkey(), 77)])

        with pytest.raises(LedgerUnavailable):
            async with open_ledger(tmp_path, authority, fee_payer):
                pass
        async with open_ledger(tmp_path, authority, fee_payer, read_only=True) as inspector:
            assert await inspector.get_supply(mint) == 77
            with pytest.raises(LedgerUnavailable):
                await inspector.mint_to(mint, [(Keypair().pubkey(), 1)])


async def test_a_log_that_does_not_replay_as_recorded_is_refused(tmp_path: Path) -> None:
    authority, fee_payer = Keypair(), Keypair()
    async with open_ledger(tmp_path, authority, fee_payer, snapshot_on_close=False) as ledger:
        mint = await ledger.create_mint(9)
        await ledger.mint_to(mint, [(Keypair().pubkey(), 1)])
    with sqlite3.connect(tmp_path / DB_NAME) as conn:
        conn.execute("UPDATE log SET ok = 0 WHERE pos = (SELECT MAX(pos) FROM log WHERE kind = 'tx')")

    with pytest.raises(ReplayDivergence):
        async with open_ledger(tmp_path, authority, fee_payer):
            pass
    with sqlite3.connect(tmp_path / DB_NAME) as conn:  # repaired, it opens: the failed start let go of it
        conn.execute("UPDATE log SET ok = 1 WHERE pos = (SELECT MAX(pos) FROM log WHERE kind = 'tx')")
    async with open_ledger(tmp_path, authority, fee_payer) as reopened:
        assert reopened.replay_stats.transactions >= 2


async def test_added_programs_are_loaded_again_on_restart(tmp_path: Path) -> None:
    authority, fee_payer = Keypair(), Keypair()
    memo_program = LiteSVM().get_account(MEMO_PROGRAM_ID)
    assert memo_program is not None
    program_id = Pubkey.new_unique()
    async with open_ledger(tmp_path, authority, fee_payer, snapshot_every=2) as ledger:
        await ledger.add_program(program_id, bytes(memo_program.data))
        await ledger.submit([Instruction(program_id, b"first", [])])
        await ledger.create_mint(9)  # pushes a snapshot past the add_program entry
        assert ledger.snapshot_position > 1

    async with open_ledger(tmp_path, authority, fee_payer) as reopened:
        signature = await reopened.submit([Instruction(program_id, b"after restart", [])])
        status = await reopened.get_signature_status(signature)
        assert status is not None and status.ok


async def test_concurrent_callers_share_commits_and_lose_nothing(tmp_path: Path) -> None:
    async with open_ledger(tmp_path, Keypair(), Keypair()) as ledger:
        mint = await ledger.create_mint(9)
        owners = [Keypair().pubkey() for _ in range(40)]
        await ledger.create_associated_token_accounts(mint, owners)

        results = await asyncio.gather(
            *(ledger.mint_to(mint, [(o, 10 + i)], idempotency_key=f"c:{i}") for i, o in enumerate(owners))
        )

        assert len({sig for sigs in results for sig in sigs}) == len(owners)
        assert await ledger.get_supply(mint) == sum(10 + i for i in range(len(owners)))
