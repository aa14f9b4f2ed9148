"""Every hand-encoded Token-2022 instruction, run against the real Token-2022 program in LiteSVM."""

from __future__ import annotations

import pytest
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import Message
from solders.system_program import CreateAccountParams, TransferParams, create_account, transfer
from solders.transaction import Transaction
from solders.transaction_metadata import TransactionMetadata
from spl.token.constants import TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID

from gridtokenx.ledger import certificate_nft, token2022
from gridtokenx.ledger import instructions as ix
from gridtokenx.ledger.accounts import NotATokenAccount, extensions, parse_mint, parse_token_account
from gridtokenx.ledger.records import CertificateMetadata

METADATA = CertificateMetadata(
    name="GridTokenX REC",
    symbol="GREC",
    uri="https://gridtokenx.example/c/1",
    fields=(("facility_id", "F-1"), ("energy_wh", "1500000"), ("ünïcode", "✓")),
)


class Chain:
    def __init__(self) -> None:
        self.svm = LiteSVM()
        self.payer = Keypair()
        self.svm.airdrop(self.payer.pubkey(), 10**12)

    def send(self, instructions: list[Instruction], *signers: Keypair) -> bool:
        tx = Transaction(
            [self.payer, *signers], Message(instructions, self.payer.pubkey()), self.svm.latest_blockhash()
        )
        result = self.svm.send_transaction(tx)
        self.svm.expire_blockhash()
        return isinstance(result, TransactionMetadata)


@pytest.fixture
def chain() -> Chain:
    return Chain()


def create_certificate_mint(chain: Chain, authority: Keypair, metadata: CertificateMetadata) -> Keypair:
    mint = Keypair()
    size = token2022.mint_with_metadata_len(authority.pubkey(), mint.pubkey(), metadata)
    groups = certificate_nft.create_groups(
        chain.payer.pubkey(),
        mint.pubkey(),
        authority.pubkey(),
        metadata,
        chain.svm.minimum_balance_for_rent_exemption(size),
    )
    assert chain.send([instruction for group in groups for instruction in group], mint, authority)
    return mint


def test_metadata_pointer_initialize_layout_and_effect(chain: Chain) -> None:
    authority, mint = Keypair(), Keypair()
    pointer = token2022.initialize_metadata_pointer(mint.pubkey(), authority.pubkey(), mint.pubkey())
    assert pointer.data == bytes([39, 0]) + bytes(authority.pubkey()) + bytes(mint.pubkey())

    space = token2022.MINT_WITH_METADATA_POINTER_LEN
    allocate = create_account(
        CreateAccountParams(
            from_pubkey=chain.payer.pubkey(),
            to_pubkey=mint.pubkey(),
            lamports=chain.svm.minimum_balance_for_rent_exemption(space),
            space=space,
            owner=TOKEN_2022_PROGRAM_ID,
        )
    )
    init = ix.initialize_mint2(mint.pubkey(), 0, authority.pubkey(), None, TOKEN_2022_PROGRAM_ID)
    assert chain.send([allocate, pointer, init], mint)

    account = chain.svm.get_account(mint.pubkey())
    assert account is not None
    found = extensions(account.data)
    assert token2022.decode_metadata_pointer(found[token2022.EXTENSION_METADATA_POINTER]) == (
        authority.pubkey(),
        mint.pubkey(),
    )


def test_token_metadata_bytes_on_chain_equal_our_encoding(chain: Chain) -> None:
    authority = Keypair()
    mint = create_certificate_mint(chain, authority, METADATA)

    account = chain.svm.get_account(mint.pubkey())
    assert account is not None
    on_chain = extensions(account.data)[token2022.EXTENSION_TOKEN_METADATA]
    assert on_chain == token2022.encode_token_metadata(authority.pubkey(), mint.pubkey(), METADATA)
    assert len(account.data) == token2022.mint_with_metadata_len(authority.pubkey(), mint.pubkey(), METADATA)
    assert token2022.decode_token_metadata(on_chain) == (authority.pubkey(), mint.pubkey(), METADATA)


