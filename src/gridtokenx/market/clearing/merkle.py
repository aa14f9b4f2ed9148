"""Merkle commitment to a clearing's fills, so each party can prove its own line with a short path.

Tree: RFC 6962 Merkle Tree Hash over SHA-256 (leaf = H(0x00 ‖ data), node = H(0x01 ‖ left ‖ right),
an odd last node moves up unchanged; the empty tree is H("")). Leaves are the filled orders in ascending
order id; a leaf's data is the UTF-8 text "side|fill_wh|amount|id", side being "bid" or "offer" and
amount the payment in base units. The id comes last, so a "|" inside an id cannot make two leaves alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from hashlib import sha256

NODE_PREFIX = b"\x01"
DIGEST = 32
PAIR = 2 * DIGEST


def leaf_hashes(
    sides: Iterable[str], ids: Iterable[str], fills_wh: Iterable[int], amounts: Iterable[int]
) -> bytes:
    """Concatenated 32-byte leaf hashes of the rows, in the order given."""
    return b"".join(
        [
            sha256(f"\x00{side}|{fill_wh}|{amount}|{order_id}".encode()).digest()
            for side, order_id, fill_wh, amount in zip(sides, ids, fills_wh, amounts, strict=True)
        ]
    )


def merkle_root(leaves: bytes) -> str:
    """Hex RFC 6962 tree hash over concatenated 32-byte leaf hashes, built level by level.

    Each level is one contiguous bytes object, so every pass reads memory in order.
    """
    if not leaves:
        return sha256(b"").hexdigest()
    level = leaves
    while len(level) > DIGEST:
        paired = len(level) - len(level) % PAIR
        parents = [sha256(NODE_PREFIX + level[at : at + PAIR]).digest() for at in range(0, paired, PAIR)]
        parents.append(level[paired:])  # an odd last node moves up unchanged (or nothing)
        level = b"".join(parents)
    return level.hex()
