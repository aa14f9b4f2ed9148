"""`Ledger`: the one async interface to Solana, whatever the backend.

Token operations are composed here from a few backend primitives (execute a plan of
transactions, read accounts, rent, balances, statuses), so both backends share the same
instruction building, packing and idempotency rules:
- a plan is packed into as few transactions as the limits allow (`packing.pack`);
- with an `idempotency_key`, a plan runs at most once: a retry returns the same signatures,
  resumes a plan that stopped part-way, and a different plan under the same key is refused;
- keypairs a retry must reproduce (new mints, certificates) are derived from the key.
The fee payer signs and pays for every transaction, including the rent of accounts it creates.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from types import TracebackType
from typing import ClassVar, Self

from solders.account import Account
from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import Transaction, VersionedTransaction
from spl.token.constants import ACCOUNT_LEN, MINT_LEN, TOKEN_2022_PROGRAM_ID

from gridtokenx.ledger import certificate_nft
from gridtokenx.ledger import instructions as ix
from gridtokenx.ledger.accounts import NotATokenAccount, extensions, parse_mint, parse_token_account
from gridtokenx.ledger.errors import IdempotencyConflict
from gridtokenx.ledger.packing import Limits, fingerprint, pack
from gridtokenx.ledger.records import (
    CertificateInfo,
    CertificateMetadata,
    IssuedCertificate,
    MintInfo,
    MintRecord,
    PlannedTx,
    TokenAccountInfo,
    TransferLeg,
    TxStatus,
)
from gridtokenx.ledger.token2022 import (
    EXTENSION_TOKEN_METADATA,
    decode_token_metadata,
    mint_with_metadata_len,
)


class Ledger(ABC):
    backend: ClassVar[str]

    def __init__(self, authority: Keypair, fee_payer: Keypair) -> None:
        self._authority = authority
        self._fee_payer = fee_payer
        # Deriving a public key from a Keypair is not free: once for the platform's keys.
        self._authority_key = authority.pubkey()
        self._payer_key = fee_payer.pubkey()
        self._mint_meta: dict[Pubkey, tuple[Pubkey, int]] = {}

    @property
    def authority(self) -> Keypair:
        """The platform authority: mint authority of the energy token and issuer of certificates."""
        return self._authority

    @property
    def fee_payer(self) -> Keypair:
        return self._fee_payer

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # ---- backend primitives ----------------------------------------------------------------------
    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    def limits(self) -> Limits:
        """Per-transaction compute budget and the prefix instructions this backend adds."""

    @abstractmethod
    async def _execute(
        self, plan: Sequence[PlannedTx], key: str | None, plan_fingerprint: bytes
    ) -> list[Signature]:
        """Land each planned transaction in order (at most once per key); raise on the first failure."""

    @abstractmethod
    async def get_multiple_accounts(self, addresses: Sequence[Pubkey]) -> list[Account | None]: ...

    @abstractmethod
    async def minimum_balance(self, size: int) -> int:
        """Lamports that make an account of `size` bytes rent-exempt."""

    @abstractmethod
    async def get_balance(self, address: Pubkey) -> int:
        """Lamports held by `address` (0 when the account does not exist)."""

    @abstractmethod
    async def get_token_account_balance(self, account: Pubkey) -> int | None:
        """Base units held by a token account, None when it does not exist."""

    @abstractmethod
    async def airdrop(self, address: Pubkey, lamports: int) -> None:
        """Credit lamports (embedded chain, local validator or devnet faucet)."""

    @abstractmethod
    async def latest_blockhash(self) -> tuple[Hash, int]:
        """A blockhash for callers that sign themselves, and the last block height it is valid for."""

    @abstractmethod
    async def send_transaction(self, tx: Transaction | VersionedTransaction) -> Signature:
        """Land a transaction signed by the caller; resending identical bytes is safe."""

    @abstractmethod
    async def get_signature_status(self, signature: Signature) -> TxStatus | None: ...

    @abstractmethod
    async def mints(self) -> list[MintRecord]:
        """Mints this ledger created under a label."""

    @abstractmethod
    async def _register_mint(self, record: MintRecord) -> None: ...

    # ---- plans -----------------------------------------------------------------------------------
    def plan(self, groups: Sequence[PlannedTx], suffix: Sequence[Instruction] = ()) -> list[PlannedTx]:
        return pack(groups, self._payer_key, self.limits(), suffix)

    async def run(
        self, groups: Sequence[PlannedTx], *, idempotency_key: str | None = None
    ) -> list[Signature]:
        """Pack groups into transactions and land them in order; each group stays atomic."""
        plan = self.plan(groups)
        return await self._execute(plan, idempotency_key, fingerprint(plan))

    async def submit(
        self,
        instructions: Sequence[Instruction],
        signers: Sequence[Keypair] = (),
        *,
        idempotency_key: str | None = None,
    ) -> Signature:
        """Land instructions atomically in one transaction (e.g. a multi-signer swap)."""
        (signature,) = await self.run(
            [PlannedTx(tuple(instructions), tuple(signers))], idempotency_key=idempotency_key
        )
        return signature

    def derive_keypair(self, purpose: str, key: str) -> Keypair:
        """A keypair only this authority can reproduce, so a retried creation targets the same address."""
        seed = hashlib.sha256(
            b"gridtokenx-ledger\x00" + purpose.encode() + b"\x00" + key.encode() + bytes(self._authority)
        ).digest()
        return Keypair.from_seed(seed)

    # ---- reads -----------------------------------------------------------------------------------
    async def get_account(self, address: Pubkey) -> Account | None:
        (account,) = await self.get_multiple_accounts([address])
        return account

    async def get_mint(self, mint: Pubkey) -> MintInfo:
        info = parse_mint(mint, await self.get_account(mint))
        self._mint_meta[mint] = (info.token_program, info.decimals)
        return info

    async def get_supply(self, mint: Pubkey) -> int:
        return (await self.get_mint(mint)).supply

    async def get_token_account(self, address: Pubkey) -> TokenAccountInfo | None:
        account = await self.get_account(address)
        return None if account is None else parse_token_account(address, account)

    async def associated_address(self, owner: Pubkey, mint: Pubkey) -> Pubkey:
        program, _ = await self._mint_program(mint)
        return ix.associated_address(owner, mint, program)

    async def get_token_balance(self, owner: Pubkey, mint: Pubkey) -> int:
        """Balance of the owner's associated account (0 when it does not exist yet)."""
        return await self.get_token_account_balance(await self.associated_address(owner, mint)) or 0

    async def get_certificate(self, mint: Pubkey) -> CertificateInfo | None:
        account = await self.get_account(mint)
        if account is None:
            return None
        info = parse_mint(mint, account)
        value = extensions(account.data).get(EXTENSION_TOKEN_METADATA)
        if value is None:
            raise NotATokenAccount(f"{mint} carries no token metadata")
        update_authority, _, metadata = decode_token_metadata(value)
        return CertificateInfo(
            mint=mint,
            metadata=metadata,
            supply=info.supply,
            mint_authority=info.mint_authority,
            update_authority=update_authority,
        )

    async def _mint_program(self, mint: Pubkey) -> tuple[Pubkey, int]:
        """(token program, decimals) of a mint; both are immutable, so they are cached."""
        cached = self._mint_meta.get(mint)
        if cached is None:
            info = await self.get_mint(mint)
            cached = (info.token_program, info.decimals)
        return cached

    # ---- mints and accounts ----------------------------------------------------------------------
    async def create_mint(
        self,
        decimals: int,
        *,
        token_program: Pubkey = TOKEN_2022_PROGRAM_ID,
        mint_authority: Pubkey | None = None,
        freeze_authority: Pubkey | None = None,
        mint: Keypair | None = None,
        label: str | None = None,
        idempotency_key: str | None = None,
    ) -> Pubkey:
        """Create a mint (classic SPL Token or Token-2022); the platform authority mints by default."""
        if mint is None:
            mint = self.derive_keypair("mint", idempotency_key) if idempotency_key else Keypair()
        allocate, init = ix.create_mint(
            self._payer_key,
            mint.pubkey(),
            await self.minimum_balance(MINT_LEN),
            decimals,
            mint_authority or self._authority_key,
            freeze_authority,
            ix.check_token_program(token_program),
        )
        await self.run([PlannedTx((allocate, init), (mint,))], idempotency_key=idempotency_key)
        self._mint_meta[mint.pubkey()] = (token_program, decimals)
        if label is not None:
            await self._register_mint(MintRecord(label, mint.pubkey(), token_program, decimals))
        return mint.pubkey()

    async def ensure_mint(
        self, label: str, decimals: int, token_program: Pubkey = TOKEN_2022_PROGRAM_ID
    ) -> Pubkey:
        """The mint registered under `label`, created on first use (e.g. "energy").

        Its address derives from the authority and the label, so a second machine with the same
        authority and an empty state directory adopts the existing mint instead of creating one.
        """
        wanted = None
        for record in await self.mints():
            if record.label == label:
                wanted = record
        if wanted is None:
            key = f"mint:{label}"
            address = self.derive_keypair("mint", key).pubkey()
            account = await self.get_account(address)
            if account is None:
                return await self.create_mint(
                    decimals, token_program=token_program, label=label, idempotency_key=key
                )
            info = parse_mint(address, account)
            wanted = MintRecord(label, address, info.token_program, info.decimals)
            await self._register_mint(wanted)
        if (wanted.decimals, wanted.token_program) != (decimals, token_program):
            raise IdempotencyConflict(
                f"mint {label!r} exists with {wanted.decimals} decimals under {wanted.token_program}"
            )
        return wanted.address

    async def create_associated_token_accounts(self, mint: Pubkey, owners: Sequence[Pubkey]) -> list[Pubkey]:
        """Associated accounts of `owners` for `mint`, creating only the missing ones (idempotent)."""
        program, _ = await self._mint_program(mint)
        addresses = [ix.associated_address(owner, mint, program) for owner in owners]
        unique = dict(zip(addresses, owners, strict=True))
        existing = await self.get_multiple_accounts(list(unique))
        payer = self._payer_key
        missing = [
            PlannedTx((ix.create_ata_idempotent(payer, owner, mint, program),))
            for (address, owner), account in zip(unique.items(), existing, strict=True)
            if account is None
        ]
        if missing:
            await self.run(missing)
        return addresses

    async def create_token_account(
        self,
        mint: Pubkey,
        owner: Pubkey,
        *,
        account: Keypair | None = None,
        idempotency_key: str | None = None,
    ) -> Pubkey:
        """A token account that is not the owner's associated one (e.g. an escrow account)."""
        if account is None:
            account = self.derive_keypair("token-account", idempotency_key) if idempotency_key else Keypair()
        program, _ = await self._mint_program(mint)
        allocate, init = ix.create_token_account(
            self._payer_key,
            account.pubkey(),
            await self.minimum_balance(ACCOUNT_LEN),
            mint,
            owner,
            program,
        )
        await self.run([PlannedTx((allocate, init), (account,))], idempotency_key=idempotency_key)
        return account.pubkey()

    # ---- tokens ----------------------------------------------------------------------------------
    async def mint_to(
        self,
        mint: Pubkey,
        recipients: Sequence[tuple[Pubkey, int]],
        *,
        memo: str | None = None,
        idempotency_key: str | None = None,
    ) -> list[Signature]:
        """Mint to many owners' associated accounts in as few transactions as fit; the memo rides in each.

        With an `idempotency_key` (e.g. an outbox id) a retry returns the same signatures and never
        mints twice; a retry after a partial failure finishes only the missing transactions.
        """
        if not recipients:
            raise ValueError("mint_to needs at least one recipient")
        program, _ = await self._mint_program(mint)
        authority = self._authority
        groups = [
            PlannedTx(
                (
                    ix.mint_to(
                        mint,
                        ix.associated_address(owner, mint, program),
                        self._authority_key,
                        amount,
                        program,
                    ),
                ),
                (authority,),
            )
            for owner, amount in recipients
        ]
        suffix = (ix.memo(self._payer_key, memo),) if memo is not None else ()
        plan = self.plan(groups, suffix)
        # Creating missing accounts is idempotent, so a retry may safely repeat it.
        owners = list(dict.fromkeys(owner for owner, _ in recipients))
        await self.create_associated_token_accounts(mint, owners)
        return await self._execute(plan, idempotency_key, fingerprint(plan))

    async def transfer_atomic(
        self,
        legs: Sequence[TransferLeg],
        *,
        memo: str | None = None,
        idempotency_key: str | None = None,
    ) -> Signature:
        """All legs (transfer_checked each) land together or not at all: the settlement swap."""
        if not legs:
            raise ValueError("a transfer needs at least one leg")
        payer = self._payer_key
        instructions: list[Instruction] = []
        signers: list[Keypair] = []
        for leg in legs:
            program, decimals = await self._mint_program(leg.mint)
            source = leg.source or ix.associated_address(leg.owner.pubkey(), leg.mint, program)
            destination = leg.destination
            if destination is None:
                destination = ix.associated_address(leg.to, leg.mint, program)
                instructions.append(ix.create_ata_idempotent(payer, leg.to, leg.mint, program))
            instructions.append(
                ix.transfer_checked(
                    source, leg.mint, destination, leg.owner.pubkey(), leg.amount, decimals, program
                )
            )
            signers.append(leg.owner)
        if memo is not None:
            instructions.append(ix.memo(payer, memo))
        return await self.submit(instructions, signers, idempotency_key=idempotency_key)

    async def transfer_checked(
        self,
        mint: Pubkey,
        owner: Keypair,
        to: Pubkey,
        amount: int,
        *,
        memo: str | None = None,
        idempotency_key: str | None = None,
    ) -> Signature:
        """Move tokens between associated accounts, creating the recipient's when missing."""
        leg = TransferLeg(mint=mint, owner=owner, to=to, amount=amount)
        return await self.transfer_atomic([leg], memo=memo, idempotency_key=idempotency_key)

    async def burn_checked(
        self,
        mint: Pubkey,
        owner: Keypair,
        amount: int,
        *,
        account: Pubkey | None = None,
        memo: str | None = None,
        idempotency_key: str | None = None,
    ) -> Signature:
        program, decimals = await self._mint_program(mint)
        source = account or ix.associated_address(owner.pubkey(), mint, program)
        instructions = [ix.burn_checked(source, mint, owner.pubkey(), amount, decimals, program)]
        if memo is not None:
            instructions.append(ix.memo(self._payer_key, memo))
        return await self.submit(instructions, [owner], idempotency_key=idempotency_key)

    # ---- certificates (Token-2022 NFTs) ----------------------------------------------------------
    async def issue_certificate(
        self,
        metadata: CertificateMetadata,
        owner: Pubkey,
        *,
        mint: Keypair | None = None,
        memo: str | None = None,
        idempotency_key: str | None = None,
    ) -> IssuedCertificate:
        """Create the certificate mint with its metadata, mint 1 to `owner`, then lock it for ever."""
        if mint is None:
            mint = self.derive_keypair("certificate", idempotency_key) if idempotency_key else Keypair()
        authority = self._authority
        payer = self._payer_key
        size = mint_with_metadata_len(self._authority_key, mint.pubkey(), metadata)
        create = certificate_nft.create_groups(
            payer, mint.pubkey(), self._authority_key, metadata, await self.minimum_balance(size)
        )
        groups = [PlannedTx(create[0], (mint, authority))]
        groups += [PlannedTx(group, (authority,)) for group in create[1:]]
        issue = certificate_nft.issue_group(payer, mint.pubkey(), self._authority_key, owner)
        if memo is not None:
            issue = (*issue, ix.memo(payer, memo))
        groups.append(PlannedTx(issue, (authority,)))
        signatures = await self.run(groups, idempotency_key=idempotency_key)
        self._mint_meta[mint.pubkey()] = (TOKEN_2022_PROGRAM_ID, certificate_nft.CERTIFICATE_DECIMALS)
        return IssuedCertificate(mint=mint.pubkey(), signatures=tuple(signatures))

    async def transfer_certificate(
        self,
        mint: Pubkey,
        owner: Keypair,
        new_owner: Pubkey,
        *,
        memo: str | None = None,
        idempotency_key: str | None = None,
    ) -> Signature:
        payer = self._payer_key
        instructions = list(certificate_nft.transfer_group(payer, mint, owner.pubkey(), new_owner))
        if memo is not None:
            instructions.append(ix.memo(payer, memo))
        return await self.submit(instructions, [owner], idempotency_key=idempotency_key)

    async def retire_certificate(
        self, mint: Pubkey, owner: Keypair, *, memo: str | None = None, idempotency_key: str | None = None
    ) -> Signature:
        """Burn the certificate and close the holder's account; the metadata stays as the public record."""
        payer = self._payer_key
        instructions = list(certificate_nft.retire_group(payer, mint, owner.pubkey()))
        if memo is not None:
            instructions.append(ix.memo(payer, memo))
        return await self.submit(instructions, [owner], idempotency_key=idempotency_key)
