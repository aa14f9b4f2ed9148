"""The HTTP ingest benchmark at a tiny size: real uvicorn servers, real databases, every row counted."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from gridtokenx.readings.bench_ingest import run
from tests.conftest import PG_HOST, PG_PORT, PG_USER


@pytest.mark.parametrize(("backend", "processes"), [("postgres", 2), ("sqlite", 1)])
def test_bench_ingest_stores_every_reading(backend: str, processes: int) -> None:
    out = io.StringIO()
    results = run(
        readings=600,
        batch=100,
        backends=(backend,),
        processes=(processes,),
        pg_url=f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/postgres",
        meters=20,
        meters_per_batch=10,
        connections=2,
        ceiling_seconds=0.2,
        console=Console(file=out, width=200),
    )
    [result] = results
    assert (result.backend, result.processes) == (backend, processes)
    # every reading landed once, device-signed; the client saw no refusal and lost nothing
    assert result.rows_in_db == result.signed_rows == result.accepted == result.readings_sent == 600
    assert result.complete and not result.rejected and result.lost_batches == 0
    # a week of stored history per meter before the timed part, counted apart from it
    assert result.history_rows == 20 * 7 * 96
    assert result.readings_per_s > 0 and result.ceiling_per_s > 0 and result.ratio > 0
    assert 0 <= result.ceiling_drift < 2  # two positive measurements differ by less than their sum
    assert 0 < result.p50_ms <= result.p95_ms
    table = out.getvalue()
    assert (
        backend in table
        and "600 / 600 ✓" in table
        and "with 7 days of" in table
        and f"{result.readings_per_s:,.0f}" in table
    )
    # the CPU split of the timed part: the gateways worked, PostgreSQL's share is measured (SQLite
    # runs inside the gateway, so it has none of its own)
    assert result.cpu is not None and result.cpu.servers is not None and result.cpu.servers > 0
    assert result.cpu.client >= 0
    assert (result.cpu.database is not None) == (backend == "postgres")
    assert "CPU per reading" in table


def test_bench_ingest_refuses_an_impossible_plan() -> None:
    with pytest.raises(ValueError, match="more meters"):
        run(readings=100_000, batch=1000, meters=100, backends=())
    with pytest.raises(ValueError, match="negative"):
        run(readings=1000, batch=1000, meters=1000, history_days=-1, backends=())
