"""The contract every Ledger backend keeps; runs against the embedded LiteSVM and the RPC backend."""

from __future__ import annotations

import hashlib

import pytest
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer
from solders.transaction import Transaction
from spl.memo.constants import MEMO_PROGRAM_ID
from spl.token.constants import TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID

from gridtokenx.ledger import instructions as ix
from gridtokenx.ledger.errors import (
    BlockhashExpired,
    IdempotencyConflict,
    TransactionFailed,
    TransactionTooLarge,
)
from gridtokenx.ledger.interface import Ledger
from gridtokenx.ledger.packing import PACKET_DATA_SIZE, wire_size
from gridtokenx.ledger.records import CertificateMetadata, Commitment, PlannedTx, TransferLeg

READINGS_HASH = hashlib.sha256(b"meter-7|2025-01-01T00:00Z|1500Wh").hexdigest()


@pytest.mark.parametrize("program", [TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID])
async def test_create_mint_records_decimals_authority_and_zero_supply(
    ledger: Ledger, program: Pubkey
) -> None:
    mint = await ledger.create_mint(9, token_program=program, label="energy")

    info = await ledger.get_mint(mint)
    assert (info.token_program, info.decimals, info.supply) == (program, 9, 0)
    assert info.mint_authority == ledger.authority.pubkey()
    assert [record.address for record in await ledger.mints()] == [mint]


async def test_ensure_mint_is_idempotent_and_refuses_a_different_shape(ledger: Ledger) -> None:
    first = await ledger.ensure_mint("energy", 9)
    again = await ledger.ensure_mint("energy", 9)

    assert first == again
    with pytest.raises(IdempotencyConflict):
        await ledger.ensure_mint("energy", 6)


async def test_associated_accounts_are_created_once_and_reused(ledger: Ledger) -> None:
    mint = await ledger.create_mint(9)
    owners = [Keypair().pubkey() for _ in range(14)]  # more than one transaction's worth (trace limit)

    first = await ledger.create_associated_token_accounts(mint, owners)
    again = await ledger.create_associated_token_accounts(mint, owners)

    assert first == again == [ix.associated_address(o, mint, TOKEN_2022_PROGRAM_ID) for o in owners]
    holdings = [await ledger.get_token_account(address) for address in first]
    assert [(h.owner, h.amount) for h in holdings if h is not None] == [(o, 0) for o in owners]


async def test_mint_to_many_recipients_packs_transactions_and_carries_the_memo(ledger: Ledger) -> None:
    mint = await ledger.create_mint(9, token_program=TOKEN_PROGRAM_ID)
    owners = [Keypair().pubkey() for _ in range(45)]
    recipients = [(owner, 1_000_000 * (i + 1)) for i, owner in enumerate(owners)]
    memo = ix.reading_hash_memo(READINGS_HASH)

    signatures = await ledger.mint_to(mint, recipients, memo=memo)

    planned = ledger.plan(
        [
            PlannedTx(
                (
                    ix.mint_to(
                        mint,
                        ix.associated_address(o, mint, TOKEN_PROGRAM_ID),
                        ledger.authority.pubkey(),
                        amount,
                        TOKEN_PROGRAM_ID,
                    ),
                ),
                (ledger.authority,),
            )
            for o, amount in recipients
        ],
        [ix.memo(ledger.fee_payer.pubkey(), memo)],
    )
    assert (
        len(signatures) == len(planned) == 3
    )  # 45 mints, 17 per transaction beside two signers and the memo
    assert all(tx.instructions[-1].program_id == MEMO_PROGRAM_ID for tx in planned)
    assert all(
        wire_size(ledger.fee_payer.pubkey(), [*ledger.limits().prefix, *tx.instructions]) <= PACKET_DATA_SIZE
        for tx in planned
    )
    for owner, amount in recipients:
        assert await ledger.get_token_balance(owner, mint) == amount
    assert await ledger.get_supply(mint) == sum(amount for _, amount in recipients)
    for signature in signatures:
        status = await ledger.get_signature_status(signature)
        assert status is not None and status.ok and status.commitment >= Commitment.CONFIRMED


async def test_mint_to_with_the_same_key_returns_the_same_signatures_without_minting_again(
    ledger: Ledger,
) -> None:
    mint = await ledger.create_mint(9)
    owner = Keypair().pubkey()

    first = await ledger.mint_to(mint, [(owner, 500)], memo="gtx:v1:outbox:42", idempotency_key="outbox:42")
    retry = await ledger.mint_to(mint, [(owner, 500)], memo="gtx:v1:outbox:42", idempotency_key="outbox:42")

    assert retry == first
    assert await ledger.get_supply(mint) == 500
    with pytest.raises(IdempotencyConflict):
        await ledger.mint_to(mint, [(owner, 501)], memo="gtx:v1:outbox:42", idempotency_key="outbox:42")
    assert await ledger.get_supply(mint) == 500


