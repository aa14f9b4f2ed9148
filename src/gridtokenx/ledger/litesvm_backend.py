"""The embedded backend: a durable LiteSVM (see `litesvm_engine`) behind the async `Ledger` interface."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from solders.account import Account
from solders.hash import Hash
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import Transaction, VersionedTransaction

from gridtokenx.ledger.accounts import NotATokenAccount, parse_token_account
from gridtokenx.ledger.interface import Ledger
from gridtokenx.ledger.litesvm_engine import DurableSvm, ReplayStats
from gridtokenx.ledger.packing import Limits
from gridtokenx.ledger.records import MintRecord, PlannedTx, TxStatus
from gridtokenx.ledger.writer import SerialWriter


class LiteSvmLedger(Ledger):
    backend = "litesvm"

    def __init__(
        self,
        directory: Path,
        authority: Keypair,
        fee_payer: Keypair,
        *,
        snapshot_every: int = 1000,
        snapshot_on_close: bool = True,
        read_only: bool = False,
    ) -> None:
        """`read_only` replays the committed log into memory without taking the writer's lock.

        `snapshot_on_close=False` leaves the log tail for the next start to replay.
        """
        super().__init__(authority, fee_payer)
        self.directory = directory
        self._engine = DurableSvm(
            directory,
            fee_payer,
            snapshot_every=snapshot_every,
            snapshot_on_close=snapshot_on_close,
            read_only=read_only,
            known_signers=(authority,),
        )
        self._writer = SerialWriter(self._engine.commit, self._engine.abandon, name="ledger-writer")
        self._limits = Limits()

    async def start(self) -> None:
        self._writer.start()
        try:
            await self._writer.call(self._engine.open)
        except BaseException:
            self._writer.stop()
            raise

    async def close(self) -> None:
        try:
            await self._writer.call(self._engine.close)
        finally:
            self._writer.stop()

    @property
    def replay_stats(self) -> ReplayStats:
        return self._engine.replay

    @property
    def log_position(self) -> int:
        return self._engine.log.last_pos

    @property
    def snapshot_position(self) -> int:
        return self._engine.snapshot_pos

    def limits(self) -> Limits:
        return self._limits

    async def _execute(
        self, plan: Sequence[PlannedTx], key: str | None, plan_fingerprint: bytes
    ) -> list[Signature]:
        return await self._writer.call(lambda: self._engine.execute(plan, key, plan_fingerprint))

    async def get_multiple_accounts(self, addresses: Sequence[Pubkey]) -> list[Account | None]:
        return await self._writer.call(lambda: self._engine.accounts(addresses))

    async def minimum_balance(self, size: int) -> int:
        return await self._writer.call(lambda: self._engine.svm.minimum_balance_for_rent_exemption(size))

    async def get_balance(self, address: Pubkey) -> int:
        return await self._writer.call(lambda: self._engine.balance(address))

    async def get_token_account_balance(self, account: Pubkey) -> int | None:
        (found,) = await self.get_multiple_accounts([account])
        if found is None:
            return None
        try:
            return parse_token_account(account, found).amount
        except NotATokenAccount:
            return None

    async def airdrop(self, address: Pubkey, lamports: int) -> None:
        await self._writer.call(lambda: self._engine.airdrop(address, lamports))

    async def latest_blockhash(self) -> tuple[Hash, int]:
        return await self._writer.call(self._engine.latest_blockhash)

    async def send_transaction(self, tx: Transaction | VersionedTransaction) -> Signature:
        return await self._writer.call(lambda: self._engine.send_signed(tx))

    async def get_signature_status(self, signature: Signature) -> TxStatus | None:
        return await self._writer.call(lambda: self._engine.status(signature))

    async def mints(self) -> list[MintRecord]:
        return await self._writer.call(self._engine.registry.mints)

    async def _register_mint(self, record: MintRecord) -> None:
        await self._writer.call(lambda: self._engine.register_mint(record))

    # ---- embedded-only administration ------------------------------------------------------------
    async def snapshot(self) -> int:
        """Write a snapshot now; returns the log position it covers."""
        return await self._writer.call(self._engine.snapshot)

    async def add_program(self, program_id: Pubkey, elf: bytes) -> None:
        """Deploy a prebuilt program (.so); it is logged and loaded again on every restart."""
        await self._writer.call(lambda: self._engine.add_program(program_id, elf))

    async def unix_timestamp(self) -> int:
        """The chain clock, which follows wall time (LiteSVM alone would start at 1970)."""
        return await self._writer.call(lambda: self._engine.svm.get_clock().unix_timestamp)

    async def state(self) -> dict[Pubkey, Account]:
        """Every account owned by the programs in use: what a restart must reproduce exactly."""
        return await self._writer.call(self._engine.state)
