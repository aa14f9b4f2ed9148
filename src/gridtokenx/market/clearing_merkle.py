"""Merkle commitment to a clearing's fills, so each party can prove its own line with a short path.

Tree: RFC 6962 Merkle Tree Hash over SHA-256 (leaf = H(0x00 ‖ data), node = H(0x01 ‖ left ‖ right),
an odd last node moves up unchanged; the empty tree is H("")). Leaves are the filled orders in ascending
order id, each leaf's data the UTF-8 text "side|fill_wh|amount|id", side being "bid" or "offer" and
amount the payment in base units. The id comes last, so a "|" inside an id cannot make two leaves alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from hashlib import sha256

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"


def leaf_hashes(rows: Iterable[tuple[str, str, int, int]]) -> list[bytes]:
    """Leaf hashes of (side, order id, fill Wh, amount) rows, in the order given."""
    return [
        sha256(LEAF_PREFIX + f"{side}|{fill_wh}|{amount}|{order_id}".encode()).digest()
        for side, order_id, fill_wh, amount in rows
    ]


def merkle_root(leaves: list[bytes]) -> str:
    """Hex RFC 6962 tree hash over leaf hashes, built level by level."""
    if not leaves:
        return sha256(b"").hexdigest()
    level = leaves
    while len(level) > 1:
        paired = [
            sha256(NODE_PREFIX + left + right).digest()
            for left, right in zip(level[::2], level[1::2], strict=False)
        ]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0].hex()