async def test_identical_requests_without_a_key_are_distinct_mints(ledger: Ledger) -> None:
    mint = await ledger.create_mint(9)
    owner = Keypair().pubkey()

    one = await ledger.mint_to(mint, [(owner, 7)])
    two = await ledger.mint_to(mint, [(owner, 7)])

    assert one != two
    assert await ledger.get_token_balance(owner, mint) == 14


async def test_transfer_checked_creates_the_recipient_account_and_moves_tokens(ledger: Ledger) -> None:
    mint = await ledger.create_mint(6)
    alice, bob = Keypair(), Keypair()
    await ledger.mint_to(mint, [(alice.pubkey(), 10_000)])

    await ledger.transfer_checked(mint, alice, bob.pubkey(), 2_500, memo="gtx:v1:trade:t-1")

    assert await ledger.get_token_balance(alice.pubkey(), mint) == 7_500
    assert await ledger.get_token_balance(bob.pubkey(), mint) == 2_500
    assert await ledger.get_supply(mint) == 10_000


async def test_transfer_beyond_the_balance_fails_and_changes_nothing(ledger: Ledger) -> None:
    mint = await ledger.create_mint(6)
    alice, bob = Keypair(), Keypair()
    await ledger.mint_to(mint, [(alice.pubkey(), 100)])

    with pytest.raises(TransactionFailed) as failure:
        await ledger.transfer_checked(mint, alice, bob.pubkey(), 101)

    assert failure.value.err is not None
    assert await ledger.get_token_balance(alice.pubkey(), mint) == 100
    assert await ledger.get_token_balance(bob.pubkey(), mint) == 0


async def test_burn_checked_reduces_balance_and_supply(ledger: Ledger) -> None:
    mint = await ledger.create_mint(9, token_program=TOKEN_PROGRAM_ID)
    holder = Keypair()
    await ledger.mint_to(mint, [(holder.pubkey(), 900)])

    await ledger.burn_checked(mint, holder, 400, memo="gtx:v1:burn:r-1")

    assert await ledger.get_token_balance(holder.pubkey(), mint) == 500
    assert await ledger.get_supply(mint) == 500


async def test_two_leg_swap_with_three_signers_is_atomic(ledger: Ledger) -> None:
    energy = await ledger.create_mint(9)
    money = await ledger.create_mint(6, token_program=TOKEN_PROGRAM_ID)
    seller, buyer = Keypair(), Keypair()
    await ledger.mint_to(energy, [(seller.pubkey(), 5_000)])
    await ledger.mint_to(money, [(buyer.pubkey(), 900)])

    await ledger.transfer_atomic(
        [TransferLeg(energy, seller, buyer.pubkey(), 2_000), TransferLeg(money, buyer, seller.pubkey(), 300)],
        memo="gtx:v1:trade:match-1",
        idempotency_key="settle:match-1",
    )
    assert await ledger.get_token_balance(buyer.pubkey(), energy) == 2_000
    assert await ledger.get_token_balance(seller.pubkey(), money) == 300

    with pytest.raises(TransactionFailed):  # the second leg overdraws: the first must not happen either
        await ledger.transfer_atomic(
            [
                TransferLeg(energy, seller, buyer.pubkey(), 1_000),
                TransferLeg(money, buyer, seller.pubkey(), 601),
            ]
        )
    assert await ledger.get_token_balance(seller.pubkey(), energy) == 3_000
    assert await ledger.get_token_balance(buyer.pubkey(), money) == 600


async def test_escrow_account_owned_by_a_platform_key_settles_a_leg(ledger: Ledger) -> None:
    money = await ledger.create_mint(6)
    escrow_authority, buyer, seller = Keypair(), Keypair(), Keypair()
    escrow = await ledger.create_token_account(
        money, escrow_authority.pubkey(), idempotency_key="escrow:buyer"
    )
    again = await ledger.create_token_account(
        money, escrow_authority.pubkey(), idempotency_key="escrow:buyer"
    )
    await ledger.mint_to(money, [(buyer.pubkey(), 1_000)])

    await ledger.transfer_atomic(
        [TransferLeg(money, buyer, escrow_authority.pubkey(), 400, destination=escrow)]
    )
    await ledger.transfer_atomic([TransferLeg(money, escrow_authority, seller.pubkey(), 250, source=escrow)])

    assert again == escrow
    holding = await ledger.get_token_account(escrow)
    assert holding is not None and (holding.owner, holding.amount) == (escrow_authority.pubkey(), 150)
    assert await ledger.get_token_balance(seller.pubkey(), money) == 250


