"""A local stand-in for a Solana cluster: a JSON-RPC server over HTTP backed by LiteSVM.

`gridtokenx ledger serve-rpc` runs it so the RPC backend (and anything else that speaks Solana
JSON-RPC) can be exercised without a validator; the tests start it in process. It behaves like a
cluster where it matters for idempotent sending:
- blocks advance with time (`block_time`); each block has a new blockhash, valid for 150 blocks;
- sendTransaction runs preflight (simulation) and answers -32002 with the error and the logs,
  including BlockhashNotFound for expired blockhashes and AlreadyProcessed for duplicates;
- statuses move from processed to confirmed (next block) to finalized (32 blocks later), and
  after 300 blocks are only returned with searchTransactionHistory.
Its state lives in memory and ends with the process. Faults are queued per method and consumed
one per request (`server.faults.add(...)`), so clients can be tried against a misbehaving node.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from decimal import Decimal
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from solders.account import Account
from solders.hash import Hash
from solders.litesvm import LiteSVM
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata, TransactionMetadata

from gridtokenx.ledger.accounts import NotATokenAccount, parse_mint, parse_token_account

BLOCKHASH_WINDOW = 150
FINALIZED_AFTER = 32
RECENT_STATUS_BLOCKS = 300  # older statuses need searchTransactionHistory, as on a real node
API_VERSION = "2.2.0"


class Fault(StrEnum):
    DROP = "drop"  # sendTransaction: answer with the signature, never execute it
    TIMEOUT = "timeout"  # hold the request past the client's timeout, do nothing, hang up
    RATE_LIMIT = "rate_limit"  # HTTP 429 with Retry-After
    LOST_REPLY = "lost_reply"  # execute the request, then hang up without answering
    MALFORMED = "malformed"  # a truncated JSON body
    MALFORMED_ERROR = "malformed_error"  # a JSON-RPC error whose data the client cannot decode


class FaultPlan:
    """Faults queued per JSON-RPC method, each consumed by one request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queued: dict[str, deque[Fault]] = defaultdict(deque)
        self.injected: Counter[Fault] = Counter()

    def add(self, method: str, fault: Fault, times: int = 1) -> None:
        with self._lock:
            self._queued[method].extend([fault] * times)

    def take(self, method: str) -> Fault | None:
        with self._lock:
            queue = self._queued.get(method)
            if not queue:
                return None
            fault = queue.popleft()
            self.injected[fault] += 1
            return fault

    def clear(self) -> None:
        with self._lock:
            self._queued.clear()


class RpcError(Exception):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


class _Landed:
    __slots__ = ("err", "slot")

    def __init__(self, slot: int, err: Any) -> None:
        self.slot, self.err = slot, err


def _err_json(result: FailedTransactionMetadata) -> Any:
    return json.loads(result.to_json())["err"]


def _account_json(account: Account) -> dict[str, Any]:
    return {
        "data": [base64.b64encode(account.data).decode(), "base64"],
        "executable": account.executable,
        "lamports": account.lamports,
        "owner": str(account.owner),
        "rentEpoch": account.rent_epoch,
        "space": len(account.data),
    }


