"""Hand-encoded Token-2022 MetadataPointer and TokenMetadata instructions, and their state layout.

No Python package builds these, so the byte layouts are written out here and every builder is
exercised against the real Token-2022 program in the tests:
- MetadataPointer: Token-2022 instruction 39, sub-instruction 0 (Initialize), then two
  OptionalNonZeroPubkey values (32 bytes each, all zeros meaning None).
- TokenMetadata interface: an 8-byte discriminator, sha256("spl_token_metadata_interface:<name>")[:8],
  then borsh-encoded arguments (strings are a u32 little-endian length and UTF-8 bytes).
"""

from __future__ import annotations

import hashlib
import struct

from solders.instruction import AccountMeta, Instruction
from solders.pubkey import Pubkey
from spl.token.constants import TOKEN_2022_PROGRAM_ID

from gridtokenx.ledger.records import CertificateMetadata

METADATA_POINTER_EXTENSION = 39
METADATA_POINTER_INITIALIZE = 0

EXTENSION_METADATA_POINTER = 18
EXTENSION_TOKEN_METADATA = 19

BASE_ACCOUNT_LEN = 165  # a Token-2022 mint with extensions is padded to a token account's length
TLV_HEADER_LEN = 4  # u16 type + u16 length
MINT_WITH_METADATA_POINTER_LEN = BASE_ACCOUNT_LEN + 1 + TLV_HEADER_LEN + 64

_NONE_PUBKEY = bytes(32)

# The standard fields of TokenMetadata, addressed by their borsh enum index in UpdateField.
FIELD_NAME, FIELD_SYMBOL, FIELD_URI = "name", "symbol", "uri"
_STANDARD_FIELDS = {FIELD_NAME: 0, FIELD_SYMBOL: 1, FIELD_URI: 2}
_CUSTOM_FIELD = 3


def _discriminator(name: str) -> bytes:
    return hashlib.sha256(f"spl_token_metadata_interface:{name}".encode()).digest()[:8]


INITIALIZE = _discriminator("initialize_account")
UPDATE_FIELD = _discriminator("updating_field")
UPDATE_AUTHORITY = _discriminator("update_the_authority")


def _string(value: str) -> bytes:
    raw = value.encode("utf-8")
    return struct.pack("<I", len(raw)) + raw


def _optional_pubkey(key: Pubkey | None) -> bytes:
    return bytes(key) if key is not None else _NONE_PUBKEY


def initialize_metadata_pointer(
    mint: Pubkey, authority: Pubkey | None, metadata_address: Pubkey | None
) -> Instruction:
    """Must run before InitializeMint, on an account sized for the extension."""
    data = (
        bytes([METADATA_POINTER_EXTENSION, METADATA_POINTER_INITIALIZE])
        + _optional_pubkey(authority)
        + _optional_pubkey(metadata_address)
    )
    return Instruction(TOKEN_2022_PROGRAM_ID, data, [AccountMeta(mint, is_signer=False, is_writable=True)])


def initialize_token_metadata(
    mint: Pubkey, update_authority: Pubkey, mint_authority: Pubkey, name: str, symbol: str, uri: str
) -> Instruction:
    """Store name/symbol/uri on the mint itself (the metadata account is the mint)."""
    data = INITIALIZE + _string(name) + _string(symbol) + _string(uri)
    accounts = [
        AccountMeta(mint, is_signer=False, is_writable=True),
        AccountMeta(update_authority, is_signer=False, is_writable=False),
        AccountMeta(mint, is_signer=False, is_writable=False),
        AccountMeta(mint_authority, is_signer=True, is_writable=False),
    ]
    return Instruction(TOKEN_2022_PROGRAM_ID, data, accounts)


def update_token_metadata_field(
    mint: Pubkey, update_authority: Pubkey, field: str, value: str
) -> Instruction:
    """Set a standard field (name, symbol, uri) or add/replace a custom key."""
    index = _STANDARD_FIELDS.get(field)
    encoded_field = bytes([index]) if index is not None else bytes([_CUSTOM_FIELD]) + _string(field)
    data = UPDATE_FIELD + encoded_field + _string(value)
    accounts = [
        AccountMeta(mint, is_signer=False, is_writable=True),
        AccountMeta(update_authority, is_signer=True, is_writable=False),
    ]
    return Instruction(TOKEN_2022_PROGRAM_ID, data, accounts)


def update_token_metadata_authority(mint: Pubkey, current: Pubkey, new: Pubkey | None) -> Instruction:
    """Hand the metadata to a new authority; None makes it immutable."""
    data = UPDATE_AUTHORITY + _optional_pubkey(new)
    accounts = [
        AccountMeta(mint, is_signer=False, is_writable=True),
        AccountMeta(current, is_signer=True, is_writable=False),
    ]
    return Instruction(TOKEN_2022_PROGRAM_ID, data, accounts)


def encode_token_metadata(
    update_authority: Pubkey | None, mint: Pubkey, metadata: CertificateMetadata
) -> bytes:
    """The TokenMetadata extension value exactly as Token-2022 stores it."""
    pairs = b"".join(_string(key) + _string(value) for key, value in metadata.fields)
    return (
        _optional_pubkey(update_authority)
        + bytes(mint)
        + _string(metadata.name)
        + _string(metadata.symbol)
        + _string(metadata.uri)
        + struct.pack("<I", len(metadata.fields))
        + pairs
    )


def mint_with_metadata_len(update_authority: Pubkey, mint: Pubkey, metadata: CertificateMetadata) -> int:
    """Final size of a mint carrying MetadataPointer and TokenMetadata, to fund its rent up front."""
    return (
        MINT_WITH_METADATA_POINTER_LEN
        + TLV_HEADER_LEN
        + len(encode_token_metadata(update_authority, mint, metadata))
    )


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, size: int) -> bytes:
        end = self.pos + size
        if end > len(self.data):
            raise ValueError("truncated TokenMetadata")
        chunk, self.pos = self.data[self.pos : end], end
        return chunk

    def u32(self) -> int:
        value: int = struct.unpack("<I", self.take(4))[0]
        return value

    def string(self) -> str:
        return self.take(self.u32()).decode("utf-8")

    def optional_pubkey(self) -> Pubkey | None:
        raw = self.take(32)
        return None if raw == _NONE_PUBKEY else Pubkey.from_bytes(raw)


def decode_token_metadata(value: bytes) -> tuple[Pubkey | None, Pubkey, CertificateMetadata]:
    """(update authority, mint, metadata) from a TokenMetadata extension value."""
    reader = _Reader(value)
    update_authority = reader.optional_pubkey()
    mint = Pubkey.from_bytes(reader.take(32))
    name, symbol, uri = reader.string(), reader.string(), reader.string()
    fields = tuple((reader.string(), reader.string()) for _ in range(reader.u32()))
    return update_authority, mint, CertificateMetadata(name=name, symbol=symbol, uri=uri, fields=fields)


def decode_metadata_pointer(value: bytes) -> tuple[Pubkey | None, Pubkey | None]:
    """(authority, metadata address) from a MetadataPointer extension value."""
    reader = _Reader(value)
    return reader.optional_pubkey(), reader.optional_pubkey()
