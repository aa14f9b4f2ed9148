"""Wallets: one Solana wallet per user, platform-held (custodial) unless the user linked their own."""
