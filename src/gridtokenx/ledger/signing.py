"""Sign legacy transactions quickly.

Deriving a public key from a solders Keypair is not free and `Transaction(...)` does it for every
signer, every time; the platform's own keypairs sign almost every transaction, so their public keys
are computed once here and messages are signed directly
(docs/decisions/2026-11-23-cached-platform-public-keys.md).
"""

from __future__ import annotations

from collections.abc import Sequence

from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.transaction import Transaction


class TransactionSigner:
    def __init__(self, fee_payer: Keypair, *known: Keypair) -> None:
        self.fee_payer = fee_payer
        self.payer_key = fee_payer.pubkey()
        self._known = [(keypair, keypair.pubkey()) for keypair in (fee_payer, *known)]

    def pubkey(self, keypair: Keypair) -> Pubkey:
        for candidate, key in self._known:
            if candidate is keypair:
                return key
        return keypair.pubkey()

    def sign(
        self, instructions: Sequence[Instruction], signers: Sequence[Keypair], blockhash: Hash
    ) -> Transaction:
        """The fee payer signs first; every other required signer must be among `signers`."""
        message = Message.new_with_blockhash(list(instructions), self.payer_key, blockhash)
        by_key = {self.pubkey(signer): signer for signer in signers}
        by_key[self.payer_key] = self.fee_payer
        data = bytes(message)
        required = message.account_keys[: message.header.num_required_signatures]
        missing = [key for key in required if key not in by_key]
        if missing:
            raise ValueError(f"no keypair given for required signer(s) {missing}")
        return Transaction.populate(message, [by_key[key].sign_message(data) for key in required])
