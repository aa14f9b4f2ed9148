"""`gridtokenx bench erc` at a tiny size: every figure is measured and every certificate verifies."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import gridtokenx
from gridtokenx.bench.erc import _bench


def test_bench_measures_every_figure(tmp_path: Path) -> None:
    figures = asyncio.run(_bench(count=6, meters=2, concurrency=2, directory=tmp_path))
    by_name = {name: value for name, _, value in figures}
    assert set(by_name) == {
        "raw Token-2022 mint_to (1 per call)",
        "certificate NFT on the ledger alone",
        "  the same with an idempotency key",
        "certificates issued (whole use case)",
        "  issued / raw mint_to",
        "verify latency p50",
        "verify latency p95",
    }
    assert all(value > 0 for value in by_name.values())
    assert by_name["verify latency p95"] >= by_name["verify latency p50"]


def test_bench_command_runs(tmp_path: Path) -> None:
    env = os.environ.copy()
    source = str(Path(gridtokenx.__file__).resolve().parents[1])  # the sources under test, from any cwd
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [source, env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-m", "gridtokenx.cli", "bench", "erc", "--count", "4", "--concurrency", "2"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "certs/s" in done.stdout and "verify latency p95" in done.stdout
