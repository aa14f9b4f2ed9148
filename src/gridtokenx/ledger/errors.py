"""Errors raised by every ledger backend, so callers handle one set whatever the backend."""

from __future__ import annotations

from solders.signature import Signature


class LedgerError(Exception):
    """Base class of every ledger failure."""


class LedgerConfigError(LedgerError):
    """The ledger cannot start as configured (missing keypair, bad URL, unsafe key file)."""


class LedgerUnavailable(LedgerError):
    """The chain could not be reached or did not settle in time; retrying later is safe.

    A signed transaction may still be in flight: retry with the same idempotency key so the
    stored bytes are re-sent instead of signing again.
    """


class TransactionFailed(LedgerError):
    """The transaction was rejected or executed with an error, so none of its instructions took effect.

    `landed` tells whether it reached a block (fee charged) or was refused before execution.
    """

    def __init__(self, signature: Signature, err: object, logs: list[str], *, landed: bool) -> None:
        self.signature = signature
        self.err = err
        self.logs = logs
        self.landed = landed
        super().__init__(f"transaction {signature} failed: {err}")


class BlockhashExpired(LedgerError):
    """A transaction signed by the caller expired before landing; sign it again with a fresh blockhash."""


class IdempotencyConflict(LedgerError):
    """An idempotency key was reused for a different request."""


class TransactionTooLarge(LedgerError):
    """The instructions cannot fit in one transaction under the size, account and compute limits."""


class ReplayDivergence(LedgerError):
    """Replaying the durable log gave a different outcome than recorded: the ledger refuses to start."""
