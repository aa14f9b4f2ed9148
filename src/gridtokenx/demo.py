"""`gridtokenx demo`: the whole platform in one process (SQLite, in-process events, the embedded
ledger, duties in the gateway), brought to life over its own public HTTP API as its users would:

- an admin, three prosumers and three consumers, emails verified, custodial wallets;
- the prosumers' meters registered, claimed and keyed by the simulator's own provisioning, then
  the simulator's fleet driver streams device-signed readings in accelerated time (it replays
  the last day, so the PV ramps visibly) and the mint duty turns verified surplus into tokens;
- every 1-minute epoch the prosumers offer from their energy tokens and the consumers bid with
  faucet money; the market duty clears and settles on the ledger;
- prosumers certify past periods of their generation and one certificate is retired.

State lives in the data directory (./var), so the next run resumes it; `--reset` starts fresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import secrets
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from rich.console import Console
from rich.live import Live
from rich.table import Table

from gridtokenx.core.settings import Settings, get_settings
from gridtokenx.simulator.driver import FleetConfig, FleetDriver
from gridtokenx.simulator.fleet import MeterClass, build_fleet
from gridtokenx.simulator.fleetfile import FleetFile, MeterRecord, Owner
from gridtokenx.simulator.physics import initial_state

ADMIN_EMAIL = "admin@gridtokenx.io"
PROSUMERS = tuple(f"prosumer{i}@gridtokenx.io" for i in (1, 2, 3))
CONSUMERS = tuple(f"consumer{i}@gridtokenx.io" for i in (1, 2, 3))
INTERVAL_S = 900  # meter interval: also the certificate period, so a reading fills one period
SPEED = 900.0  # simulated seconds per wall second: the last day replays in about 1.5 minutes
EPOCH_S = 60
STATE_FILE = "demo.json"
FLEET_FILE = "demo-fleet.db"


@dataclass
class Panel:
    """What the terminal shows; every field is read from the gateway's answers."""

    readings: int = 0
    rejected: int = 0
    minted: str = "0"
    open_orders: int = 0
    last_price: str | None = None
    last_volume: str = "0"
    epochs_settled: int = 0
    trades_settled: int = 0
    certificates: int = 0
    retired: int = 0
    errors: list[str] = field(default_factory=list)

    def error(self, what: str) -> None:
        self.errors = [*self.errors[-2:], f"{datetime.now(UTC):%H:%M:%S} {what}"]

    def render(self) -> Table:
        table = Table(title="GridTokenX live", show_header=False, min_width=60)
        table.add_row("readings stored", f"{self.readings} ({self.rejected} rejected)")
        table.add_row("energy tokens minted", f"{self.minted} kWh")
        table.add_row("open orders", str(self.open_orders))
        price = f"{self.last_price} per kWh" if self.last_price else "-"
        table.add_row("last clearing", f"{price}, {self.last_volume} kWh")
        table.add_row("settled", f"{self.epochs_settled} epochs, {self.trades_settled} trades")
        table.add_row("certificates", f"{self.certificates} issued, {self.retired} retired")
        table.add_row("last error", self.errors[-1] if self.errors else "none")
        return table


def _paths(settings: Settings) -> list[Path]:
    db_file = settings.data_dir / "gridtokenx.db"
    state = [db_file.with_name(db_file.name + suffix) for suffix in ("", "-wal", "-shm")]
    return [*state, settings.ledger_dir, settings.data_dir / STATE_FILE, settings.data_dir / FLEET_FILE]


def _reset(settings: Settings) -> None:
    for path in _paths(settings):
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def _load_state(settings: Settings, reset: bool) -> dict[str, str]:
    """The demo's passwords, kept beside its data so a resumed demo logs in as before; a data
    directory without them (or `--reset`) starts from nothing."""
    path = settings.data_dir / STATE_FILE
    if reset or not path.exists():
        _reset(settings)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        state = {"admin_password": secrets.token_urlsafe(12), "password": "demo-" + secrets.token_hex(4)}
        path.write_text(json.dumps(state))
    return dict(json.loads(path.read_text()))


def _plan_fleet(path: Path, password: str) -> None:
    """Three solar prosumers, one per demo prosumer account, in the simulator's fleet file (the
    driver provisions what the file does not yet record as done)."""
    fleet_file = FleetFile(path)
    try:
        if fleet_file.meters():
            return
        fleet_file.put("interval_s", str(INTERVAL_S))
        solar = [
            s for s in build_fleet(40, seed=7, prefix="DEMO") if s.meter_class is MeterClass.SOLAR_PROSUMER
        ]
        owners = [Owner(f"prosumer{i + 1}", email, password) for i, email in enumerate(PROSUMERS)]
        fleet_file.add_meters(
            MeterRecord(
                spec=spec,
                owner=owner.name,
                key_seed=secrets.token_bytes(32),
                meter_key=secrets.token_urlsafe(18),
                meter_id=None,
                provisioned=False,
                seq=0,
                state=initial_state(spec),
                next_interval=None,
            )
            for spec, owner in zip(solar, owners, strict=False)
        )
        for owner in owners:
            fleet_file.save_owner(owner)
    finally:
        fleet_file.close()