def test_update_field_replaces_standard_and_custom_fields(chain: Chain) -> None:
    authority = Keypair()
    mint = create_certificate_mint(chain, authority, METADATA)
    # Longer metadata needs more rent: Token-2022 does not pull it, so send it first.
    rent = transfer(TransferParams(from_pubkey=chain.payer.pubkey(), to_pubkey=mint.pubkey(), lamports=10**7))

    assert chain.send(
        [
            rent,
            token2022.update_token_metadata_field(mint.pubkey(), authority.pubkey(), "name", "Renamed REC"),
            token2022.update_token_metadata_field(mint.pubkey(), authority.pubkey(), "facility_id", "F-2"),
            token2022.update_token_metadata_field(mint.pubkey(), authority.pubkey(), "new_key", "v"),
        ],
        authority,
    )

    account = chain.svm.get_account(mint.pubkey())
    assert account is not None
    _, _, metadata = token2022.decode_token_metadata(
        extensions(account.data)[token2022.EXTENSION_TOKEN_METADATA]
    )
    assert metadata.name == "Renamed REC"
    assert metadata.fields == (
        ("facility_id", "F-2"),
        ("energy_wh", "1500000"),
        ("ünïcode", "✓"),
        ("new_key", "v"),
    )


def test_update_authority_to_none_makes_metadata_immutable(chain: Chain) -> None:
    authority = Keypair()
    mint = create_certificate_mint(chain, authority, METADATA)

    assert chain.send(
        [token2022.update_token_metadata_authority(mint.pubkey(), authority.pubkey(), None)], authority
    )
    account = chain.svm.get_account(mint.pubkey())
    assert account is not None
    update_authority, _, _ = token2022.decode_token_metadata(
        extensions(account.data)[token2022.EXTENSION_TOKEN_METADATA]
    )
    assert update_authority is None
    assert not chain.send(
        [token2022.update_token_metadata_field(mint.pubkey(), authority.pubkey(), "name", "x")], authority
    )


def test_issue_group_fixes_supply_at_one(chain: Chain) -> None:
    authority, owner = Keypair(), Keypair()
    mint = create_certificate_mint(chain, authority, METADATA)

    assert chain.send(
        list(
            certificate_nft.issue_group(
                chain.payer.pubkey(), mint.pubkey(), authority.pubkey(), owner.pubkey()
            )
        ),
        authority,
    )
    info = parse_mint(mint.pubkey(), chain.svm.get_account(mint.pubkey()))
    assert (info.supply, info.mint_authority, info.decimals) == (1, None, 0)
    holder = ix.associated_address(owner.pubkey(), mint.pubkey(), TOKEN_2022_PROGRAM_ID)
    holding = parse_token_account(holder, chain.svm.get_account(holder))
    assert (holding.owner, holding.amount, holding.mint) == (owner.pubkey(), 1, mint.pubkey())


def test_certificate_metadata_is_validated_before_building() -> None:
    with pytest.raises(ValueError):
        certificate_nft.check_metadata(CertificateMetadata("n", "s", "u", (("k", "1"), ("k", "2"))))
    with pytest.raises(ValueError):
        certificate_nft.check_metadata(CertificateMetadata("n", "s", "u", (("uri", "x"),)))


def test_parsers_tell_mints_from_token_accounts(chain: Chain) -> None:
    authority, owner, mint = Keypair(), Keypair(), Keypair()
    allocate, init = ix.create_mint(
        chain.payer.pubkey(),
        mint.pubkey(),
        chain.svm.minimum_balance_for_rent_exemption(82),
        2,
        authority.pubkey(),
        None,
        TOKEN_PROGRAM_ID,
    )
    assert chain.send(
        [
            allocate,
            init,
            ix.create_ata_idempotent(chain.payer.pubkey(), owner.pubkey(), mint.pubkey(), TOKEN_PROGRAM_ID),
        ],
        mint,
    )
    holder = ix.associated_address(owner.pubkey(), mint.pubkey(), TOKEN_PROGRAM_ID)
    mint_account, holder_account = chain.svm.get_account(mint.pubkey()), chain.svm.get_account(holder)

    assert parse_mint(mint.pubkey(), mint_account).decimals == 2
    assert parse_token_account(holder, holder_account).owner == owner.pubkey()
    assert mint_account is not None and extensions(mint_account.data) == {}
    with pytest.raises(NotATokenAccount):
        parse_mint(holder, holder_account)
    with pytest.raises(NotATokenAccount):
        parse_token_account(mint.pubkey(), mint_account)
    with pytest.raises(NotATokenAccount):
        parse_mint(chain.payer.pubkey(), chain.svm.get_account(chain.payer.pubkey()))
