"""`gridtokenx audit` over certificates, as an operator runs it: clean while the database and the
embedded ledger agree, exit 1 naming the certificate once a row is tampered with."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

from sqlalchemy import update

import gridtokenx
from gridtokenx.bench.erc import PERIOD, _seed
from gridtokenx.certificates.models import Certificate
from gridtokenx.certificates.service import Certificates
from gridtokenx.core.context import AppContext
from gridtokenx.core.migrate import upgrade
from gridtokenx.core.settings import Settings
from gridtokenx.core.types import utc_from_epoch
from gridtokenx.domains import wire
from gridtokenx.ledger.domain import LedgerHandle

SECRET = "audit-secret-" + "x" * 40


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        environment="embedded",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}",
        data_dir=tmp_path / "var",
        jwt_secret=SECRET,
        log_json=False,
        erc_settle_seconds=0,
    )


async def _issue_two(settings: Settings) -> list[str]:
    ctx = AppContext.from_settings(settings)
    await upgrade(ctx.db)
    wire(ctx)
    try:
        work = await _seed(ctx, 2, 1)
        certificates = ctx.services.get(Certificates)
        issued = [
            await certificates.issue(meter, utc_from_epoch(start), utc_from_epoch(start + PERIOD), actor=None)
            for meter, start in work
        ]
        return [str(c.id) for c in issued]
    finally:
        await ctx.services.get(LedgerHandle).stop()  # the CLI opens the embedded ledger next
        await ctx.close()


async def _tamper(settings: Settings, certificate_id: str) -> None:
    ctx = AppContext.from_settings(settings)
    async with ctx.db.session() as session:
        await session.execute(
            update(Certificate)
            .where(Certificate.id == uuid.UUID(certificate_id))
            .values(energy_wh=Certificate.energy_wh + 1)
        )
    await ctx.close()


def _audit(settings: Settings, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = os.environ.copy()
    source = str(Path(gridtokenx.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [source, env.get("PYTHONPATH")]))
    env.update(
        GRIDTOKENX_ENVIRONMENT="embedded",
        GRIDTOKENX_DATABASE_URL=settings.database_url,
        GRIDTOKENX_DATA_DIR=str(settings.data_dir),
        GRIDTOKENX_JWT_SECRET=SECRET,
        GRIDTOKENX_LOG_JSON="false",
    )
    return subprocess.run(
        [sys.executable, "-m", "gridtokenx.cli", "audit"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_audit_cli_finds_a_tampered_certificate(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    first, _ = asyncio.run(_issue_two(settings))
    clean = _audit(settings, tmp_path)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "audit clean" in clean.stdout

    asyncio.run(_tamper(settings, first))
    dirty = _audit(settings, tmp_path)
    assert dirty.returncode == 1, dirty.stdout + dirty.stderr
    assert f"certificate {first}" in dirty.stdout and "energy_wh" in dirty.stdout
