"""The fleet capacity benchmark at a tiny size: real gateway processes (embedded and distributed on
PostgreSQL), a device-signed simulated fleet, every reading counted in the database."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from gridtokenx.bench.fleet import run
from tests.conftest import PG_HOST, PG_PORT, PG_USER


@pytest.mark.postgres
def test_bench_fleet_climbs_the_loads_and_counts_every_reading() -> None:
    out = io.StringIO()
    outcomes = run(
        setups=("embedded", "postgres-1"),
        meters=(4,),
        speeds=(20, 10),
        duration_s=4,
        interval_s=15,
        pg_admin_url=f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/postgres",
        console=Console(file=out, width=200),
    )
    for setup in ("embedded", "postgres-1"):
        ladder = [o for o in outcomes if o.setup == setup]
        assert ladder[0].speed == 10  # the smaller load first
        assert len(ladder) == (2 if ladder[0].sustained else 1)  # no climbing past a failed load
        for outcome in ladder:
            assert outcome.generated > 0 and outcome.stored_rows == outcome.generated
    text = out.getvalue()
    assert "Fleet capacity" in text and "postgres-1" in text
