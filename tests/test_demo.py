"""`gridtokenx demo` end to end, as `make demo` runs it (in a scratch data directory)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.live import free_port


def test_demo_walkthrough(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("GRIDTOKENX_", "DATABASE_URL"))},
        "GRIDTOKENX_DATA_DIR": str(tmp_path / "var"),
        "COLUMNS": "160",
    }
    result = subprocess.run(
        [sys.executable, "-m", "gridtokenx.cli", "demo", "--port", str(free_port()), "--duration", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "/api/docs" in out and "admin@gridtokenx.io" in out
    assert "8 accepted, 0 rejected" in out
    assert "duplicate" in out and "SIGNATURE_INVALID" in out
    assert (tmp_path / "var" / "gridtokenx.db").exists()