class LiteSvmRpcServer:
    def __init__(
        self,
        *,
        block_time: float = 0.02,
        timeout_hold: float = 1.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.block_time = block_time
        self.address = (host, port)
        self.timeout_hold = timeout_hold
        self.faults = FaultPlan()
        self.lock = threading.RLock()
        self.svm = LiteSVM().with_blockhash_check(False)  # the 150-block window is checked here
        self.executions: Counter[Signature] = Counter()
        self._landed: dict[Signature, _Landed] = {}
        self._blockhashes: dict[Hash, int] = {}
        self._started = time.monotonic()
        self._height_offset = 0
        self._height = -1
        self._latest = self.svm.latest_blockhash()
        self._httpd: ThreadingHTTPServer | None = None
        self._methods: dict[str, Callable[[list[Any]], Any]] = {
            "getHealth": lambda params: "ok",
            "getBlockHeight": lambda params: self.block_height(),
            "getLatestBlockhash": self._get_latest_blockhash,
            "getBalance": self._get_balance,
            "getAccountInfo": self._get_account_info,
            "getMultipleAccounts": self._get_multiple_accounts,
            "getTokenAccountBalance": self._get_token_account_balance,
            "getMinimumBalanceForRentExemption": self._get_minimum_balance,
            "getSignatureStatuses": self._get_signature_statuses,
            "sendTransaction": self._send_transaction,
            "requestAirdrop": self._request_airdrop,
        }

    # ---- lifecycle -------------------------------------------------------------------------------
    def start(self) -> LiteSvmRpcServer:
        server = self

        class Handler(_Handler):
            rpc = server

        self._httpd = ThreadingHTTPServer(self.address, Handler)
        self._httpd.daemon_threads = True
        threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="litesvm-rpc", daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> LiteSvmRpcServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    # ---- chain time ------------------------------------------------------------------------------
    def block_height(self) -> int:
        """Current height; producing a block issues a new blockhash."""
        with self.lock:
            height = int((time.monotonic() - self._started) / self.block_time) + self._height_offset
            if height != self._height:
                self._height = height
                self.svm.expire_blockhash()
                self._latest = self.svm.latest_blockhash()
                self._blockhashes[self._latest] = height
                stale = [h for h, at in self._blockhashes.items() if at < height - 2 * BLOCKHASH_WINDOW]
                for blockhash in stale:
                    del self._blockhashes[blockhash]
            return height

    def advance(self, blocks: int) -> None:
        with self.lock:
            self._height_offset += blocks

    def expire_blockhashes(self) -> None:
        """Jump past the validity window of every blockhash handed out so far."""
        self.advance(BLOCKHASH_WINDOW + 1)

    # ---- helpers for tests -----------------------------------------------------------------------
    def supply(self, mint: Pubkey) -> int:
        with self.lock:
            return parse_mint(mint, self.svm.get_account(mint)).supply

    # ---- JSON-RPC --------------------------------------------------------------------------------
    def dispatch(self, method: str, params: list[Any]) -> Any:
        handler = self._methods.get(method)
        if handler is None:
            raise RpcError(-32601, "Method not found")
        with self.lock:
            return handler(params)

    def _context(self) -> dict[str, Any]:
        return {"slot": self.block_height(), "apiVersion": API_VERSION}

    def _get_latest_blockhash(self, params: list[Any]) -> Any:
        height = self.block_height()
        value = {"blockhash": str(self._latest), "lastValidBlockHeight": height + BLOCKHASH_WINDOW}
        return {"context": self._context(), "value": value}

    def _get_balance(self, params: list[Any]) -> Any:
        return {"context": self._context(), "value": self.svm.get_balance(Pubkey.from_string(params[0])) or 0}

    def _account(self, key: str) -> Any:
        account = self.svm.get_account(Pubkey.from_string(key))
        return None if account is None else _account_json(account)

    def _get_account_info(self, params: list[Any]) -> Any:
        return {"context": self._context(), "value": self._account(params[0])}

    def _get_multiple_accounts(self, params: list[Any]) -> Any:
        return {"context": self._context(), "value": [self._account(key) for key in params[0]]}

    def _get_token_account_balance(self, params: list[Any]) -> Any:
        address = Pubkey.from_string(params[0])
        try:
            holding = parse_token_account(address, self.svm.get_account(address))
            decimals = parse_mint(holding.mint, self.svm.get_account(holding.mint)).decimals
        except NotATokenAccount:
            raise RpcError(-32602, "Invalid param: could not find account") from None
        ui = Decimal(holding.amount).scaleb(-decimals)
        value = {
            "amount": str(holding.amount),
            "decimals": decimals,
            "uiAmount": None,
            "uiAmountString": str(ui),
        }
        return {"context": self._context(), "value": value}

    def _get_minimum_balance(self, params: list[Any]) -> Any:
        return self.svm.minimum_balance_for_rent_exemption(int(params[0]))

    def _status(self, signature: Signature, history: bool) -> Any:
        landed = self._landed.get(signature)
        if landed is None:
            return None
        depth = self.block_height() - landed.slot
        if depth > RECENT_STATUS_BLOCKS and not history:
            return None
        level = "finalized" if depth >= FINALIZED_AFTER else "confirmed" if depth >= 1 else "processed"
        return {
            "slot": landed.slot,
            "confirmations": None if level == "finalized" else depth,
            "err": landed.err,
            "status": {"Ok": None} if landed.err is None else {"Err": landed.err},
            "confirmationStatus": level,
        }

    def _get_signature_statuses(self, params: list[Any]) -> Any:
        history = bool(params[1].get("searchTransactionHistory")) if len(params) > 1 and params[1] else False
        statuses = [self._status(Signature.from_string(sig), history) for sig in params[0]]
        return {"context": self._context(), "value": statuses}

    def _request_airdrop(self, params: list[Any]) -> Any:
        address, lamports = Pubkey.from_string(params[0]), int(params[1])
        while True:
            result = self.svm.airdrop(address, lamports)
            if isinstance(result, TransactionMetadata):
                self._landed[result.signature()] = _Landed(self.block_height(), None)
                return str(result.signature())
            if _err_json(result) != "AlreadyProcessed":
                raise RpcError(-32603, f"airdrop failed: {_err_json(result)}")
            self.svm.expire_blockhash()  # same airdrop twice in one block: use a new blockhash

    def _preflight_error(self, err: Any, logs: list[str], units: int = 0) -> RpcError:
        data = {
            "accounts": None,
            "err": err,
            "innerInstructions": None,
            "logs": logs,
            "replacementBlockhash": None,
            "returnData": None,
            "unitsConsumed": units,
        }
        return RpcError(-32002, f"Transaction simulation failed: {err}", data)

    def _send_transaction(self, params: list[Any]) -> Any:
        config = params[1] if len(params) > 1 else {}
        raw = base64.b64decode(params[0]) if config.get("encoding", "base58") == "base64" else None
        if raw is None:
            raise RpcError(-32602, "only base64 transactions are supported")
        tx = VersionedTransaction.from_bytes(raw)
        signature = tx.signatures[0]
        preflight = not config.get("skipPreflight", False)
        if signature in self._landed:
            if preflight:
                raise self._preflight_error("AlreadyProcessed", [])
            return str(signature)
        issued = self._blockhashes.get(tx.message.recent_blockhash)
        if issued is None or self.block_height() > issued + BLOCKHASH_WINDOW:
            if preflight:
                raise self._preflight_error("BlockhashNotFound", [])
            return str(signature)  # a cluster silently drops it
        if preflight:
            simulated = self.svm.simulate_transaction(tx)
            if isinstance(simulated, FailedTransactionMetadata):
                meta = simulated.meta()
                raise self._preflight_error(
                    _err_json(simulated), list(meta.logs()), meta.compute_units_consumed()
                )
        payer = tx.message.account_keys[0]
        before = self.svm.get_balance(payer)
        result = self.svm.send_transaction(tx)
        if isinstance(result, TransactionMetadata):
            self._landed[signature] = _Landed(self.block_height(), None)
            self.executions[signature] += 1
        elif self.svm.get_balance(payer) != before:  # failed but landed: fee charged, status kept
            self._landed[signature] = _Landed(self.block_height(), _err_json(result))
            self.executions[signature] += 1
        return str(signature)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    rpc: LiteSvmRpcServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request access log."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            request = json.loads(body)
            method, params, request_id = request["method"], request.get("params") or [], request.get("id")
        except (ValueError, KeyError, TypeError):
            self._reply(
                200, {"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": None}
            )
            return
        fault = self.rpc.faults.take(method)
        if fault is Fault.RATE_LIMIT:
            self._reply(429, {"error": "Too Many Requests"}, headers={"Retry-After": "0"})
            return
        if fault is Fault.TIMEOUT:
            time.sleep(self.rpc.timeout_hold)
            self.close_connection = True
            return
        if fault is Fault.MALFORMED:
            self._send_raw(200, b'{"jsonrpc":"2.0","result":{"context":')
            return
        if fault is Fault.MALFORMED_ERROR:
            error = {"code": -32002, "message": "simulation failed", "data": {"err": {"NoSuchError": [1]}}}
            self._reply(200, {"jsonrpc": "2.0", "error": error, "id": request_id})
            return
        if fault is Fault.DROP and method == "sendTransaction":
            signature = VersionedTransaction.from_bytes(base64.b64decode(params[0])).signatures[0]
            self._reply(200, {"jsonrpc": "2.0", "result": str(signature), "id": request_id})
            return
        try:
            reply: dict[str, Any] = {
                "jsonrpc": "2.0",
                "result": self.rpc.dispatch(method, params),
                "id": request_id,
            }
        except RpcError as exc:
            error = {"code": exc.code, "message": exc.message}
            if exc.data is not None:
                error["data"] = exc.data
            reply = {"jsonrpc": "2.0", "error": error, "id": request_id}
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            reply = {
                "jsonrpc": "2.0",
                "error": {"code": -32602, "message": f"Invalid params: {exc}"},
                "id": request_id,
            }
        if fault is Fault.LOST_REPLY:
            self.close_connection = True
            return
        self._reply(200, reply)

    def _reply(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send_raw(status, json.dumps(payload).encode(), headers)

    def _send_raw(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
