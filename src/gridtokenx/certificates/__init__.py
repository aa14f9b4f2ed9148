"""Renewable energy certificates: issued from verified generation as Token-2022 NFTs, transferred,
retired and verified by anyone against the ledger."""