async def test_caller_signed_transaction_lands_once_even_when_resent(ledger: Ledger) -> None:
    sender, receiver = Keypair(), Keypair()
    await ledger.airdrop(sender.pubkey(), 2_000_000_000)
    blockhash, _ = await ledger.latest_blockhash()
    message = Message(
        [
            transfer(
                TransferParams(from_pubkey=sender.pubkey(), to_pubkey=receiver.pubkey(), lamports=1_000_000)
            )
        ],
        sender.pubkey(),
    )
    tx = Transaction([sender], message, blockhash)

    first = await ledger.send_transaction(tx)
    resent = await ledger.send_transaction(tx)

    assert first == resent == tx.signatures[0]
    assert await ledger.get_balance(receiver.pubkey()) == 1_000_000
    status = await ledger.get_signature_status(first)
    assert status is not None and status.ok


async def test_caller_signed_transaction_with_a_dead_blockhash_is_reported_expired(ledger: Ledger) -> None:
    sender = Keypair()
    await ledger.airdrop(sender.pubkey(), 2_000_000_000)
    message = Message(
        [
            transfer(
                TransferParams(from_pubkey=sender.pubkey(), to_pubkey=Keypair().pubkey(), lamports=1_000_000)
            )
        ],
        sender.pubkey(),
    )
    tx = Transaction([sender], message, Hash.new_unique())  # never issued by this chain

    for _ in range(2):  # and again: the verdict is remembered, nothing lands
        with pytest.raises(BlockhashExpired):
            await ledger.send_transaction(tx)
    assert await ledger.get_balance(sender.pubkey()) == 2_000_000_000


async def test_unknown_signature_has_no_status(ledger: Ledger) -> None:
    assert await ledger.get_signature_status(Keypair().sign_message(b"never sent")) is None


async def test_certificate_issue_transfer_retire(ledger: Ledger) -> None:
    producer, buyer = Keypair(), Keypair()
    metadata = CertificateMetadata(
        name="GridTokenX REC 2025-01 F-1",
        symbol="GREC",
        uri="https://gridtokenx.example/certificates/c-1",
        fields=(
            ("facility_id", "F-1"),
            ("energy_wh", "1500000"),
            ("period", "2025-01"),
            ("source", "solar"),
            ("reading_hash", READINGS_HASH),
        ),
    )

    issued = await ledger.issue_certificate(
        metadata,
        producer.pubkey(),
        memo=ix.reading_hash_memo(READINGS_HASH, "erc"),
        idempotency_key="erc:c-1",
    )
    retried = await ledger.issue_certificate(
        metadata,
        producer.pubkey(),
        idempotency_key="erc:c-1",
        memo=ix.reading_hash_memo(READINGS_HASH, "erc"),
    )

    assert retried == issued
    certificate = await ledger.get_certificate(issued.mint)
    assert certificate is not None
    assert (certificate.metadata, certificate.supply) == (metadata, 1)
    assert certificate.mint_authority is None and certificate.update_authority is None
    assert await ledger.get_token_balance(producer.pubkey(), issued.mint) == 1
    mint_info = await ledger.get_mint(issued.mint)
    assert (mint_info.token_program, mint_info.decimals) == (TOKEN_2022_PROGRAM_ID, 0)

    with pytest.raises(TransactionFailed):  # supply is fixed: nobody can mint a second one
        await ledger.submit(
            [
                ix.mint_to_checked(
                    issued.mint,
                    ix.associated_address(producer.pubkey(), issued.mint, TOKEN_2022_PROGRAM_ID),
                    ledger.authority.pubkey(),
                    1,
                    0,
                    TOKEN_2022_PROGRAM_ID,
                )
            ],
            [ledger.authority],
        )

    await ledger.transfer_certificate(issued.mint, producer, buyer.pubkey(), memo="gtx:v1:erc-transfer:c-1")
    assert await ledger.get_token_balance(buyer.pubkey(), issued.mint) == 1
    assert await ledger.get_token_balance(producer.pubkey(), issued.mint) == 0

    await ledger.retire_certificate(issued.mint, buyer, memo="gtx:v1:erc-retire:c-1")
    retired = await ledger.get_certificate(issued.mint)
    assert retired is not None and retired.retired and retired.metadata == metadata
    assert (
        await ledger.get_token_account(await ledger.associated_address(buyer.pubkey(), issued.mint)) is None
    )


async def test_submit_refuses_what_cannot_fit_one_transaction(ledger: Ledger) -> None:
    mint = await ledger.create_mint(9)
    owners = [Keypair().pubkey() for _ in range(30)]
    payer = ledger.fee_payer.pubkey()
    with pytest.raises(TransactionTooLarge):
        await ledger.submit([ix.create_ata_idempotent(payer, o, mint, TOKEN_2022_PROGRAM_ID) for o in owners])
