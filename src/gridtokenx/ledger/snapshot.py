"""Binary form of an embedded-ledger snapshot: clock, owners in use, and every account they own."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from solders.account import Account
from solders.clock import Clock
from solders.pubkey import Pubkey

MAGIC = b"GTXSNAP1"


@dataclass(frozen=True, slots=True)
class Snapshot:
    clock: Clock
    owners: tuple[Pubkey, ...]
    accounts: tuple[tuple[Pubkey, Account], ...]


def encode(snapshot: Snapshot) -> bytes:
    clock = bytes(snapshot.clock)
    parts = [MAGIC, struct.pack("<I", len(clock)), clock, struct.pack("<I", len(snapshot.owners))]
    parts.extend(bytes(owner) for owner in snapshot.owners)
    parts.append(struct.pack("<I", len(snapshot.accounts)))
    for address, account in snapshot.accounts:
        raw = bytes(account)
        parts.append(bytes(address) + struct.pack("<I", len(raw)) + raw)
    return zlib.compress(b"".join(parts), 1)


def decode(body: bytes) -> Snapshot:
    data = memoryview(zlib.decompress(body))
    if bytes(data[: len(MAGIC)]) != MAGIC:
        raise ValueError("not a ledger snapshot")
    pos = len(MAGIC)

    def u32() -> int:
        nonlocal pos
        (value,) = struct.unpack_from("<I", data, pos)
        pos += 4
        return int(value)

    def take(size: int) -> bytes:
        nonlocal pos
        chunk = bytes(data[pos : pos + size])
        pos += size
        return chunk

    clock = Clock.from_bytes(take(u32()))
    owners = tuple(Pubkey.from_bytes(take(32)) for _ in range(u32()))
    accounts = []
    for _ in range(u32()):
        address = Pubkey.from_bytes(take(32))
        accounts.append((address, Account.from_bytes(take(u32()))))
    return Snapshot(clock=clock, owners=owners, accounts=tuple(accounts))
