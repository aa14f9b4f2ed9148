"""The real-cluster backend (devnet, mainnet or a validator) over solana-py's AsyncClient.

Every transaction follows the idempotent send pattern:
1. get the latest blockhash and its last valid block height;
2. sign once and store the signature and raw bytes (SQLite, fsynced) before the first send;
3. re-send the same bytes until the status reaches the wanted commitment;
4. check the status `err` ourselves (confirm_transaction does not);
5. only once the block height is past the last valid height and the signature is unknown even
   in the full history, sign again with a fresh blockhash.
A preflight refusal leaves the record pending: the same bytes may still land from an earlier
send, so a retry re-sends them and only re-signs after proven expiry.
Transport errors, timeouts, HTTP 429 and malformed replies (including the pyo3 PanicException
solders raises on some malformed error payloads, a BaseException) are retried until a deadline,
after which LedgerUnavailable tells the caller to retry later with the same idempotency key.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
import weakref
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TypeVar

import httpx2
from solana.exceptions import SolanaRpcException
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Commitment as RpcCommitment
from solana.rpc.core import RPCException
from solana.rpc.models import TxOpts
from solders.account import Account
from solders.errors import SerdeJSONError
from solders.hash import Hash
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.rpc.errors import InvalidParamsMessage, SendTransactionPreflightFailureMessage
from solders.signature import Signature
from solders.transaction import Transaction, VersionedTransaction
from solders.transaction_status import (
    TransactionConfirmationStatus,
    TransactionErrorFieldless,
    TransactionStatus,
)

from gridtokenx.ledger.errors import BlockhashExpired, LedgerUnavailable, TransactionFailed
from gridtokenx.ledger.instructions import compute_budget
from gridtokenx.ledger.interface import Ledger
from gridtokenx.ledger.packing import MAX_COMPUTE_UNITS, Limits
from gridtokenx.ledger.records import Commitment, MintRecord, PlannedTx, TxStatus
from gridtokenx.ledger.registry import Registry, open_database
from gridtokenx.ledger.rpc_store import EXPIRED, FAILED, LANDED, PENDING, SentStore, SentTx
from gridtokenx.ledger.signing import TransactionSigner

T = TypeVar("T")
log = logging.getLogger(__name__)

DB_NAME = "rpc-ledger.sqlite3"
BLOCKHASH_VALIDITY = 150
MULTIPLE_ACCOUNTS_PAGE = 100
_RETRY_AFTER_CAP = 30.0

_LEVELS = (
    (TransactionConfirmationStatus.Processed, Commitment.PROCESSED),
    (TransactionConfirmationStatus.Confirmed, Commitment.CONFIRMED),
    (TransactionConfirmationStatus.Finalized, Commitment.FINALIZED),
)
_NOT_YET_DECIDED = (TransactionErrorFieldless.AlreadyProcessed, TransactionErrorFieldless.BlockhashNotFound)


class _Retry(Exception):
    """A transient failure of one RPC call: try again after `delay` seconds."""

    def __init__(self, reason: str, delay: float = 0.0) -> None:
        super().__init__(reason)
        self.delay = delay


class _Rejected(Exception):
    """The node answered with a definitive JSON-RPC error (e.g. invalid params)."""


def _is_decoder_panic(exc: BaseException) -> bool:
    """pyo3's PanicException cannot be imported; recognise it by name, and nothing broader."""
    return type(exc).__name__ == "PanicException" and type(exc).__module__ == "pyo3_runtime"


def _retry_after(response: httpx2.Response) -> float:
    try:
        return min(float(response.headers.get("Retry-After", "1")), _RETRY_AFTER_CAP)
    except ValueError:
        return 1.0


def _status(signature: Signature, status: TransactionStatus) -> TxStatus:
    level = status.confirmation_status
    commitment = next((ours for theirs, ours in _LEVELS if theirs == level), Commitment.FINALIZED)
    err = json.loads(status.to_json()).get("err")
    return TxStatus(signature=signature, slot=status.slot, commitment=commitment, err=err)


