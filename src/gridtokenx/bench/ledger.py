"""`gridtokenx bench ledger`: minting and restart-replay speed of the embedded ledger.

Each figure is printed beside the raw LiteSVM figure for the same work, measured in the same run:
the raw side builds, packs and signs the same instructions with the same code and sends them
straight to an in-memory LiteSVM (no log, no fsync, no async hand-off, no idempotency
bookkeeping), so the ratio is the price of durability and of the interface.
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from solders.account import Account
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM_ID
from solders.transaction import Transaction, VersionedTransaction
from solders.transaction_metadata import TransactionMetadata
from spl.token.constants import TOKEN_PROGRAM_ID

from gridtokenx.ledger import instructions as ix
from gridtokenx.ledger.litesvm_backend import LiteSvmLedger
from gridtokenx.ledger.litesvm_engine import DB_NAME
from gridtokenx.ledger.packing import Limits, pack
from gridtokenx.ledger.records import PlannedTx
from gridtokenx.ledger.registry import open_database
from gridtokenx.ledger.signing import TransactionSigner
from gridtokenx.ledger.txlog import EntryKind, TxLog

TARGET_READINGS_PER_SECOND = 2_000
SINGLE_CALLS = 1_500
CONCURRENT_CALLS = 3_000
CONCURRENCY = 64
BATCH_SIZE = 1_000
BATCHES = 20
OWNERS = 1_000
MEMO = ix.reading_hash_memo(hashlib.sha256(b"bench readings").hexdigest())


@dataclass(frozen=True, slots=True)
class Figure:
    name: str
    unit: str
    ledger: float | None
    raw: float


class RawChain:
    """A bare LiteSVM with a mint and funded associated accounts, driven synchronously."""

    def __init__(self, owners: list[Pubkey]) -> None:
        self.svm = LiteSVM()
        self.payer, self.authority, mint = Keypair(), Keypair(), Keypair()
        self.svm.airdrop(self.payer.pubkey(), 10**14)
        self.signer = TransactionSigner(self.payer, self.authority)
        self.mint = mint.pubkey()
        allocate, init = ix.create_mint(
            self.payer.pubkey(), self.mint, self.svm.minimum_balance_for_rent_exemption(82), 9,
            self.authority.pubkey(), None, TOKEN_PROGRAM_ID,
        )  # fmt: skip
        self.send(self.sign([allocate, init], [mint]))
        groups = [
            PlannedTx((ix.create_ata_idempotent(self.payer.pubkey(), o, self.mint, TOKEN_PROGRAM_ID),))
            for o in owners
        ]
        for planned in pack(groups, self.payer.pubkey(), Limits()):
            self.send(self.sign(list(planned.instructions), []))
        self.destinations = [ix.associated_address(o, self.mint, TOKEN_PROGRAM_ID) for o in owners]

    def sign(
        self, instructions: list[Instruction], extra: list[Keypair], *, fresh: bool = True
    ) -> Transaction:
        if fresh:  # identical mints must not collide as duplicates
            self.svm.expire_blockhash()
        return self.signer.sign(instructions, extra, self.svm.latest_blockhash())

    def send(self, tx: Transaction | VersionedTransaction) -> None:
        result = self.svm.send_transaction(tx)
        if not isinstance(result, TransactionMetadata):
            raise RuntimeError(f"raw LiteSVM transaction failed: {result}")

    def mint_ix(self, index: int, amount: int) -> Instruction:
        destination = self.destinations[index % len(self.destinations)]
        return ix.mint_to(self.mint, destination, self.authority.pubkey(), amount, TOKEN_PROGRAM_ID)


def _rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def _timed(work: Callable[[], None]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def raw_figures(owners: list[Pubkey], progress: Progress, task: TaskID) -> dict[str, float]:
    chain = RawChain(owners)
    progress.advance(task)
    signed = [
        chain.sign([chain.mint_ix(i, 1 + i)], [chain.authority], fresh=False) for i in range(SINGLE_CALLS)
    ]

    def send_only() -> None:
        for tx in signed:
            chain.send(tx)

    send_only_seconds = _timed(send_only)
    progress.advance(task)

    def single() -> None:
        for i in range(SINGLE_CALLS):
            chain.send(chain.sign([chain.mint_ix(i, 7 + i)], [chain.authority]))

    single_seconds = _timed(single)
    progress.advance(task)
    memo = ix.memo(chain.payer.pubkey(), MEMO)

    def batched() -> None:
        for _ in range(BATCHES):
            fresh = [
                PlannedTx((chain.mint_ix(i, 1 + i % 97),), (chain.authority,)) for i in range(BATCH_SIZE)
            ]
            for planned in pack(fresh, chain.payer.pubkey(), Limits(), [memo]):
                chain.send(chain.sign(list(planned.instructions), [chain.authority]))

    batched_seconds = _timed(batched)
    progress.advance(task)
    return {
        "send_only": _rate(SINGLE_CALLS, send_only_seconds),
        "single": _rate(SINGLE_CALLS, single_seconds),
        "batched": _rate(BATCH_SIZE * BATCHES, batched_seconds),
    }


async def ledger_figures(
    directory: Path, owners: list[Pubkey], progress: Progress, task: TaskID
) -> dict[str, float]:
    authority, fee_payer = Keypair(), Keypair()
    ledger = LiteSvmLedger(directory, authority, fee_payer, snapshot_every=10**9, snapshot_on_close=False)
    async with ledger:
        mint = await ledger.create_mint(9, token_program=TOKEN_PROGRAM_ID, label="energy")
        await ledger.create_associated_token_accounts(mint, owners)
        progress.advance(task)

        started = time.perf_counter()
        for i in range(SINGLE_CALLS):
            await ledger.mint_to(mint, [(owners[i % OWNERS], 1 + i)], idempotency_key=f"single:{i}")
        single = _rate(SINGLE_CALLS, time.perf_counter() - started)
        progress.advance(task)

        semaphore = asyncio.Semaphore(CONCURRENCY)

        async def one(i: int) -> None:
            async with semaphore:
                await ledger.mint_to(mint, [(owners[i % OWNERS], 1 + i)], idempotency_key=f"concurrent:{i}")

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(CONCURRENT_CALLS)))
        concurrent = _rate(CONCURRENT_CALLS, time.perf_counter() - started)
        progress.advance(task)

        started = time.perf_counter()
        for batch in range(BATCHES):
            recipients = [(owners[i % OWNERS], 1 + i % 97) for i in range(BATCH_SIZE)]
            await ledger.mint_to(mint, recipients, memo=MEMO, idempotency_key=f"batch:{batch}")
        batched = _rate(BATCH_SIZE * BATCHES, time.perf_counter() - started)
        progress.advance(task)
    return {"single": single, "concurrent": concurrent, "batched": batched}


def raw_replay_rate(directory: Path) -> tuple[float, int]:
    """LiteSVM alone running the logged transactions (parsed beforehand), checks off as on restart."""
    conn = open_database(directory / DB_NAME)
    log = TxLog(conn, read_only=True)
    entries = [
        (
            entry.kind,
            VersionedTransaction.from_bytes(entry.payload) if entry.kind is EntryKind.TX else entry.payload,
        )
        for entry in log.entries(0)
    ]
    conn.close()
    svm = LiteSVM().with_blockhash_check(False).with_sigverify(False)
    transactions = 0
    started = time.perf_counter()
    for kind, payload in entries:
        if isinstance(payload, VersionedTransaction):
            svm.send_transaction(payload)
            transactions += 1
        elif kind is EntryKind.AIRDROP:
            address = Pubkey.from_bytes(payload[:32])
            lamports = (svm.get_balance(address) or 0) + int.from_bytes(payload[32:40], "little")
            svm.set_account(address, Account(lamports, b"", SYSTEM_PROGRAM_ID))
    return _rate(transactions, time.perf_counter() - started), transactions


async def replay_figure(directory: Path) -> tuple[float, int]:
    reopened = LiteSvmLedger(directory, Keypair(), Keypair(), read_only=True)
    async with reopened:
        stats = reopened.replay_stats
    return _rate(stats.transactions, stats.seconds), stats.transactions


async def measure(progress: Progress) -> list[Figure]:
    owners = [Keypair().pubkey() for _ in range(OWNERS)]
    raw_task = progress.add_task("raw LiteSVM", total=4)
    raw = raw_figures(owners, progress, raw_task)
    ledger_task = progress.add_task("embedded ledger", total=4)
    with tempfile.TemporaryDirectory(prefix="gridtokenx-bench-") as tmp:
        directory = Path(tmp)
        ours = await ledger_figures(directory, owners, progress, ledger_task)
        replay_task = progress.add_task("restart replay", total=2)
        replayed, transactions = await replay_figure(directory)
        progress.advance(replay_task)
        raw_replay, _ = raw_replay_rate(directory)
        progress.advance(replay_task)
    return [
        Figure("mint_to, 1 reading per call (sequential)", "readings/s", ours["single"], raw["single"]),
        Figure(
            f"mint_to, 1 reading per call ({CONCURRENCY} callers)",
            "readings/s",
            ours["concurrent"],
            raw["single"],
        ),
        Figure(
            f"mint_to, {BATCH_SIZE} readings per call, packed + memo",
            "readings/s",
            ours["batched"],
            raw["batched"],
        ),
        Figure(f"restart replay ({transactions} transactions)", "tx/s", replayed, raw_replay),
        Figure("LiteSVM send only, pre-signed (for scale)", "tx/s", None, raw["send_only"]),
    ]


def run() -> None:
    console = Console()
    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        figures = asyncio.run(measure(progress))
    table = Table(title="Ledger benchmark (embedded LiteSVM backend, durable log with fsync)")
    table.add_column("figure")
    table.add_column("unit")
    for column in ("ledger", "raw LiteSVM", "ledger / raw"):
        table.add_column(column, justify="right")
    for figure in figures:
        ours = "-" if figure.ledger is None else f"{figure.ledger:,.0f}"
        ratio = "-" if figure.ledger is None else f"{figure.ledger / figure.raw:.2f}"
        table.add_row(figure.name, figure.unit, ours, f"{figure.raw:,.0f}", ratio)
    console.print(table)
    best = max(figure.ledger or 0.0 for figure in figures if figure.unit == "readings/s")
    verdict = "met" if best >= TARGET_READINGS_PER_SECOND else "NOT met"
    console.print(
        f"target >= {TARGET_READINGS_PER_SECOND:,} readings/s minted end to end: {verdict} ({best:,.0f}/s)"
    )
