"""`gridtokenx demo`: the embedded platform on SQLite, served until stopped, with a short scripted
walk-through over real HTTP: a prosumer claims a meter, the meter's device key signs readings, the
gateway verifies and stores them once, refuses a forgery, and answers a resend as a duplicate.

It shows only what the platform really does today; each domain adds its step when it lands.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
from typing import Any

import httpx
import uvicorn
from rich.console import Console
from rich.table import Table

from gridtokenx.core.settings import Settings, get_settings
from gridtokenx.core.types import utcnow
from gridtokenx.readings.envelope import encode_batch
from gridtokenx.readings.signing import DeviceSigner

DEMO_ADMIN_EMAIL = "admin@gridtokenx.io"
DEMO_PROSUMER_EMAIL = "prosumer@gridtokenx.io"
DEMO_SERIAL = "DEMO-METER-001"
INTERVAL = 900


async def _serve(server: uvicorn.Server, duration: float, walkthrough: Any) -> None:
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            await task
            return
        await asyncio.sleep(0.05)
    await walkthrough()
    if duration > 0:
        await asyncio.sleep(duration)
        server.should_exit = True
    await task


def _readings(key: DeviceSigner, settings: Settings, count: int, first_seq: int) -> list[Any]:
    now = int(utcnow().timestamp())
    last = now - now % INTERVAL - INTERVAL
    readings = []
    for i in range(count):
        start = last - (count - 1 - i) * INTERVAL
        generation = 600 + 37 * i
        consumption = 220 + 11 * i
        fields = {
            "device_id": DEMO_SERIAL,
            "interval_start": start,
            "duration": INTERVAL,
            "import_wh": 0,
            "export_wh": generation - consumption,
            "generation_wh": generation,
            "consumption_wh": consumption,
            "quality": 0,
            "firmware": "demo-1.0",
            "seq": first_seq + i,
            "created": now,
            "expires": now + 240,
        }
        readings.append(key.sign_reading(fields, settings.network_id))
    return readings


async def walkthrough(console: Console, base: str, admin_password: str, settings: Settings) -> None:
    """Drive the gateway like its clients would, and print what it answered."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:

        async def login(email: str, password: str) -> dict[str, str]:
            response = await http.post("/api/auth/login", json={"email": email, "password": password})
            response.raise_for_status()
            return {"Authorization": f"Bearer {response.json()['access_token']}"}

        admin = await login(DEMO_ADMIN_EMAIL, admin_password)
        password = secrets.token_urlsafe(9) + "7"
        await http.post(
            "/api/auth/register",
            json={"email": DEMO_PROSUMER_EMAIL, "password": password, "role": "prosumer"},
        )
        meter_key = "utility-issued-" + secrets.token_hex(4)
        await http.post(
            "/api/admin/meters",
            json={
                "serial": DEMO_SERIAL,
                "meter_key": meter_key,
                "capacity_kw": "10",
                "latitude": 13.7563,
                "longitude": 100.5018,
                "commissioned_at": "2025-01-01T00:00:00Z",
            },
            headers=admin,
        )
        prosumer = await login(DEMO_PROSUMER_EMAIL, password)
        claimed = await http.post(
            "/api/meters/verify", json={"serial": DEMO_SERIAL, "meter_key": meter_key}, headers=prosumer
        )
        device = DeviceSigner.from_seed(
            hashlib.sha256(DEMO_SERIAL.encode() + secrets.token_bytes(16)).digest()
        )
        await http.post(
            "/api/admin/devices/register",
            json={"serial": DEMO_SERIAL, "public_key": device.public_key_hex},
            headers=admin,
        )
        signed = _readings(device, settings, 8, first_seq=1)
        batch = await http.post("/api/meters/readings/batch", content=encode_batch(signed), headers=prosumer)
        resend = await http.post(
            "/api/meters/readings/batch", content=encode_batch(signed[-1:]), headers=prosumer
        )
        forged_body = encode_batch(signed[-1:]).replace(b'"export_wh":', b'"export_wh":9', 1)
        forged = await http.post("/api/meters/readings/batch", content=forged_body, headers=prosumer)
        meter_id = claimed.json()["id"]
        totals = (await http.get("/api/meters/stats", headers=prosumer)).json()
        gaps = (await http.get(f"/api/meters/{meter_id}/gaps", headers=prosumer)).json()

    table = Table(title="Walk-through over HTTP", show_header=True)
    table.add_column("step")
    table.add_column("gateway answer")
    table.add_row("prosumer claims meter with its utility key", f"{claimed.status_code} owner set")
    table.add_row("device key provisioned", f"key_id {device.key_id}")
    summary = batch.json()
    table.add_row(
        "8 signed readings (batch)", f"{summary['accepted']} accepted, {summary['rejected']} rejected"
    )
    table.add_row("the last one resent", resend.json()["results"][0]["status"])
    table.add_row("a tampered copy", forged.json()["results"][0].get("code", "?"))
    table.add_row(
        "prosumer totals", f"export {totals['export_kwh']} kWh, mintable {totals['mintable_wh']} Wh"
    )
    table.add_row("gaps in the last 7 days (before the demo data)", str(len(gaps)))
    console.print(table)
    console.print(f"prosumer login: {DEMO_PROSUMER_EMAIL} / {password}")


def run_demo(console: Console, *, port: int, duration: float) -> None:
    from gridtokenx.accounts.admin import create_admin_account
    from gridtokenx.app import create_app

    os.environ.setdefault("GRIDTOKENX_REQUIRE_EMAIL_VERIFICATION", "false")
    os.environ.setdefault("GRIDTOKENX_LOG_JSON", "false")
    os.environ.setdefault("GRIDTOKENX_LOG_LEVEL", "warning")
    os.environ.setdefault("GRIDTOKENX_DATA_DIR", "var/demo")
    get_settings.cache_clear()
    settings = get_settings()
    if not settings.is_sqlite:
        console.print("[yellow]note:[/yellow] the demo is meant for the embedded SQLite set-up")
    if settings.is_sqlite:
        db_file = settings.data_dir / "gridtokenx.db"
        for suffix in ("", "-wal", "-shm"):  # each demo starts from a clean database
            db_file.with_name(db_file.name + suffix).unlink(missing_ok=True)
    password = secrets.token_urlsafe(9)
    admin_id = asyncio.run(create_admin_account(settings, DEMO_ADMIN_EMAIL, password))

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

    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)

    async def script() -> None:
        await walkthrough(console, base, password, settings)
        console.print("Serving; press Ctrl-C to stop." if duration <= 0 else f"Serving for {duration:g} s.")

    try:
        asyncio.run(_serve(server, duration, script))
    except KeyboardInterrupt:
        console.print("stopped")
