"""Instruction builders for SPL Token, Token-2022, ATA, Memo, System and Compute Budget.

Everything here comes from solders and solana-py's `spl` package; the Token-2022 extensions no
Python package builds live in `token2022.py`.
"""

from __future__ import annotations

from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.instruction import Instruction
from solders.pubkey import Pubkey
from solders.system_program import CreateAccountParams, create_account
from spl.memo.constants import MEMO_PROGRAM_ID
from spl.memo.instructions import create_memo
from spl.memo.models import MemoParams
from spl.token import instructions as spl
from spl.token import models as params
from spl.token.constants import ACCOUNT_LEN, MINT_LEN, TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID

from gridtokenx.ledger.records import U64_MAX

TOKEN_PROGRAMS = (TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID)
MAX_MEMO_BYTES = 512


def check_token_program(program: Pubkey) -> Pubkey:
    if program not in TOKEN_PROGRAMS:
        raise ValueError(f"not a token program: {program}")
    return program


def check_amount(amount: int) -> int:
    """Token amounts are u64 base units; bool is rejected because it is an int subclass."""
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= U64_MAX:
        raise ValueError(f"amount must be an integer in 1..2^64-1, got {amount!r}")
    return amount


def associated_address(owner: Pubkey, mint: Pubkey, token_program: Pubkey) -> Pubkey:
    return spl.get_associated_token_address(owner, mint, check_token_program(token_program))


def create_ata_idempotent(payer: Pubkey, owner: Pubkey, mint: Pubkey, token_program: Pubkey) -> Instruction:
    return spl.create_idempotent_associated_token_account(
        payer, owner, mint, check_token_program(token_program)
    )


def create_mint(
    payer: Pubkey,
    mint: Pubkey,
    lamports: int,
    decimals: int,
    mint_authority: Pubkey,
    freeze_authority: Pubkey | None,
    token_program: Pubkey,
) -> tuple[Instruction, Instruction]:
    """Allocate and initialise a mint; both must land in one transaction so nobody can grab the account."""
    allocate = create_account(
        CreateAccountParams(
            from_pubkey=payer, to_pubkey=mint, lamports=lamports, space=MINT_LEN, owner=token_program
        )
    )
    return allocate, initialize_mint2(mint, decimals, mint_authority, freeze_authority, token_program)


def initialize_mint2(
    mint: Pubkey,
    decimals: int,
    mint_authority: Pubkey,
    freeze_authority: Pubkey | None,
    token_program: Pubkey,
) -> Instruction:
    if not 0 <= decimals <= 255:
        raise ValueError("decimals must be 0..255")
    return spl.initialize_mint2(
        params.InitializeMint2Params(
            decimals=decimals,
            mint=mint,
            mint_authority=mint_authority,
            freeze_authority=freeze_authority,
            program_id=check_token_program(token_program),
        )
    )


def create_token_account(
    payer: Pubkey, account: Pubkey, lamports: int, mint: Pubkey, owner: Pubkey, token_program: Pubkey
) -> tuple[Instruction, Instruction]:
    """A non-associated token account (e.g. one escrow account per user and mint)."""
    allocate = create_account(
        CreateAccountParams(
            from_pubkey=payer, to_pubkey=account, lamports=lamports, space=ACCOUNT_LEN, owner=token_program
        )
    )
    init = spl.initialize_account3(
        params.InitializeAccount3Params(
            account=account, mint=mint, owner=owner, program_id=check_token_program(token_program)
        )
    )
    return allocate, init


def mint_to(
    mint: Pubkey, destination: Pubkey, authority: Pubkey, amount: int, token_program: Pubkey
) -> Instruction:
    return spl.mint_to(
        params.MintToParams(
            amount=check_amount(amount),
            dest=destination,
            mint=mint,
            mint_authority=authority,
            program_id=token_program,
        )
    )


def mint_to_checked(
    mint: Pubkey, destination: Pubkey, authority: Pubkey, amount: int, decimals: int, token_program: Pubkey
) -> Instruction:
    return spl.mint_to_checked(
        params.MintToCheckedParams(
            amount=check_amount(amount),
            decimals=decimals,
            dest=destination,
            mint=mint,
            mint_authority=authority,
            program_id=token_program,
        )
    )


def transfer_checked(
    source: Pubkey,
    mint: Pubkey,
    destination: Pubkey,
    owner: Pubkey,
    amount: int,
    decimals: int,
    token_program: Pubkey,
) -> Instruction:
    return spl.transfer_checked(
        params.TransferCheckedParams(
            amount=check_amount(amount),
            decimals=decimals,
            dest=destination,
            mint=mint,
            owner=owner,
            program_id=token_program,
            source=source,
        )
    )


def burn_checked(
    account: Pubkey, mint: Pubkey, owner: Pubkey, amount: int, decimals: int, token_program: Pubkey
) -> Instruction:
    return spl.burn_checked(
        params.BurnCheckedParams(
            account=account,
            amount=check_amount(amount),
            decimals=decimals,
            mint=mint,
            owner=owner,
            program_id=token_program,
        )
    )


def close_account(account: Pubkey, destination: Pubkey, owner: Pubkey, token_program: Pubkey) -> Instruction:
    return spl.close_account(
        params.CloseAccountParams(account=account, dest=destination, owner=owner, program_id=token_program)
    )


def revoke_mint_authority(mint: Pubkey, authority: Pubkey, token_program: Pubkey) -> Instruction:
    """Set the mint authority to None: the supply is fixed for ever."""
    return spl.set_authority(
        params.SetAuthorityParams(
            account=mint,
            authority=params.AuthorityType.MINT_TOKENS,
            current_authority=authority,
            new_authority=None,
            program_id=token_program,
        )
    )


def memo(signer: Pubkey, text: str) -> Instruction:
    """A Memo v3 instruction; the text must be UTF-8 (raw hash bytes are rejected on chain)."""
    data = text.encode("utf-8")
    if not data or len(data) > MAX_MEMO_BYTES:
        raise ValueError(f"memo must be 1..{MAX_MEMO_BYTES} bytes of UTF-8")
    return create_memo(MemoParams(program_id=MEMO_PROGRAM_ID, signer=signer, message=data))


def reading_hash_memo(sha256_hex: str, kind: str = "mint") -> str:
    """The memo text that ties a mint or certificate to the SHA-256 of the readings behind it."""
    digest = sha256_hex.lower()
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError("expected a SHA-256 hex digest")
    return f"gtx:v1:{kind}:sha256:{digest}"


def compute_budget(unit_limit: int, price_microlamports: int) -> tuple[Instruction, ...]:
    """The prefix that sets the compute-unit limit and the priority fee (omitted when zero)."""
    prefix: list[Instruction] = []
    if unit_limit:
        prefix.append(set_compute_unit_limit(unit_limit))
    if price_microlamports:
        prefix.append(set_compute_unit_price(price_microlamports))
    return tuple(prefix)
