"""The HTTP ingest benchmark at a tiny size: real uvicorn servers, real databases, every row counted."""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest
from rich.console import Console

from gridtokenx.bench.ingest import INTERVAL_S, _device_key, _native, _seed, run
from gridtokenx.bench.ingest_bare import CREATE_BARE_TABLE, BareIngest
from gridtokenx.bench.ingest_servers import BENCH_NETWORK, count_bare_rows, execute_sql, scratch_database
from gridtokenx.readings.errors import ReadingError
from gridtokenx.readings.native import encode_batch
from gridtokenx.readings.signing import sign_reading
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
        bare=False,
        console=Console(file=out, width=200),
    )
    [result] = results
    assert (result.backend, result.processes, result.path) == (backend, processes, "pipeline")
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


@pytest.mark.postgres
def test_bench_ingest_times_the_bare_path_beside_the_pipeline() -> None:
    """The bare path (decode, verify, one insert per batch) runs in its own servers on PostgreSQL
    with the most processes asked for, stores each verified reading once, and is printed beside
    the pipeline with its own ratio."""
    out = io.StringIO()
    results = run(
        readings=400,
        batch=100,
        backends=("postgres",),
        processes=(1,),
        pg_url=f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/postgres",
        meters=20,
        meters_per_batch=10,
        history_days=1,
        connections=2,
        ceiling_seconds=0.2,
        console=Console(file=out, width=220),
    )
    pipeline, bare = results
    assert (pipeline.path, bare.path) == ("pipeline", "bare")
    assert (bare.backend, bare.processes) == ("postgres", 1)
    assert bare.rows_in_db == bare.signed_rows == bare.accepted == bare.readings_sent == 400
    assert bare.complete and not bare.rejected and bare.lost_batches == 0 and not bare.http_errors
    assert bare.history_rows == 0 and pipeline.history_rows == 20 * 96
    assert bare.ratio > 0 and bare.cpu is not None and bare.cpu.database is not None
    text = " ".join(out.getvalue().split())  # the console wraps long lines
    share = pipeline.readings_per_s / bare.readings_per_s
    assert f"PostgreSQL, 1 processes: the pipeline's {pipeline.readings_per_s:,.0f} readings/s" in text
    assert f"= {share:.0%} of the bare path's {bare.readings_per_s:,.0f}/s" in text
    assert ("target ≥ 50%: met" in text) == (share >= 0.5)


@pytest.mark.postgres
def test_bare_path_refuses_what_does_not_verify(tmp_path: Path) -> None:
    """The bare path is only a fair baseline if it verifies for real: a forged signature and an
    unknown device are refused, a resend is a duplicate, and only the good reading is stored."""
    pg_url = f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/postgres"
    keys = [_device_key(0), _device_key(1)]
    with scratch_database("postgres", pg_url, tmp_path) as target:
        asyncio.run(_seed(target.url, keys[:1]))  # meter 1 is never registered
        asyncio.run(execute_sql(target.url, CREATE_BARE_TABLE))
        now = int(time.time())
        start = now - now % INTERVAL_S - INTERVAL_S
        good, other = (
            sign_reading(_native(m, 0, keys[m], now, start, 0, 0), keys[m], BENCH_NETWORK) for m in (0, 1)
        )
        forged = msgspec.structs.replace(good, import_wh=good.import_wh + 1)
        replies = asyncio.run(
            _bare_replies(target.url, [encode_batch([good, forged, other]), encode_batch([good])])
        )
        assert asyncio.run(count_bare_rows(target.url)) == 1
    first, resend = replies
    assert (first["accepted"], first["duplicates"], first["rejected"]) == (1, 0, 2)
    assert {(r["index"], r["code"]) for r in first["results"]} == {
        (1, "SIGNATURE_INVALID"),
        (2, "DEVICE_KEY_UNKNOWN"),
    }
    assert (resend["accepted"], resend["duplicates"], resend["rejected"]) == (0, 1, 0)


async def _bare_replies(url: str, bodies: list[bytes]) -> list[dict[str, Any]]:
    app = BareIngest(url, BENCH_NETWORK)
    await app.start()
    try:
        with pytest.raises(ReadingError):
            await app.ingest(b'{"not": "a batch"}')
        return [await app.ingest(body) for body in bodies]
    finally:
        await app.stop()
