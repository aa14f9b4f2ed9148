"""Pure account rules: who may act for an owner, the wallet-link challenge text and its signature
check."""

from __future__ import annotations

import base64
import binascii
import uuid
from typing import Protocol

import base58
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from gridtokenx.accounts.models import Role

WALLET_LINK_DOMAIN = "GridTokenX wallet link"


class Actor(Protocol):
    @property
    def id(self) -> uuid.UUID: ...
    @property
    def role(self) -> str: ...


def may_act_for(actor: Actor, owner_id: uuid.UUID | None) -> bool:
    """The one answer to "may this user act for this owner's thing" (a meter, an API key, ...):
    its owner may, and so may an admin (the utility's operators and head-end). Nobody owns an
    unowned thing, so only an admin may act for it."""
    return actor.role == Role.ADMIN or (owner_id is not None and owner_id == actor.id)


def wallet_link_message(
    network_id: str, user_id: str, wallet_address: str, nonce: str, expires_at: str
) -> str:
    """The exact text a wallet signs: names the network, user and wallet so it cannot be replayed
    to link the wallet elsewhere."""
    return (
        f"{WALLET_LINK_DOMAIN}\n"
        f"network: {network_id}\n"
        f"user: {user_id}\n"
        f"wallet: {wallet_address}\n"
        f"nonce: {nonce}\n"
        f"expires: {expires_at}"
    )


def decode_wallet_address(address: str) -> bytes | None:
    """The 32-byte Ed25519 public key behind a Solana address, or None if it is not one."""
    try:
        raw = base58.b58decode(address)
    except ValueError:
        return None
    return raw if len(raw) == 32 else None


def decode_signature(signature: str) -> bytes | None:
    """Accept base58 (what Solana wallets return) or base64; 64 bytes either way."""
    for decode in (base58.b58decode, lambda s: base64.b64decode(s, validate=True)):
        try:
            raw = decode(signature)
        except (ValueError, binascii.Error):
            continue
        if len(raw) == 64:
            return raw
    return None


def signature_valid(public_key: bytes, message: bytes, signature: bytes) -> bool:
    try:
        VerifyKey(public_key).verify(message, signature)
    except (BadSignatureError, ValueError):
        return False
    return True
