"""A LiteSVM that survives restarts: every change goes through the log, restart = snapshot + replay.

Synchronous and single-threaded by design: the async backend runs it on one writer thread and
calls `commit()` once per batch of jobs, so results are only released once they are durable.
State changes come from four places only, each logged before its batch commits:
- transactions that reached the SVM (success, or failure with the fee charged);
- credits of lamports ("airdrop"), applied with set_account so replay is deterministic;
- clock updates that keep `unix_timestamp` on wall time;
- programs added with add_program.
A crash before a commit loses the in-memory effects and their log rows together.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from solders.account import Account
from solders.clock import Clock
from solders.hash import Hash
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import ID as SYSTEM_PROGRAM_ID
from solders.transaction import Transaction, VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata, TransactionMetadata
from spl.token.constants import TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID

from gridtokenx.ledger import snapshot as snapshots
from gridtokenx.ledger.errors import BlockhashExpired, LedgerUnavailable, ReplayDivergence, TransactionFailed
from gridtokenx.ledger.records import Commitment, MintRecord, PlannedTx, TxStatus
from gridtokenx.ledger.registry import Registry, open_database
from gridtokenx.ledger.signing import TransactionSigner
from gridtokenx.ledger.txlog import Entry, EntryKind, TxLog

LAMPORTS_PER_SOL = 1_000_000_000
FEE_PAYER_FLOOR = 10 * LAMPORTS_PER_SOL
FEE_PAYER_TOP_UP = 1_000 * LAMPORTS_PER_SOL
BLOCKHASH_VALIDITY = 150

BASE_OWNERS = (SYSTEM_PROGRAM_ID, TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID)
# Owners whose accounts are programs or runtime state: recreated by LiteSVM or by add_program replay.
NOT_SNAPSHOTTED = frozenset(
    Pubkey.from_string(key)
    for key in (
        "NativeLoader1111111111111111111111111111111",
        "BPFLoader1111111111111111111111111111111111",
        "BPFLoader2111111111111111111111111111111111",
        "BPFLoaderUpgradeab1e11111111111111111111111",
        "LoaderV411111111111111111111111111111111111",
        "Sysvar1111111111111111111111111111111111111",
        "Feature111111111111111111111111111111111111",
    )
)

DB_NAME = "ledger.sqlite3"
LOCK_NAME = "ledger.lock"


def _exclusive_lock(path: Path) -> int:
    """One writer per ledger directory, across processes: two in-memory SVMs would diverge."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise LedgerUnavailable(
            f"the embedded ledger in {path.parent} is in use by another process"
        ) from None
    return fd


@dataclass(frozen=True, slots=True)
class ReplayStats:
    snapshot_pos: int
    replayed: int
    transactions: int
    seconds: float


def _err_json(result: FailedTransactionMetadata) -> object:
    return json.loads(result.to_json())["err"]


