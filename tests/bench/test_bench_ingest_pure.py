"""The pure ingest benchmark runs and reports every stage (figures themselves are not asserted)."""

from __future__ import annotations

from gridtokenx.bench.ingest_pure import bench_parse_verify


def test_bench_parse_verify_reports_each_stage() -> None:
    results = bench_parse_verify(200, devices=10, repeats=1)
    assert results["readings"] == 200 and results["body_bytes"] > 200 * 300
    for stage in ("raw_verify", "decode", "decode_one_bad", "decode_verify"):
        assert results[f"{stage}_per_s"] > 0
    # signature verification, not parsing, is the cost of the full path
    assert results["decode_per_s"] > 3 * results["decode_verify_per_s"]
