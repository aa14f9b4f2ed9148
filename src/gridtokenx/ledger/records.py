"""Plain values the ledger returns and accepts: parsed chain state, statuses, requests."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature

U64_MAX = 2**64 - 1


class Commitment(IntEnum):
    """Confirmation levels in increasing order of finality."""

    PROCESSED = 0
    CONFIRMED = 1
    FINALIZED = 2

    @classmethod
    def parse(cls, name: str) -> Commitment:
        return cls[name.upper()]


@dataclass(frozen=True, slots=True)
class TxStatus:
    """Where a transaction stands: `err` is the RPC-form error (None on success)."""

    signature: Signature
    slot: int
    commitment: Commitment
    err: object | None = None

    @property
    def ok(self) -> bool:
        return self.err is None


@dataclass(frozen=True, slots=True)
class MintInfo:
    address: Pubkey
    token_program: Pubkey
    decimals: int
    supply: int
    mint_authority: Pubkey | None
    freeze_authority: Pubkey | None


@dataclass(frozen=True, slots=True)
class TokenAccountInfo:
    address: Pubkey
    token_program: Pubkey
    mint: Pubkey
    owner: Pubkey
    amount: int
    frozen: bool


@dataclass(frozen=True, slots=True)
class MintRecord:
    """A mint this ledger created and registered under a label (e.g. the energy token)."""

    label: str
    address: Pubkey
    token_program: Pubkey
    decimals: int


@dataclass(frozen=True, slots=True)
class TransferLeg:
    """One transfer_checked leg of an atomic settlement.

    The source defaults to the owner's associated account; the destination to the associated
    account of `to`, created in the same transaction when missing.
    """

    mint: Pubkey
    owner: Keypair
    to: Pubkey
    amount: int
    source: Pubkey | None = None
    destination: Pubkey | None = None


@dataclass(frozen=True, slots=True)
class CertificateMetadata:
    """Token-2022 metadata stored on a certificate's mint; `fields` are custom key/value pairs."""

    name: str
    symbol: str
    uri: str
    fields: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    mint: Pubkey
    metadata: CertificateMetadata
    supply: int
    mint_authority: Pubkey | None
    update_authority: Pubkey | None

    @property
    def retired(self) -> bool:
        return self.supply == 0


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    mint: Pubkey
    signatures: tuple[Signature, ...]


@dataclass(frozen=True, slots=True)
class PlannedTx:
    """Instructions that must land atomically, and the keypairs (besides the fee payer) that sign them."""

    instructions: tuple[Instruction, ...]
    signers: tuple[Keypair, ...] = field(default=())
