"""Custodial keys at rest: a PyNaCl SecretBox under the wallet encryption key.

The key comes from `GRIDTOKENX_WALLET_ENCRYPTION_KEY` (32 bytes, base64 or hex). Embedded mode
generates one on first start into the data folder (mode 0600); distributed mode requires it, since
a key generated on one gateway would make the others' wallets unreadable."""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

import nacl.exceptions
import nacl.secret
import nacl.utils

from gridtokenx.core.settings import Settings, SettingsError

KEY_FILE = "wallet_encryption_key"
VARIABLE = "GRIDTOKENX_WALLET_ENCRYPTION_KEY"


class WalletKeyError(Exception):
    """A sealed seed did not open: the encryption key is not the one it was sealed with."""


def parse_key(text: str) -> bytes:
    """32 key bytes from hex (64 characters) or base64 (standard or URL-safe)."""
    value = text.strip()
    try:
        key = bytes.fromhex(value) if len(value) == 64 else base64.b64decode(value + "==", altchars=b"-_")
    except (ValueError, binascii.Error):
        raise SettingsError(f"invalid configuration: {VARIABLE}: not hex or base64") from None
    if len(key) != nacl.secret.SecretBox.KEY_SIZE:
        raise SettingsError(f"invalid configuration: {VARIABLE}: must be 32 bytes, got {len(key)}")
    return key


def _persisted_key(path: Path) -> bytes:
    if path.exists():
        return parse_key(path.read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    key = nacl.utils.random(nacl.secret.SecretBox.KEY_SIZE)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key.hex())
    return key


def wallet_key(settings: Settings) -> bytes:
    if settings.wallet_encryption_key:
        return parse_key(settings.wallet_encryption_key)
    if settings.environment == "distributed":
        raise SettingsError(f"invalid configuration: {VARIABLE}: required in distributed mode")
    return _persisted_key(settings.data_dir / KEY_FILE)


class Sealer:
    """Seals and opens custodial seeds (authenticated encryption: a wrong key never opens)."""

    def __init__(self, key: bytes) -> None:
        self._box = nacl.secret.SecretBox(key)

    def seal(self, seed: bytes) -> bytes:
        return bytes(self._box.encrypt(seed))

    def open(self, sealed: bytes) -> bytes:
        try:
            return bytes(self._box.decrypt(sealed))
        except nacl.exceptions.CryptoError:
            raise WalletKeyError("a custodial wallet does not open with this encryption key") from None
