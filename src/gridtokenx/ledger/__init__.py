"""The Solana ledger behind one async interface: a durable embedded LiteSVM, or a real cluster over RPC.

Start here: `build_ledger(settings)` returns a `Ledger` to use as `async with`.
"""

from gridtokenx.ledger.errors import (
    BlockhashExpired,
    IdempotencyConflict,
    LedgerConfigError,
    LedgerError,
    LedgerUnavailable,
    ReplayDivergence,
    TransactionFailed,
    TransactionTooLarge,
)
from gridtokenx.ledger.factory import build_ledger
from gridtokenx.ledger.instructions import reading_hash_memo
from gridtokenx.ledger.interface import Ledger
from gridtokenx.ledger.records import (
    CertificateInfo,
    CertificateMetadata,
    Commitment,
    IssuedCertificate,
    MintInfo,
    MintRecord,
    TokenAccountInfo,
    TransferLeg,
    TxStatus,
)

__all__ = [
    "BlockhashExpired",
    "CertificateInfo",
    "CertificateMetadata",
    "Commitment",
    "IdempotencyConflict",
    "IssuedCertificate",
    "Ledger",
    "LedgerConfigError",
    "LedgerError",
    "LedgerUnavailable",
    "MintInfo",
    "MintRecord",
    "ReplayDivergence",
    "TokenAccountInfo",
    "TransactionFailed",
    "TransactionTooLarge",
    "TransferLeg",
    "TxStatus",
    "build_ledger",
    "reading_hash_memo",
]
