"""A gateway as its own OS process (`gridtokenx serve`), for tests that SIGKILL it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from gridtokenx.core.settings import Settings
from tests.live import free_port


class GatewayProcess:
    """Starts `gridtokenx serve` on the test's database, as embedded mode would run it (the leased
    duties in the gateway); `kill()` is a SIGKILL, `start()` again is the restart."""

    def __init__(self, settings: Settings, data_dir: Path, **env: Any) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = data_dir / "gateway.log"
        data_dir.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            "GRIDTOKENX_ENVIRONMENT": "embedded",
            "GRIDTOKENX_DATABASE_URL": settings.effective_database_url,
            "GRIDTOKENX_DATA_DIR": str(data_dir),
            "GRIDTOKENX_JWT_SECRET": str(settings.jwt_secret),
            "GRIDTOKENX_NETWORK_ID": settings.network_id,
            "GRIDTOKENX_RATE_LIMIT_DEFAULT": "1000000/minute",
            "GRIDTOKENX_LOG_JSON": "false",
            **{f"GRIDTOKENX_{k.upper()}": str(v) for k, v in env.items()},
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    async def start(self, wait_ready: bool = True) -> None:
        self.starts += 1
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gridtokenx.cli", "serve", "--port", str(self.port)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if wait_ready:
            await self.ready()

    async def ready(self, timeout: float = 90) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with httpx.AsyncClient(base_url=self.base, timeout=2) as http:
            while loop.time() < deadline:
                assert self.process is not None and self.process.poll() is None, self.tail()
                try:
                    if (await http.get("/health")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"gateway did not start:\n{self.tail()}")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""
