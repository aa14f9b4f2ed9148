"""The server process tuning, checked in a fresh interpreter (it changes process-wide GC state)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from gridtokenx.core.runtime import SERVER_GC_THRESHOLDS


def test_the_server_app_tunes_the_collector_and_plain_apps_do_not(tmp_path: Path) -> None:
    script = (
        "import gc\n"
        "defaults = gc.get_threshold()\n"
        "from gridtokenx.app import create_app, create_server_app\n"
        "create_app()\n"
        "print(gc.get_threshold() == defaults, gc.get_freeze_count())\n"
        "create_server_app()\n"
        "print(gc.get_threshold(), gc.get_freeze_count() > 0)\n"
    )
    env = {"GRIDTOKENX_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True, cwd=tmp_path
    ).stdout.splitlines()
    assert out[0] == "True 0"  # CPython's defaults, untouched by create_app
    assert out[1] == f"{SERVER_GC_THRESHOLDS} True"
