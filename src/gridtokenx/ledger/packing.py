"""Pack instruction groups into as few legacy transactions as Solana's limits allow (pure logic).

Limits checked for every transaction:
- serialized size <= 1232 bytes (PACKET_DATA_SIZE), counted exactly from the wire format;
- at most 64 distinct accounts (account locks);
- instruction trace (top-level instructions plus their CPIs) <= 64;
- estimated compute units <= the per-transaction budget.
Compute and trace costs are conservative per-program estimates, safe on a real cluster's
(costlier) programs as well as on LiteSVM's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from solders.compute_budget import ID as COMPUTE_BUDGET_ID
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM_ID
from spl.memo.constants import MEMO_PROGRAM_ID
from spl.token.constants import ASSOCIATED_TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID

from gridtokenx.ledger.errors import TransactionTooLarge
from gridtokenx.ledger.records import PlannedTx

PACKET_DATA_SIZE = 1232
MAX_ACCOUNT_LOCKS = 64
MAX_INSTRUCTION_TRACE = 64
MAX_COMPUTE_UNITS = 1_400_000
SIGNATURE_LEN = 64

# Highest data[0] of a base token instruction; larger values start an 8-byte interface discriminator.
_LAST_BASE_TOKEN_INSTRUCTION = 44

_COSTS: dict[Pubkey, tuple[int, int]] = {  # program -> (compute units, trace entries)
    ASSOCIATED_TOKEN_PROGRAM_ID: (25_000, 5),
    TOKEN_PROGRAM_ID: (6_000, 1),
    SYSTEM_PROGRAM_ID: (1_000, 1),
    MEMO_PROGRAM_ID: (6_000, 1),
    COMPUTE_BUDGET_ID: (200, 1),
}
_TOKEN_2022_BASE = (6_000, 1)
_TOKEN_2022_EXTENSION = (15_000, 1)
_UNKNOWN = (200_000, 8)


def instruction_cost(instruction: Instruction) -> tuple[int, int]:
    """(compute units, trace entries) this instruction may use, erring high."""
    program = instruction.program_id
    if program == TOKEN_2022_PROGRAM_ID:
        data = instruction.data
        if data and data[0] <= _LAST_BASE_TOKEN_INSTRUCTION and len(data) < 8 + 4:
            return _TOKEN_2022_BASE
        return _TOKEN_2022_EXTENSION
    return _COSTS.get(program, _UNKNOWN)


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-transaction budget, plus the prefix (compute-budget instructions) every transaction carries."""

    compute_units: int = MAX_COMPUTE_UNITS
    prefix: tuple[Instruction, ...] = ()


def _shortvec_len(value: int) -> int:
    size = 1
    while value >= 0x80:
        value >>= 7
        size += 1
    return size


@dataclass(slots=True)
class _Shape:
    """Running wire size and budgets of one transaction being filled."""

    payer: Pubkey
    keys: set[Pubkey] = field(default_factory=set)
    signer_keys: set[Pubkey] = field(default_factory=set)
    instruction_bytes: int = 0
    instruction_count: int = 0
    compute_units: int = 0
    trace: int = 0

    def __post_init__(self) -> None:
        self.keys.add(self.payer)
        self.signer_keys.add(self.payer)

    def add(self, instructions: Sequence[Instruction]) -> None:
        for instruction in instructions:
            self.keys.add(instruction.program_id)
            for meta in instruction.accounts:
                self.keys.add(meta.pubkey)
                if meta.is_signer:
                    self.signer_keys.add(meta.pubkey)
            accounts, data = len(instruction.accounts), len(instruction.data)
            self.instruction_bytes += 1 + _shortvec_len(accounts) + accounts + _shortvec_len(data) + data
            self.instruction_count += 1
            units, trace = instruction_cost(instruction)
            self.compute_units += units
            self.trace += trace

    def size(self) -> int:
        signatures = len(self.signer_keys)
        message = (
            3
            + _shortvec_len(len(self.keys))
            + 32 * len(self.keys)
            + 32
            + _shortvec_len(self.instruction_count)
            + self.instruction_bytes
        )
        return _shortvec_len(signatures) + SIGNATURE_LEN * signatures + message

    def within(self, limits: Limits) -> bool:
        return (
            self.size() <= PACKET_DATA_SIZE
            and len(self.keys) <= MAX_ACCOUNT_LOCKS
            and self.trace <= MAX_INSTRUCTION_TRACE
            and self.compute_units <= limits.compute_units
        )

    def copy(self) -> _Shape:
        return _Shape(
            payer=self.payer,
            keys=set(self.keys),
            signer_keys=set(self.signer_keys),
            instruction_bytes=self.instruction_bytes,
            instruction_count=self.instruction_count,
            compute_units=self.compute_units,
            trace=self.trace,
        )


def _merge_signers(current: list[Keypair], keys: set[Pubkey], extra: Sequence[Keypair]) -> None:
    """Add signers not yet present; the same object is recognised without deriving its key."""
    for signer in extra:
        if any(signer is present for present in current):
            continue
        key = signer.pubkey()
        if key not in keys:
            keys.add(key)
            current.append(signer)


def wire_size(payer: Pubkey, instructions: Sequence[Instruction]) -> int:
    """Exact serialized size of a legacy transaction holding these instructions."""
    shape = _Shape(payer)
    shape.add(instructions)
    return shape.size()


def pack(
    groups: Sequence[PlannedTx], payer: Pubkey, limits: Limits, suffix: Sequence[Instruction] = ()
) -> list[PlannedTx]:
    """Greedily fill transactions with whole groups, keeping their order; `suffix` ends every one.

    Deterministic for the same input, which the idempotency fingerprint relies on.
    """
    packed: list[PlannedTx] = []
    tail = tuple(suffix)
    empty = _Shape(payer)
    empty.add(limits.prefix)
    empty.add(tail)
    shape = empty.copy()
    batch: list[Instruction] = []
    signers: list[Keypair] = []
    signer_keys: set[Pubkey] = set()
    for group in groups:
        trial = shape.copy()
        trial.add(group.instructions)
        if not trial.within(limits) and batch:
            packed.append(PlannedTx((*batch, *tail), tuple(signers)))
            shape, batch, signers, signer_keys = empty.copy(), [], [], set()
            trial = shape.copy()
            trial.add(group.instructions)
        if not trial.within(limits):
            raise TransactionTooLarge(
                f"{len(group.instructions)} instructions need {trial.size()} bytes, "
                f"{len(trial.keys)} accounts, {trial.trace} trace entries "
                f"and ~{trial.compute_units} compute units"
            )
        shape = trial
        batch.extend(group.instructions)
        _merge_signers(signers, signer_keys, group.signers)
    if batch:
        packed.append(PlannedTx((*batch, *tail), tuple(signers)))
    return packed


def fingerprint(plan: Sequence[PlannedTx]) -> bytes:
    """SHA-256 of every instruction and signer of a plan: what an idempotency key promises to repeat."""
    digest = hashlib.sha256()
    for planned in plan:
        digest.update(b"tx")
        for instruction in planned.instructions:
            digest.update(bytes(instruction.program_id) + len(instruction.accounts).to_bytes(2, "little"))
            for meta in instruction.accounts:
                digest.update(bytes(meta.pubkey) + bytes([meta.is_signer, meta.is_writable]))
            digest.update(len(instruction.data).to_bytes(4, "little") + instruction.data)
        for signer in planned.signers:
            digest.update(bytes(signer.pubkey()))
    return digest.digest()
