"""Keypairs on disk in the Solana CLI JSON format (a list of 64 byte values), readable by the owner only.

Secrets never reach a log line: only public keys are ever formatted.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from pathlib import Path

from solders.keypair import Keypair

from gridtokenx.ledger.errors import LedgerConfigError

PRIVATE = 0o600


def save_keypair(path: Path, keypair: Keypair) -> None:
    """Write a new key file with mode 0600 from the start (never briefly readable by others)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE)
    with os.fdopen(fd, "w") as handle:
        json.dump(list(bytes(keypair)), handle)
        handle.flush()
        os.fsync(handle.fileno())


def load_keypair(path: Path) -> Keypair:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise LedgerConfigError(f"keypair file not found: {path}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise LedgerConfigError(f"keypair file {path} is readable by others; run: chmod 600 {path}")
    try:
        values = json.loads(path.read_text())
        return Keypair.from_bytes(bytes(values))
    except (ValueError, TypeError):
        raise LedgerConfigError(f"{path} is not a Solana CLI keypair file") from None


def load_or_create_keypair(path: Path) -> Keypair:
    """The keypair at `path`, generated on first use (embedded mode)."""
    if not path.exists():
        with contextlib.suppress(FileExistsError):  # another process created it first: use theirs
            save_keypair(path, Keypair())
    return load_keypair(path)