class Demo:
    """The scripted users: one HTTP client, bearer tokens per account, loops per activity."""

    def __init__(self, base: str, state: dict[str, str], settings: Settings, panel: Panel) -> None:
        self.http = httpx.AsyncClient(base_url=base, timeout=60)
        self.state = state
        self.settings = settings
        self.panel = panel
        self.tokens: dict[str, dict[str, str]] = {}
        self.rng = random.Random()
        self.traded_epochs: set[int] = set()
        self.searched: dict[str, int] = {}  # meter id -> the newest period start already tried
        self.driver: FleetDriver | None = None

    async def call(self, method: str, url: str, who: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = await self.auth(who) if who else {}
        response = await self.http.request(method, url, headers=headers, **kwargs)
        if response.status_code == 401 and who:
            self.tokens.pop(who, None)
            response = await self.http.request(method, url, headers=await self.auth(who), **kwargs)
        return response

    async def auth(self, email: str) -> dict[str, str]:
        if email not in self.tokens:
            password = self.state["admin_password"] if email == ADMIN_EMAIL else self.state["password"]
            response = await self.http.post("/api/auth/login", json={"email": email, "password": password})
            response.raise_for_status()
            self.tokens[email] = {"Authorization": f"Bearer {response.json()['access_token']}"}
        return self.tokens[email]

    # --- set-up ------------------------------------------------------------------------------

    async def setup(self) -> None:
        for email in CONSUMERS:
            registered = await self.http.post(
                "/api/auth/register",
                json={"email": email, "password": self.state["password"], "role": "consumer"},
            )
            if registered.status_code != 409:
                registered.raise_for_status()
                user_id = registered.json()["user"]["id"]
                verified = await self.call(
                    "PATCH", f"/api/admin/users/{user_id}", ADMIN_EMAIL, json={"email_verified": True}
                )
                verified.raise_for_status()
        fleet_path = self.settings.data_dir / FLEET_FILE
        _plan_fleet(fleet_path, self.state["password"])
        self.driver = FleetDriver(
            FleetConfig(
                gateway=str(self.http.base_url),
                fleet_file=fleet_path,
                meters=len(PROSUMERS),
                interval_s=INTERVAL_S,
                speed=SPEED,
                admin_email=ADMIN_EMAIL,
                admin_password=self.state["admin_password"],
                network_id=self.settings.network_id,
                max_catchup=96,
                drain_timeout_s=5.0,
            )
        )
        await self.driver.start()
        for email in (*PROSUMERS, *CONSUMERS):  # custodial wallets, created on first need
            (await self.call("GET", "/api/wallets/me", email)).raise_for_status()
        for email in CONSUMERS:
            await self.top_up(email)

    # --- activities --------------------------------------------------------------------------

    async def balance(self, email: str, token: str) -> Decimal:
        wallet = (await self.call("GET", "/api/wallets/me", email)).json()
        amounts = [Decimal(b["amount_decimal"]) for b in wallet.get("balances", []) if b["token"] == token]
        return sum(amounts, Decimal(0))

    async def trade(self) -> None:
        """Once per epoch: offers from prosumers holding at least 1 kWh, bids from consumers."""
        status = (await self.call("GET", "/api/market/epoch/status")).json()
        current = status.get("current")
        epoch_id = current["id"] if current else None
        if epoch_id in self.traded_epochs:
            return
        sellers = []
        for email in PROSUMERS:
            held = await self.balance(email, "energy")
            if held >= 1:
                sellers.append((email, min(held, Decimal(3)).quantize(Decimal(1), rounding="ROUND_DOWN")))
        if not sellers:
            return
        for email, kwh in sellers:
            price = Decimal(self.rng.randint(300, 360)) / 100
            await self.order(email, "sell", kwh, price)
        for email in CONSUMERS:
            await self.top_up(email)
            price = Decimal(self.rng.randint(340, 420)) / 100
            await self.order(email, "buy", Decimal(self.rng.randint(1, 3)), price)
        if epoch_id is None:  # the first order opened the epoch
            status = (await self.call("GET", "/api/market/epoch/status")).json()
            epoch_id = status["current"]["id"] if status.get("current") else None
        if epoch_id is not None:
            self.traded_epochs.add(epoch_id)

    async def top_up(self, email: str) -> None:
        """Demo money from the faucet for a consumer running low."""
        if await self.balance(email, "payment") < 20:
            faucet = await self.call("POST", "/api/faucet", email, json={"amount": "100"})
            if faucet.status_code >= 400:
                self.panel.error(f"faucet {email}: {faucet.text[:120]}")

    async def order(self, email: str, side: str, kwh: Decimal, price: Decimal) -> None:
        body = {"order_type": side, "energy_amount": str(kwh), "price_per_kwh": str(price)}
        placed = await self.call("POST", "/api/trading/orders", email, json=body)
        if placed.status_code >= 400:
            self.panel.error(f"{side} order of {email}: {placed.text[:120]}")

    async def certify(self) -> None:
        """Each prosumer certifies its newest settled period with generation that the simulator
        has already measured, and the first prosumer retires one certificate (once)."""
        if self.driver is None:
            return
        measured = int(self.driver.clock.now()) // INTERVAL_S * INTERVAL_S - INTERVAL_S
        now = int(time.time())
        newest = min(measured, now - now % INTERVAL_S - INTERVAL_S - self.settings.erc_settle_seconds)
        emails = dict(zip((f"prosumer{i + 1}" for i in range(len(PROSUMERS))), PROSUMERS, strict=True))
        for record in self.driver.records.values():
            if record.meter_id and record.owner in emails:
                await self.certify_meter(emails[record.owner], record.meter_id, newest)
        email = PROSUMERS[0]
        retired = (await self.call("GET", "/api/erc", email, params={"status": "retired"})).json()
        active = (await self.call("GET", "/api/erc", email, params={"status": "active"})).json()
        if retired["total"] == 0 and active["items"]:
            answer = await self.call(
                "POST",
                f"/api/erc/{active['items'][0]['id']}/retire",
                email,
                json={"beneficiary": "Consumer One Co.", "purpose": "Scope 2 claim, demo", "location": "TH"},
            )
            if answer.status_code >= 400:
                self.panel.error(f"retire: {answer.text[:120]}")

    async def certify_meter(self, email: str, meter_id: str, newest: int) -> None:
        """Walk back from the newest settled period to the last one tried; issue the first with
        certifiable generation."""
        stop = self.searched.get(meter_id, newest - 86_400)
        start = newest
        while start > stop:
            period = {
                "meter_id": meter_id,
                "period_start": datetime.fromtimestamp(start, UTC).isoformat(),
                "period_end": datetime.fromtimestamp(start + INTERVAL_S, UTC).isoformat(),
            }
            issued = await self.call("POST", "/api/erc/issue", email, json=period)
            if issued.status_code == 201:
                break
            if issued.status_code not in (409, 422):
                self.panel.error(f"issue: {issued.text[:120]}")
                return
            start -= INTERVAL_S
        self.searched[meter_id] = newest

    async def refresh(self) -> None:
        """Fill the panel from the gateway's public and admin answers."""
        panel = self.panel
        if self.driver is not None:
            total = self.driver.stats.total
            panel.rejected = sum(total.rejected.values())
        minted, readings = Decimal(0), 0
        for email in PROSUMERS:
            totals = (await self.call("GET", "/api/meters/stats", email)).json()
            minted += Decimal(totals["minted_tokens"])
            readings += int(totals["readings"])
        panel.readings = readings
        panel.minted = f"{minted.normalize():f}"
        stats = (await self.call("GET", "/api/market/stats")).json()
        panel.open_orders = int(stats["open_orders"])
        epochs = (await self.call("GET", "/api/market/epochs", params={"limit": 50})).json()
        cleared = [e for e in epochs if e.get("cleared_at")]
        if cleared:
            panel.last_price = cleared[0]["clearing_price"]
            panel.last_volume = cleared[0]["volume"]
        panel.epochs_settled = sum(1 for e in epochs if e.get("settled_at"))
        trades = (await self.call("GET", "/api/market/trades", params={"limit": 100})).json()
        settled_ids = {e["id"] for e in epochs if e.get("settled_at")}
        panel.trades_settled = sum(1 for t in trades if t["epoch_id"] in settled_ids)
        certificates = retired = 0
        for email in PROSUMERS:
            certificates += (await self.call("GET", "/api/erc", email, params={"limit": 1})).json()["total"]
            mine = await self.call("GET", "/api/erc", email, params={"limit": 1, "status": "retired"})
            retired += mine.json()["total"]
        panel.certificates, panel.retired = certificates, retired

    async def every(self, seconds: float, step: Any) -> None:
        while True:
            try:
                await step()
            except (httpx.HTTPError, KeyError, ValueError, TypeError) as error:
                self.panel.error(f"{step.__name__}: {error!r}"[:160])
            await asyncio.sleep(seconds)

    async def close(self) -> None:
        if self.driver is not None:
            await self.driver.stop()
        await self.http.aclose()


def _intro(console: Console, base: str, state: dict[str, str], settings: Settings) -> None:
    table = Table(title="GridTokenX embedded demo", show_header=False)
    table.add_row("Dashboard", f"[bold]{base}/[/bold]")
    table.add_row("API docs", f"{base}/api/docs")
    table.add_row("Data", f"{settings.data_dir} (resumed next time; --reset starts fresh)")
    table.add_row("Admin login", f"{ADMIN_EMAIL} / {state['admin_password']}")
    table.add_row("Prosumer logins", f"{', '.join(PROSUMERS)} / {state['password']}")
    table.add_row("Consumer logins", f"{', '.join(CONSUMERS)} / {state['password']}")
    table.add_row("Epochs", f"{settings.market_epoch_seconds} s; the simulator runs {SPEED:g}x")
    console.print(table)


async def _run(console: Console, server: uvicorn.Server, demo: Demo, duration: float, ctx: Any) -> bool:
    """Serve, script the users, show the panel; on a timed run judge it. True means success."""
    from gridtokenx.domains import audit

    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            await serving
            return False
        await asyncio.sleep(0.05)
    began = time.monotonic()
    loops: list[asyncio.Task[None]] = []
    ok = True
    try:
        await demo.setup()
        loops = [
            asyncio.create_task(demo.every(5, demo.trade)),
            asyncio.create_task(demo.every(10, demo.certify)),
            asyncio.create_task(demo.every(2, demo.refresh)),
        ]
        with Live(demo.panel.render(), console=console, refresh_per_second=2, transient=False) as live:
            while not server.should_exit:
                if duration > 0 and time.monotonic() - began >= duration:
                    break
                live.update(demo.panel.render())
                await asyncio.sleep(0.5)
            live.update(demo.panel.render())
        for loop in loops:
            loop.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        if duration > 0 and not server.should_exit:
            ok = await _judge(console, demo, await audit(ctx))
    finally:
        for loop in loops:
            loop.cancel()
        with contextlib.suppress(Exception):
            await demo.close()
        server.should_exit = True
        await serving
    return ok


async def _judge(console: Console, demo: Demo, problems: list[str]) -> bool:
    await demo.refresh()
    console.print()
    panel = demo.panel
    for line in problems:
        console.print(f"[red]audit difference:[/red] {line}")
    console.print(f"trades settled: {panel.trades_settled}")
    console.print(f"certificates retired: {panel.retired}")
    console.print("audit clean" if not problems else f"audit: {len(problems)} differences")
    return not problems and panel.trades_settled > 0 and panel.retired > 0


def run_demo(console: Console, *, port: int, duration: float, reset: bool = False) -> bool:
    """Run the demo; returns whether a timed run met its goals (always True when stopped by hand)."""
    import os

    from gridtokenx.accounts.admin import create_admin_account
    from gridtokenx.app import create_app

    os.environ.setdefault("GRIDTOKENX_REQUIRE_EMAIL_VERIFICATION", "false")
    os.environ.setdefault("GRIDTOKENX_LOG_JSON", "false")
    os.environ.setdefault("GRIDTOKENX_LOG_LEVEL", "warning")
    os.environ.setdefault("GRIDTOKENX_DATA_DIR", "var")
    os.environ.setdefault("GRIDTOKENX_EPOCH_SECONDS", str(EPOCH_S))
    os.environ.setdefault("GRIDTOKENX_ERC_SETTLE_SECONDS", "300")
    os.environ.setdefault("GRIDTOKENX_PUBLIC_BASE_URL", f"http://127.0.0.1:{port}")
    get_settings.cache_clear()
    settings = get_settings()
    if not settings.is_sqlite:
        console.print("[yellow]note:[/yellow] the demo is meant for the embedded SQLite set-up")
    state = _load_state(settings, reset)
    asyncio.run(create_admin_account(settings, ADMIN_EMAIL, state["admin_password"]))
    base = f"http://127.0.0.1:{port}"
    _intro(console, base, state, settings)
    app = create_app(settings)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    demo = Demo(base, state, settings, Panel())
    try:
        return asyncio.run(_run(console, server, demo, duration, app.state.ctx))
    except KeyboardInterrupt:
        console.print("stopped")
        return True
