"""Instruction groups for renewable-energy certificates as Token-2022 NFTs.

A certificate is a Token-2022 mint with 0 decimals whose MetadataPointer points at itself and
whose TokenMetadata carries the certificate fields. Issuing mints exactly 1 token and removes the
mint and metadata authorities, so the supply and the record can never change; retiring burns the
token and closes the holder's account, leaving the metadata on the mint as the public record.

Each builder returns groups: instructions inside a group must land in the same transaction.
"""

from __future__ import annotations

from solders.instruction import Instruction
from solders.pubkey import Pubkey
from solders.system_program import CreateAccountParams, create_account
from spl.token.constants import TOKEN_2022_PROGRAM_ID

from gridtokenx.ledger import instructions as ix
from gridtokenx.ledger import token2022
from gridtokenx.ledger.records import CertificateMetadata

CERTIFICATE_DECIMALS = 0


def check_metadata(metadata: CertificateMetadata) -> CertificateMetadata:
    keys = [key for key, _ in metadata.fields]
    if len(set(keys)) != len(keys):
        raise ValueError("certificate field keys must be unique")
    reserved = {token2022.FIELD_NAME, token2022.FIELD_SYMBOL, token2022.FIELD_URI}
    if reserved & set(keys):
        raise ValueError("name, symbol and uri are set through their own attributes")
    if not metadata.name or not metadata.symbol:
        raise ValueError("a certificate needs a name and a symbol")
    return metadata


def create_groups(
    payer: Pubkey, mint: Pubkey, authority: Pubkey, metadata: CertificateMetadata, lamports: int
) -> list[tuple[Instruction, ...]]:
    """Allocate and initialise the mint with its metadata, then one group per custom field.

    `lamports` must cover the final size (`token2022.mint_with_metadata_len`): the metadata
    instructions grow the account and fail if its rent is not already there.
    """
    check_metadata(metadata)
    allocate = create_account(
        CreateAccountParams(
            from_pubkey=payer,
            to_pubkey=mint,
            lamports=lamports,
            space=token2022.MINT_WITH_METADATA_POINTER_LEN,
            owner=TOKEN_2022_PROGRAM_ID,
        )
    )
    first = (
        allocate,
        token2022.initialize_metadata_pointer(mint, authority=authority, metadata_address=mint),
        ix.initialize_mint2(mint, CERTIFICATE_DECIMALS, authority, None, TOKEN_2022_PROGRAM_ID),
        token2022.initialize_token_metadata(
            mint, authority, authority, metadata.name, metadata.symbol, metadata.uri
        ),
    )
    fields = [
        (token2022.update_token_metadata_field(mint, authority, key, value),)
        for key, value in metadata.fields
    ]
    return [first, *fields]


def issue_group(payer: Pubkey, mint: Pubkey, authority: Pubkey, owner: Pubkey) -> tuple[Instruction, ...]:
    """Mint the single token to the owner and lock supply and metadata for ever."""
    account = ix.associated_address(owner, mint, TOKEN_2022_PROGRAM_ID)
    return (
        ix.create_ata_idempotent(payer, owner, mint, TOKEN_2022_PROGRAM_ID),
        ix.mint_to_checked(mint, account, authority, 1, CERTIFICATE_DECIMALS, TOKEN_2022_PROGRAM_ID),
        ix.revoke_mint_authority(mint, authority, TOKEN_2022_PROGRAM_ID),
        token2022.update_token_metadata_authority(mint, authority, None),
    )


def transfer_group(payer: Pubkey, mint: Pubkey, owner: Pubkey, new_owner: Pubkey) -> tuple[Instruction, ...]:
    source = ix.associated_address(owner, mint, TOKEN_2022_PROGRAM_ID)
    destination = ix.associated_address(new_owner, mint, TOKEN_2022_PROGRAM_ID)
    return (
        ix.create_ata_idempotent(payer, new_owner, mint, TOKEN_2022_PROGRAM_ID),
        ix.transfer_checked(source, mint, destination, owner, 1, CERTIFICATE_DECIMALS, TOKEN_2022_PROGRAM_ID),
    )


def retire_group(payer: Pubkey, mint: Pubkey, owner: Pubkey) -> tuple[Instruction, ...]:
    """Burn the token and close the holder's account; its rent goes back to the payer who funded it."""
    account = ix.associated_address(owner, mint, TOKEN_2022_PROGRAM_ID)
    return (
        ix.burn_checked(account, mint, owner, 1, CERTIFICATE_DECIMALS, TOKEN_2022_PROGRAM_ID),
        ix.close_account(account, payer, owner, TOKEN_2022_PROGRAM_ID),
    )