class RpcLedger(Ledger):
    backend = "rpc"

    def __init__(
        self,
        url: str,
        authority: Keypair,
        fee_payer: Keypair,
        directory: Path,
        *,
        commitment: str = "confirmed",
        priority_fee_microlamports: int = 0,
        compute_unit_limit: int = 200_000,
        request_timeout: float = 10.0,
        send_timeout: float = 120.0,
        read_timeout: float = 30.0,
        poll_interval: float = 0.5,
        rebroadcast_interval: float = 2.0,
    ) -> None:
        super().__init__(authority, fee_payer)
        self.url = url
        self.directory = directory
        self._commitment = Commitment.parse(commitment)
        self._rpc_commitment = RpcCommitment(commitment)
        self._limits = Limits(
            compute_units=compute_unit_limit or MAX_COMPUTE_UNITS,
            prefix=compute_budget(compute_unit_limit, priority_fee_microlamports),
        )
        self._request_timeout = request_timeout
        self._send_timeout = send_timeout
        self._read_timeout = read_timeout
        self._poll_interval = poll_interval
        self._rebroadcast_interval = rebroadcast_interval
        self._send_opts = TxOpts(
            skip_preflight=False, skip_confirmation=True, preflight_commitment=self._rpc_commitment
        )
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._rent: dict[int, int] = {}
        self._signer = TransactionSigner(fee_payer, authority)
        self._started = False

    async def start(self) -> None:
        self._conn = open_database(self.directory / DB_NAME)
        self._registry = Registry(self._conn)
        self._sent = SentStore(self._conn)
        # Transport retries stay ours (max_transport_retries=0): a resend must be a decision.
        self._client = AsyncClient(
            self.url, commitment=self._rpc_commitment, timeout=self._request_timeout, max_transport_retries=0
        )
        self._started = True

    async def close(self) -> None:
        if self._started:
            self._started = False
            await self._client.close()
            self._conn.close()

    def limits(self) -> Limits:
        return self._limits

    @property
    def pending_count(self) -> int:
        return self._sent.count(PENDING)

    # ---- one RPC call, errors classified -----------------------------------------------------------
    async def _call(self, call: Callable[[], Awaitable[T]]) -> T:
        try:
            return await call()
        except SolanaRpcException as exc:
            cause = exc.__cause__
            if isinstance(cause, httpx2.HTTPStatusError) and cause.response.status_code == 429:
                raise _Retry("rate limited (HTTP 429)", _retry_after(cause.response)) from None
            raise _Retry(f"transport error: {cause!r}") from None
        except httpx2.HTTPError as exc:
            raise _Retry(f"transport error: {exc!r}") from None
        except RPCException:
            raise
        except (SerdeJSONError, ValueError, TypeError, KeyError) as exc:
            raise _Retry(f"malformed reply: {exc}") from None
        except BaseException as exc:
            if _is_decoder_panic(exc):
                raise _Retry("malformed reply (decoder panic)") from None
            raise

    async def _retrying(self, call: Callable[[], Awaitable[T]], deadline: float) -> T:
        """Repeat a read until it answers or the deadline passes."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                return await self._call(call)
            except _Retry as exc:
                reason, delay = str(exc), exc.delay
            except RPCException as exc:
                reply = exc.args[0] if exc.args else None
                if isinstance(reply, InvalidParamsMessage):
                    raise _Rejected(reply.message) from None
                reason, delay = f"RPC error: {reply}", 0.0
            if loop.time() + self._poll_interval >= deadline:
                raise LedgerUnavailable(f"{self.url}: {reason}")
            log.debug("retrying RPC call: %s", reason)
            await asyncio.sleep(max(delay, self._poll_interval))

    async def _read(self, call: Callable[[], Awaitable[T]]) -> T:
        return await self._retrying(call, asyncio.get_running_loop().time() + self._read_timeout)

    # ---- sending -----------------------------------------------------------------------------------
    def _lock(self, key: str) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[key] = lock
        return lock

    async def _execute(
        self, plan: Sequence[PlannedTx], key: str | None, plan_fingerprint: bytes
    ) -> list[Signature]:
        key = key if key is not None else f"anonymous:{uuid.uuid4()}"
        async with self._lock(key):
            self._registry.claim(key, plan_fingerprint, len(plan))
            signatures = []
            for chunk, planned in enumerate(plan):
                done = self._registry.completed(key, chunk)
                if done is None:
                    done = await self._land(planned, key, chunk)
                    self._registry.complete(key, chunk, done)
                signatures.append(done)
            return signatures

    async def _land(self, planned: PlannedTx, key: str, chunk: int) -> Signature:
        deadline = asyncio.get_running_loop().time() + self._send_timeout
        record = self._sent.pending(key, chunk)
        while True:
            if record is None:
                record = await self._sign(planned, key, chunk, deadline)
            if await self._drive(record, deadline):
                return record.signature
            self._sent.mark(record.signature, EXPIRED)
            log.info("transaction %s expired unseen; signing again with a fresh blockhash", record.signature)
            record = None

    async def _sign(self, planned: PlannedTx, key: str, chunk: int, deadline: float) -> SentTx:
        latest = await self._retrying(
            lambda: self._client.get_latest_blockhash(self._rpc_commitment), deadline
        )
        instructions = [*self._limits.prefix, *planned.instructions]
        tx = self._signer.sign(instructions, planned.signers, latest.value.blockhash)
        record = SentTx(tx.signatures[0], key, chunk, bytes(tx), latest.value.last_valid_block_height)
        self._sent.record(record)  # durable before the first byte leaves
        return record

    async def _drive(self, record: SentTx, deadline: float) -> bool:
        """Re-send the stored bytes until they land (True) or provably expire (False)."""
        loop = asyncio.get_running_loop()
        next_send = 0.0
        while True:
            now = loop.time()
            if now >= deadline:
                raise LedgerUnavailable(
                    f"transaction {record.signature} not confirmed in time; retry with the same key to resume"
                )
            delay = self._poll_interval
            try:
                if now >= next_send:
                    next_send = now + self._rebroadcast_interval
                    await self._broadcast(record)
                status = await self._lookup(record.signature, history=False)
                if status is None and await self._height() > record.last_valid_height:
                    # Expired, or landed long ago (out of the recent status cache): history decides.
                    status = await self._lookup(record.signature, history=True)
                    if status is None:
                        return False
                if status is not None and status.commitment >= self._commitment:
                    return self._settle(record, status)
            except _Retry as exc:
                log.debug("transaction %s: %s", record.signature, exc)
                delay = max(delay, exc.delay)
            except RPCException as exc:
                log.debug("transaction %s: RPC error %s", record.signature, exc)
            await asyncio.sleep(delay)

    def _settle(self, record: SentTx, status: TxStatus) -> bool:
        if status.err is None:
            self._sent.mark(record.signature, LANDED)
            return True
        self._sent.mark(record.signature, FAILED, status.err)
        raise TransactionFailed(record.signature, status.err, [], landed=True)

    async def _broadcast(self, record: SentTx) -> None:
        try:
            await self._call(lambda: self._client.send_raw_transaction(record.raw, self._send_opts))
        except RPCException as exc:
            reply = exc.args[0] if exc.args else None
            if not isinstance(reply, SendTransactionPreflightFailureMessage):
                raise _Retry(f"sendTransaction refused: {reply}") from None
            if reply.data.err in _NOT_YET_DECIDED:
                return  # landed already, or the node lags: the status and height checks decide
            if await self._lookup(record.signature, history=True) is not None:
                return  # an earlier send landed; simulation of the resend is moot
            err = json.loads(reply.data.to_json()).get("err")
            raise TransactionFailed(
                record.signature, err, list(reply.data.logs or []), landed=False
            ) from None

    async def _height(self) -> int:
        return (await self._call(lambda: self._client.get_block_height(self._rpc_commitment))).value

    async def _lookup(self, signature: Signature, *, history: bool) -> TxStatus | None:
        resp = await self._call(lambda: self._client.get_signature_statuses([signature], history))
        found = resp.value[0]
        return None if found is None else _status(signature, found)

    # ---- Ledger primitives ----------------------------------------------------------------------------
    async def send_transaction(self, tx: Transaction | VersionedTransaction) -> Signature:
        signature = tx.signatures[0]
        key = f"signed:{signature}"
        async with self._lock(key):
            record = self._sent.pending(key, 0)
            if record is None and self._sent.state(signature) == EXPIRED:
                raise BlockhashExpired(f"transaction {signature} expired before landing; sign it again")
            if record is None:
                known = await self.get_signature_status(signature)
                if known is not None and known.commitment >= self._commitment:
                    if known.err is not None:
                        raise TransactionFailed(signature, known.err, [], landed=True)
                    return signature
                # The caller's blockhash is at most this old, so this bound is never too early.
                height = await self._read(lambda: self._client.get_block_height(self._rpc_commitment))
                record = SentTx(signature, key, 0, bytes(tx), height.value + BLOCKHASH_VALIDITY)
                self._sent.record(record)
            deadline = asyncio.get_running_loop().time() + self._send_timeout
            if not await self._drive(record, deadline):
                self._sent.mark(signature, EXPIRED)
                raise BlockhashExpired(f"transaction {signature} expired before landing; sign it again")
            return signature

    async def latest_blockhash(self) -> tuple[Hash, int]:
        resp = await self._read(lambda: self._client.get_latest_blockhash(self._rpc_commitment))
        return resp.value.blockhash, resp.value.last_valid_block_height

    async def get_signature_status(self, signature: Signature) -> TxStatus | None:
        resp = await self._read(lambda: self._client.get_signature_statuses([signature], True))
        found = resp.value[0]
        return None if found is None else _status(signature, found)

    async def get_multiple_accounts(self, addresses: Sequence[Pubkey]) -> list[Account | None]:
        found: list[Account | None] = []
        for start in range(0, len(addresses), MULTIPLE_ACCOUNTS_PAGE):
            page = list(addresses[start : start + MULTIPLE_ACCOUNTS_PAGE])
            resp = await self._read(partial(self._client.get_multiple_accounts, page, self._rpc_commitment))
            found.extend(resp.value)
        return found

    async def minimum_balance(self, size: int) -> int:
        if size not in self._rent:
            resp = await self._read(lambda: self._client.get_minimum_balance_for_rent_exemption(size))
            self._rent[size] = resp.value
        return self._rent[size]

    async def get_balance(self, address: Pubkey) -> int:
        return (await self._read(lambda: self._client.get_balance(address, self._rpc_commitment))).value

    async def get_token_account_balance(self, account: Pubkey) -> int | None:
        try:
            resp = await self._read(
                lambda: self._client.get_token_account_balance(account, self._rpc_commitment)
            )
        except _Rejected:
            return None
        return int(resp.value.amount)

    async def airdrop(self, address: Pubkey, lamports: int) -> None:
        resp = await self._read(lambda: self._client.request_airdrop(address, lamports, self._rpc_commitment))
        signature = resp.value
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._send_timeout
        while loop.time() < deadline:
            status = await self._retrying(lambda: self._lookup(signature, history=False), deadline)
            if status is not None and status.commitment >= self._commitment:
                if status.err is not None:
                    raise TransactionFailed(signature, status.err, [], landed=True)
                return
            await asyncio.sleep(self._poll_interval)
        raise LedgerUnavailable(f"airdrop {signature} not confirmed in time")

    async def mints(self) -> list[MintRecord]:
        return self._registry.mints()

    async def _register_mint(self, record: MintRecord) -> None:
        self._registry.register_mint(record)