class DurableSvm:
    def __init__(
        self,
        directory: Path,
        fee_payer: Keypair,
        *,
        snapshot_every: int,
        snapshot_on_close: bool = True,
        read_only: bool = False,
        known_signers: Sequence[Keypair] = (),
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = directory / DB_NAME
        self._signer = TransactionSigner(fee_payer, *known_signers)
        self._lock_path = directory / LOCK_NAME
        self._lock_fd: int | None = None
        self._snapshot_every = snapshot_every
        self._snapshot_on_close = snapshot_on_close
        self.read_only = read_only
        self._wall_clock = wall_clock
        self.svm = LiteSVM()
        self._owners: set[Pubkey] = set(BASE_OWNERS)
        self._dirty: set[Pubkey] = set()
        self._unix_time = 0
        self.snapshot_pos = 0
        self.replay = ReplayStats(0, 0, 0, 0.0)
        self._opened = False

    # ---- lifecycle -------------------------------------------------------------------------------
    def open(self) -> ReplayStats:
        """Load the newest snapshot, replay the log after it, then serve with full checks on."""
        if not self.read_only:
            self._lock_fd = _exclusive_lock(self._lock_path)
        self._conn = open_database(self.path)
        try:
            self._recover()
        except BaseException:
            self._release()
            raise
        self._opened = True
        if not self.read_only:
            self._follow_wall_clock()
            self._fund_fee_payer()
        return self.replay

    def _recover(self) -> None:
        self.log = TxLog(self._conn, read_only=self.read_only)
        self.registry = Registry(self._conn)
        started = time.perf_counter()
        latest = self.log.latest_snapshot()
        self.snapshot_pos = latest[0] if latest else 0
        if latest is not None:
            for entry in self.log.entries(0, (EntryKind.ADD_PROGRAM,), until=self.snapshot_pos):
                self._add_program(entry.payload)
            self._restore(snapshots.decode(latest[1]))
        self.svm.with_blockhash_check(False)
        self.svm.with_sigverify(False)
        replayed = transactions = 0
        for entry in self.log.entries(self.snapshot_pos):
            self._replay(entry)
            replayed += 1
            transactions += entry.kind is EntryKind.TX
        self.svm.with_blockhash_check(True)
        self.svm.with_sigverify(True)
        self._unix_time = self.svm.get_clock().unix_timestamp
        self.replay = ReplayStats(self.snapshot_pos, replayed, transactions, time.perf_counter() - started)

    def close(self) -> None:
        if not self._opened:
            return
        if not self.read_only:
            self.commit()
            if self._snapshot_on_close and self.log.last_pos > self.snapshot_pos:
                self.snapshot()
        self._release()

    def _release(self) -> None:
        self._conn.close()
        self._opened = False
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor drops the flock
            self._lock_fd = None

    def commit(self) -> None:
        """Make the batch durable; snapshot when enough entries accumulated since the last one."""
        if not self._opened or self.read_only:
            return
        self.log.commit()
        if self.log.last_pos - self.snapshot_pos >= self._snapshot_every:
            self.snapshot()

    def abandon(self) -> None:
        """Drop an uncommitted batch after a failure: the in-memory SVM is no longer trustworthy."""
        self.log.rollback()
        self._release()

    # ---- writes ----------------------------------------------------------------------------------
    def execute(self, plan: Sequence[PlannedTx], key: str | None, fingerprint: bytes) -> list[Signature]:
        """Sign and run each planned transaction; a key makes the whole plan run at most once."""
        self.log.begin()
        if key is not None:
            self.registry.claim(key, fingerprint, len(plan))
        signatures = []
        for chunk, planned in enumerate(plan):
            done = self.registry.completed(key, chunk) if key is not None else None
            if done is None:
                done = self._sign_and_run(planned)
                if key is not None:
                    self.registry.complete(key, chunk, done)
            signatures.append(done)
        return signatures

    def send_signed(self, tx: Transaction | VersionedTransaction) -> Signature:
        """Run a transaction signed elsewhere; an identical resend returns the first outcome."""
        signature = tx.signatures[0]
        known = self.log.lookup(signature)
        if known is None:
            self._follow_wall_clock()
            self._apply(tx, signature)
        elif not known.ok:
            raise TransactionFailed(signature, known.err, [], landed=True)
        return signature

    def airdrop(self, address: Pubkey, lamports: int) -> None:
        self.log.begin()
        self._credit(address, lamports)

    def add_program(self, program_id: Pubkey, elf: bytes) -> None:
        payload = bytes(program_id) + elf
        self.log.begin()
        self._add_program(payload)
        self.log.append(EntryKind.ADD_PROGRAM, payload)

    def register_mint(self, record: MintRecord) -> None:
        self.log.begin()
        self.registry.register_mint(record)

    # ---- reads -----------------------------------------------------------------------------------
    def accounts(self, addresses: Iterable[Pubkey]) -> list[Account | None]:
        return [self.svm.get_account(address) for address in addresses]

    def balance(self, address: Pubkey) -> int:
        return self.svm.get_balance(address) or 0

    def status(self, signature: Signature) -> TxStatus | None:
        known = self.log.lookup(signature)
        if known is None:
            return None
        return TxStatus(signature=signature, slot=known.pos, commitment=Commitment.FINALIZED, err=known.err)

    def latest_blockhash(self) -> tuple[Hash, int]:
        """The blockhash to sign with; the height is the log position, a stand-in for block height."""
        return self.svm.latest_blockhash(), self.log.last_pos + BLOCKHASH_VALIDITY

    def state(self) -> dict[Pubkey, Account]:
        """Every account of the owners in use, except LiteSVM's internal airdrop account."""
        self._fold_dirty()
        return dict(self._all_accounts())

    # ---- internals -------------------------------------------------------------------------------
    def _sign_and_run(self, planned: PlannedTx) -> Signature:
        self._follow_wall_clock()
        self._fund_fee_payer()
        while True:
            tx = self._signer.sign(planned.instructions, planned.signers, self.svm.latest_blockhash())
            signature = tx.signatures[0]
            if not self.log.knows(signature):
                break
            # The same instructions were signed before with this blockhash (the blockhash sequence
            # restarts with every LiteSVM): move on so a new request gets a new signature.
            self.svm.expire_blockhash()
        self._apply(tx, signature)
        return signature

    def _apply(self, tx: Transaction | VersionedTransaction, signature: Signature) -> None:
        payer = tx.message.account_keys[0]
        before = self.balance(payer)
        result = self.svm.send_transaction(tx)
        if isinstance(result, TransactionMetadata):
            self.log.append(EntryKind.TX, bytes(tx), signature=signature, ok=True)
            self._dirty.update(tx.message.account_keys)
            return
        err = _err_json(result)
        logs = list(result.meta().logs())
        if self.balance(payer) == before:
            # Refused before execution (no fee charged): nothing changed, nothing to log.
            if err == "BlockhashNotFound":
                raise BlockhashExpired(f"transaction {signature} uses an expired blockhash")
            raise TransactionFailed(signature, err, logs, landed=False)
        self.log.append(EntryKind.TX, bytes(tx), signature=signature, ok=False, err=err)
        self._dirty.update(tx.message.account_keys)
        raise TransactionFailed(signature, err, logs, landed=True)

    def _fund_fee_payer(self) -> None:
        """The embedded chain has no faucet to run dry: keep the fee payer above a floor."""
        payer = self._signer.payer_key
        if self.balance(payer) < FEE_PAYER_FLOOR:
            self.log.begin()
            self._credit(payer, FEE_PAYER_TOP_UP)

    def _credit(self, address: Pubkey, lamports: int) -> None:
        payload = bytes(address) + lamports.to_bytes(8, "little")
        self._apply_credit(payload)
        self.log.append(EntryKind.AIRDROP, payload)

    def _apply_credit(self, payload: bytes) -> None:
        address = Pubkey.from_bytes(payload[:32])
        lamports = int.from_bytes(payload[32:40], "little")
        current = self.svm.get_account(address)
        if current is None:
            updated = Account(lamports=lamports, data=b"", owner=SYSTEM_PROGRAM_ID)
        else:
            updated = Account(
                lamports=current.lamports + lamports,
                data=current.data,
                owner=current.owner,
                executable=current.executable,
                rent_epoch=current.rent_epoch,
            )
        self.svm.set_account(address, updated)
        self._dirty.add(address)

    def _follow_wall_clock(self) -> None:
        now = int(self._wall_clock())
        if now == self._unix_time:
            return
        clock = self.svm.get_clock()
        clock.unix_timestamp = now
        self.svm.set_clock(clock)
        self._unix_time = now
        self.log.append(EntryKind.SET_CLOCK, bytes(clock))

    def _add_program(self, payload: bytes) -> None:
        self.svm.add_program(Pubkey.from_bytes(payload[:32]), payload[32:])

    def _replay(self, entry: Entry) -> None:
        if entry.kind is EntryKind.TX:
            tx = VersionedTransaction.from_bytes(entry.payload)
            result = self.svm.send_transaction(tx)
            if isinstance(result, TransactionMetadata) != entry.ok:
                raise ReplayDivergence(f"log entry {entry.pos}: outcome differs on replay")
            self._dirty.update(tx.message.account_keys)
        elif entry.kind is EntryKind.AIRDROP:
            self._apply_credit(entry.payload)
        elif entry.kind is EntryKind.SET_CLOCK:
            self.svm.set_clock(Clock.from_bytes(entry.payload))
        else:
            self._add_program(entry.payload)

    def _all_accounts(self) -> Iterable[tuple[Pubkey, Account]]:
        internal = self.svm.airdrop_pubkey()
        for owner in sorted(self._owners, key=bytes):
            for address, account in self.svm.get_program_accounts(owner):
                if address != internal:
                    yield address, account

    def snapshot(self) -> int:
        """Write every account of the owners in use, tagged with the current log position."""
        self.log.commit()
        self._fold_dirty()
        body = snapshots.encode(
            snapshots.Snapshot(
                clock=self.svm.get_clock(),
                owners=tuple(sorted(self._owners, key=bytes)),
                accounts=tuple(self._all_accounts()),
            )
        )
        self.log.save_snapshot(self.log.last_pos, body)
        self.snapshot_pos = self.log.last_pos
        return self.snapshot_pos

    def _fold_dirty(self) -> None:
        """Learn the owners of accounts touched since the last look, so snapshots cover them."""
        for account in self.accounts(self._dirty):
            if account is not None and account.owner not in NOT_SNAPSHOTTED:
                self._owners.add(account.owner)
        self._dirty.clear()

    def _restore(self, snapshot: snapshots.Snapshot) -> None:
        for address, account in snapshot.accounts:
            self.svm.set_account(address, account)
        self.svm.set_clock(snapshot.clock)
        self._owners.update(snapshot.owners)
