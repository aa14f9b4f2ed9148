"""Parse mint and token accounts of both token programs, including Token-2022 extensions.

solders' Mint and TokenAccount reject Token-2022 accounts that carry extensions, so the fixed base
layout is parsed with them and the TLV extension area after byte 165 is read here.
"""

from __future__ import annotations

import struct

from solders.account import Account
from solders.pubkey import Pubkey
from solders.token.state import Mint, TokenAccount, TokenAccountState
from spl.token.constants import ACCOUNT_LEN, MINT_LEN, TOKEN_2022_PROGRAM_ID

from gridtokenx.ledger.instructions import TOKEN_PROGRAMS
from gridtokenx.ledger.records import MintInfo, TokenAccountInfo
from gridtokenx.ledger.token2022 import BASE_ACCOUNT_LEN, TLV_HEADER_LEN

ACCOUNT_TYPE_MINT = 1
ACCOUNT_TYPE_ACCOUNT = 2


class NotATokenAccount(ValueError):
    """The account is missing, owned by another program, or of the other kind (mint vs holding)."""


def extensions(data: bytes) -> dict[int, bytes]:
    """Token-2022 TLV entries by extension type; empty for base-size accounts."""
    found: dict[int, bytes] = {}
    pos = BASE_ACCOUNT_LEN + 1
    while pos + TLV_HEADER_LEN <= len(data):
        kind, length = struct.unpack_from("<HH", data, pos)
        if kind == 0:  # Uninitialized: the rest is padding
            break
        start = pos + TLV_HEADER_LEN
        found[kind] = data[start : start + length]
        pos = start + length
    return found


def _account_type(data: bytes) -> int | None:
    return data[BASE_ACCOUNT_LEN] if len(data) > BASE_ACCOUNT_LEN else None


def parse_mint(address: Pubkey, account: Account | None) -> MintInfo:
    if account is None or account.owner not in TOKEN_PROGRAMS:
        raise NotATokenAccount(f"{address} is not a mint")
    data = account.data
    is_mint = len(data) == MINT_LEN or (
        account.owner == TOKEN_2022_PROGRAM_ID and _account_type(data) == ACCOUNT_TYPE_MINT
    )
    if not is_mint:
        raise NotATokenAccount(f"{address} is not a mint")
    mint = Mint.from_bytes(bytes(data[:MINT_LEN]))
    if not mint.is_initialized:
        raise NotATokenAccount(f"{address} is not an initialised mint")
    return MintInfo(
        address=address,
        token_program=account.owner,
        decimals=mint.decimals,
        supply=mint.supply,
        mint_authority=mint.mint_authority,
        freeze_authority=mint.freeze_authority,
    )


def parse_token_account(address: Pubkey, account: Account | None) -> TokenAccountInfo:
    if account is None or account.owner not in TOKEN_PROGRAMS or len(account.data) < ACCOUNT_LEN:
        raise NotATokenAccount(f"{address} is not a token account")
    data = account.data
    if len(data) > ACCOUNT_LEN and _account_type(data) != ACCOUNT_TYPE_ACCOUNT:
        raise NotATokenAccount(f"{address} is not a token account")
    state = TokenAccount.from_bytes(bytes(data[:ACCOUNT_LEN]))
    if state.state == TokenAccountState.Uninitialized:
        raise NotATokenAccount(f"{address} is not an initialised token account")
    return TokenAccountInfo(
        address=address,
        token_program=account.owner,
        mint=state.mint,
        owner=state.owner,
        amount=state.amount,
        frozen=state.state == TokenAccountState.Frozen,
    )
