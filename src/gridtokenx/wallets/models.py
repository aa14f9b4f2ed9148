"""The wallets domain's table: custodial keypairs, sealed at rest."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from gridtokenx.core.db import Base
from gridtokenx.core.types import UtcDateTime, utcnow


class CustodialWallet(Base):
    """A platform-held keypair of one user. `sealed_seed` is the 32-byte Ed25519 seed in a
    SecretBox under the wallet encryption key; the plain seed never touches the database."""

    __tablename__ = "custodial_wallets"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), primary_key=True)
    address: Mapped[str] = mapped_column(String(44), unique=True)
    sealed_seed: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
