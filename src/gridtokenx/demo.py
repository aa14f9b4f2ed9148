"""`gridtokenx demo`: the embedded platform on SQLite with a seeded admin, served until stopped.

It shows only what the platform really does today; each domain adds its step when it lands.
"""

from __future__ import annotations

import asyncio
import os
import secrets

import uvicorn
from rich.console import Console
from rich.table import Table

from gridtokenx.core.settings import get_settings

DEMO_ADMIN_EMAIL = "admin@gridtokenx.local"


async def _serve(config: uvicorn.Config, duration: float) -> None:
    server = uvicorn.Server(config)
    if duration <= 0:
        await server.serve()
        return
    task = asyncio.create_task(server.serve())
    await asyncio.sleep(duration)
    server.should_exit = True
    await task


def run_demo(console: Console, *, port: int, duration: float) -> None:
    from gridtokenx.app import create_app
    from gridtokenx.cli import create_admin_account

    os.environ.setdefault("GRIDTOKENX_REQUIRE_EMAIL_VERIFICATION", "false")
    os.environ.setdefault("GRIDTOKENX_LOG_JSON", "false")
    get_settings.cache_clear()
    settings = get_settings()
    if not settings.is_sqlite:
        console.print("[yellow]note:[/yellow] the demo is meant for the embedded SQLite set-up")
    password = secrets.token_urlsafe(9)
    admin_id = asyncio.run(create_admin_account(DEMO_ADMIN_EMAIL, password))

    base = f"http://127.0.0.1:{port}"
    table = Table(title="GridTokenX embedded demo", show_header=False)
    table.add_row("API docs (Swagger)", f"{base}/api/docs")
    table.add_row("Health", f"{base}/health")
    table.add_row("Metrics", f"{base}/metrics")
    table.add_row("Database", settings.effective_database_url)
    table.add_row("Admin email", DEMO_ADMIN_EMAIL)
    table.add_row("Admin password", password)
    table.add_row("Admin id", admin_id)
    table.add_row(
        "Email verification", "required" if settings.require_email_verification else "off for the demo"
    )
    console.print(table)
    console.print("Press Ctrl-C to stop.")

    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", access_log=False
    )
    try:
        asyncio.run(_serve(config, duration))
    except KeyboardInterrupt:
        console.print("stopped")
