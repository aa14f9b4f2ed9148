"""`gridtokenx demo --duration` end to end, as `make demo` runs it (in a scratch data directory):
users, a streaming fleet, minting, 1-minute epochs that settle, certificates, a clean audit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.live import free_port


def test_demo_runs_trades_certifies_and_audits_clean(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("GRIDTOKENX_", "DATABASE_URL"))},
        "COLUMNS": "160",
    }
    result = subprocess.run(
        [sys.executable, "-m", "gridtokenx.cli", "demo", "--port", str(free_port()), "--duration", "150"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "admin@gridtokenx.io" in out and "prosumer1@gridtokenx.io" in out
    assert "audit clean" in out
    settled = int(out.split("trades settled: ")[1].split()[0])
    retired = int(out.split("certificates retired: ")[1].split()[0])
    assert settled >= 1 and retired >= 1
    assert (tmp_path / "var" / "gridtokenx.db").exists() and (tmp_path / "var" / "demo.json").exists()
