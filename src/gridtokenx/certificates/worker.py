"""The certificates duty: finish half-done ledger actions, expire old certificates and, when
`GRIDTOKENX_ERC_AUTO_ISSUE` is on, issue every settled period (one lease holder at a time)."""

from __future__ import annotations

import time
from datetime import timedelta

import structlog

from gridtokenx.certificates.service import Certificates
from gridtokenx.core.db import Database
from gridtokenx.core.lease import LeasedDuty

log = structlog.get_logger(__name__)
ROUND_SECONDS = 30.0


def certificate_duty(
    db: Database, certificates: Certificates, *, auto_issue: bool, lookback: timedelta
) -> LeasedDuty:
    """A full round every ROUND_SECONDS: the lease is renewed more often than that, and scanning
    every meter's settled periods on each renewal would be wasted work."""
    last_round = [float("-inf")]

    async def work(token: int) -> float:
        due = last_round[0] + ROUND_SECONDS - time.monotonic()
        if due > 0:
            return due
        last_round[0] = time.monotonic()
        resumed = await certificates.resume_pending()
        expired = await certificates.expire_due()
        issued = await certificates.issue_settled(lookback) if auto_issue else 0
        if resumed or expired or issued:
            log.info("erc_round", token=token, resumed=resumed, expired=expired, issued=issued)
        return ROUND_SECONDS

    return LeasedDuty(db, "erc-issue", work)
