"""Packing instructions into transactions: exact sizes, greedy density, limits, determinism."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import Message
from solders.pubkey import Pubkey
from solders.transaction import Transaction
from solders.transaction_metadata import TransactionMetadata
from spl.token.constants import TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID

from gridtokenx.ledger import instructions as ix
from gridtokenx.ledger.errors import TransactionTooLarge
from gridtokenx.ledger.packing import (
    MAX_INSTRUCTION_TRACE,
    PACKET_DATA_SIZE,
    Limits,
    _Shape,
    fingerprint,
    pack,
    wire_size,
)
from gridtokenx.ledger.records import PlannedTx

PAYER, AUTHORITY = Keypair(), Keypair()
MINT = Pubkey.new_unique()
OWNERS = [Pubkey.new_unique() for _ in range(80)]


def mint_group(owner_index: int, amount: int = 1) -> PlannedTx:
    destination = ix.associated_address(OWNERS[owner_index], MINT, TOKEN_PROGRAM_ID)
    instruction = ix.mint_to(MINT, destination, AUTHORITY.pubkey(), amount, TOKEN_PROGRAM_ID)
    return PlannedTx((instruction,), (AUTHORITY,))


def signed(planned: PlannedTx, prefix: tuple = ()) -> Transaction:
    message = Message([*prefix, *planned.instructions], PAYER.pubkey())
    signers = {PAYER.pubkey(): PAYER} | {s.pubkey(): s for s in planned.signers}
    return Transaction(list(signers.values()), message, LiteSVM().latest_blockhash())


@settings(max_examples=40, deadline=None)
@given(
    owners=st.lists(st.integers(0, len(OWNERS) - 1), min_size=1, max_size=70),
    with_memo=st.booleans(),
    priority=st.sampled_from([0, 5_000]),
)
def test_packed_transactions_fit_and_are_as_full_as_the_limits_allow(
    owners: list[int], with_memo: bool, priority: int
) -> None:
    limits = Limits(compute_units=200_000, prefix=ix.compute_budget(200_000, priority))
    suffix = (ix.memo(PAYER.pubkey(), "gtx:v1:mint:sha256:" + "ab" * 32),) if with_memo else ()
    groups = [mint_group(i, amount) for amount, i in enumerate(owners, start=1)]

    packed = pack(groups, PAYER.pubkey(), limits, suffix)

    flattened = [i for tx in packed for i in tx.instructions if i not in suffix]
    assert flattened == [g.instructions[0] for g in groups]  # every group once, in order
    position = 0
    for tx in packed:
        wire = bytes(signed(tx, limits.prefix))
        assert len(wire) == wire_size(PAYER.pubkey(), [*limits.prefix, *tx.instructions]) <= PACKET_DATA_SIZE
        assert tuple(tx.instructions[len(tx.instructions) - len(suffix) :]) == suffix
        position += len(tx.instructions) - len(suffix)
        if position < len(groups):  # greedy: the next group would not have fitted
            trial = _Shape(PAYER.pubkey())
            trial.add([*limits.prefix, *tx.instructions, *groups[position].instructions])
            assert not trial.within(limits)


def test_trace_limit_splits_associated_account_creation() -> None:
    svm = LiteSVM()
    svm.airdrop(PAYER.pubkey(), 10**12)
    mint = Keypair()
    allocate, init = ix.create_mint(
        PAYER.pubkey(),
        mint.pubkey(),
        svm.minimum_balance_for_rent_exemption(82),
        0,
        AUTHORITY.pubkey(),
        None,
        TOKEN_2022_PROGRAM_ID,
    )
    assert isinstance(
        svm.send_transaction(
            Transaction([PAYER, mint], Message([allocate, init], PAYER.pubkey()), svm.latest_blockhash())
        ),
        TransactionMetadata,
    )
    groups = [
        PlannedTx((ix.create_ata_idempotent(PAYER.pubkey(), o, mint.pubkey(), TOKEN_2022_PROGRAM_ID),))
        for o in OWNERS[:13]
    ]

    packed = pack(groups, PAYER.pubkey(), Limits())

    assert [len(tx.instructions) for tx in packed] == [12, 1]  # 5 trace entries each: 13 would be 65
    for tx in packed:  # the real runtime accepts the densest one
        assert isinstance(svm.send_transaction(signed(tx)), TransactionMetadata)


def test_compute_budget_limits_how_many_expensive_instructions_share_a_transaction() -> None:
    groups = [
        PlannedTx((ix.create_ata_idempotent(PAYER.pubkey(), o, MINT, TOKEN_PROGRAM_ID),)) for o in OWNERS[:5]
    ]

    packed = pack(groups, PAYER.pubkey(), Limits(compute_units=60_000))

    assert [len(tx.instructions) for tx in packed] == [2, 2, 1]


def test_densest_mint_batch_executes_on_the_real_token_program() -> None:
    svm = LiteSVM()
    svm.airdrop(PAYER.pubkey(), 10**12)
    mint = Keypair()
    allocate, init = ix.create_mint(
        PAYER.pubkey(),
        mint.pubkey(),
        svm.minimum_balance_for_rent_exemption(82),
        9,
        AUTHORITY.pubkey(),
        None,
        TOKEN_PROGRAM_ID,
    )
    atas = [ix.create_ata_idempotent(PAYER.pubkey(), o, mint.pubkey(), TOKEN_PROGRAM_ID) for o in OWNERS[:40]]
    for setup in pack(
        [PlannedTx((allocate, init), (mint,)), *[PlannedTx((a,)) for a in atas]], PAYER.pubkey(), Limits()
    ):
        assert isinstance(svm.send_transaction(signed(setup)), TransactionMetadata)
    memo = (ix.memo(PAYER.pubkey(), "gtx:v1:mint:sha256:" + "cd" * 32),)
    groups = [
        PlannedTx(
            (
                ix.mint_to(
                    mint.pubkey(),
                    ix.associated_address(o, mint.pubkey(), TOKEN_PROGRAM_ID),
                    AUTHORITY.pubkey(),
                    5,
                    TOKEN_PROGRAM_ID,
                ),
            ),
            (AUTHORITY,),
        )
        for o in OWNERS[:40]
    ]

    packed = pack(groups, PAYER.pubkey(), Limits(), memo)

    assert [len(tx.instructions) - 1 for tx in packed] == [
        17,
        17,
        6,
    ]  # two signers and a memo leave room for 17
    for tx in packed:
        assert isinstance(svm.send_transaction(signed(tx)), TransactionMetadata)


def test_a_group_too_large_for_any_transaction_is_refused() -> None:
    group = PlannedTx(
        tuple(ix.create_ata_idempotent(PAYER.pubkey(), o, MINT, TOKEN_PROGRAM_ID) for o in OWNERS[:13])
    )

    with pytest.raises(TransactionTooLarge):
        pack([group], PAYER.pubkey(), Limits())
    assert MAX_INSTRUCTION_TRACE < 13 * 5


def test_fingerprint_is_stable_and_sensitive_to_every_detail() -> None:
    base = pack([mint_group(0, 10), mint_group(1, 20)], PAYER.pubkey(), Limits())

    assert fingerprint(base) == fingerprint(
        pack([mint_group(0, 10), mint_group(1, 20)], PAYER.pubkey(), Limits())
    )
    assert fingerprint(base) != fingerprint(
        pack([mint_group(0, 10), mint_group(1, 21)], PAYER.pubkey(), Limits())
    )
    assert fingerprint(base) != fingerprint(
        pack([mint_group(1, 20), mint_group(0, 10)], PAYER.pubkey(), Limits())
    )
