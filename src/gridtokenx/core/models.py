"""Tables owned by the core: the duty leases shared by every background worker."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from gridtokenx.core.db import Base
from gridtokenx.core.types import UtcDateTime


class Lease(Base):
    """One row per background duty (`mint`, `epochs`, `erc-issue`, `jobs`, ...). The holder renews
    it before `expires_at`; anyone may take it over once it has expired. `token` grows on every
    change of holder, so work stamped with an old token can be told apart (a fencing token)."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    token: Mapped[int] = mapped_column(BigInteger, default=1)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    renewed_at: Mapped[datetime] = mapped_column(UtcDateTime())
