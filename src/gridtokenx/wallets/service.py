"""Wallet use cases: the wallet a user pays and receives with, and the signer behind it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from solders.keypair import Keypair
from solders.pubkey import Pubkey
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gridtokenx.accounts.models import User
from gridtokenx.accounts.service import get_user
from gridtokenx.wallets.models import CustodialWallet
from gridtokenx.wallets.sealing import Sealer


@dataclass(frozen=True)
class Wallet:
    user_id: uuid.UUID
    address: str
    custodial: bool

    @property
    def pubkey(self) -> Pubkey:
        return Pubkey.from_string(self.address)


async def wallet_of(session: AsyncSession, sealer: Sealer, user_id: uuid.UUID) -> Wallet:
    """The user's wallet: the one they linked (signed nonce), else their custodial one, created on
    first need. Two racing first calls end with one wallet (the user's row is the key)."""
    user = await get_user(session, user_id)
    if user.wallet_address:
        return Wallet(user_id, user.wallet_address, custodial=False)
    row = await session.get(CustodialWallet, user_id)
    if row is None:
        keypair = Keypair()
        candidate = CustodialWallet(
            user_id=user_id, address=str(keypair.pubkey()), sealed_seed=sealer.seal(bytes(keypair)[:32])
        )
        try:
            async with session.begin_nested():
                session.add(candidate)
        except IntegrityError:
            row = await session.get(CustodialWallet, user_id, populate_existing=True)
            assert row is not None
        else:
            row = candidate
    return Wallet(user_id, row.address, custodial=True)


async def custodial_signer(session: AsyncSession, sealer: Sealer, user_id: uuid.UUID) -> Keypair | None:
    """The keypair the platform signs with for this user; None when they hold their own keys."""
    wallet = await wallet_of(session, sealer, user_id)
    if not wallet.custodial:
        return None
    row = await session.get(CustodialWallet, user_id)
    assert row is not None
    return Keypair.from_seed(sealer.open(row.sealed_seed))


async def verify_key(session: AsyncSession, sealer: Sealer) -> None:
    """Open one stored wallet, so a wrong encryption key stops start-up instead of a later payment."""
    sealed = await session.scalar(select(CustodialWallet.sealed_seed).limit(1))
    if sealed is not None:
        sealer.open(sealed)


async def user_of_wallet(session: AsyncSession, address: str) -> uuid.UUID | None:
    """The platform user who holds `address` (linked or custodial), None for an outside wallet."""
    linked = await session.scalar(select(User.id).where(User.wallet_address == address))
    if linked is not None:
        return linked
    return await session.scalar(select(CustodialWallet.user_id).where(CustodialWallet.address == address))
