"""`gridtokenx simulate`: run a simulated meter fleet against a gateway with a live table.

Kept free of heavy imports (pvlib, pandas) so that loading the `gridtokenx` command stays fast;
the driver is imported when the command runs.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.live import Live


def simulate(
    gateway: Annotated[str, typer.Option(help="Gateway base URL.")] = "http://127.0.0.1:8000",
    meters: Annotated[int, typer.Option(help="Meters in the fleet (a new fleet file only).")] = 25,
    interval: Annotated[int, typer.Option(help="Seconds per reading interval (15..3600).")] = 15,
    transport: Annotated[
        str, typer.Option(help="http, batch (head-end, one batch per interval) or mqtt.")
    ] = "http",
    compat: Annotated[
        str | None, typer.Option(help="Send the original simulator's shapes: a1 or a2 (http/batch only).")
    ] = None,
    scenario: Annotated[
        list[str] | None,
        typer.Option(
            help="Attack scenario(s), repeatable or comma-separated: replay, forged, other_meter, future, "
            "beyond_capacity, frozen_register, pv_at_night, flood, or all."
        ),
    ] = None,
    speed: Annotated[
        float, typer.Option(help="Simulated seconds per wall second (replays the recent past).")
    ] = 1.0,
    duration: Annotated[
        float | None, typer.Option(help="Wall seconds to run (default: until Ctrl-C).")
    ] = None,
    fleet_file: Annotated[Path, typer.Option(help="Keys, sequence numbers, state and spool.")] = Path(
        "var/simulator/fleet.db"
    ),
    seed: Annotated[int, typer.Option(help="Seed of the fleet and its weather.")] = 42,
    prefix: Annotated[str, typer.Option(help="Serial prefix of the meters.")] = "SIM",
    admin_email: Annotated[
        str,
        typer.Option(envvar="GRIDTOKENX_SIM_ADMIN_EMAIL", help="The utility admin that provisions meters."),
    ] = "",
    admin_password: Annotated[
        str, typer.Option(envvar="GRIDTOKENX_SIM_ADMIN_PASSWORD", help="Its password.")
    ] = "",
    network_id: Annotated[
        str,
        typer.Option(envvar="GRIDTOKENX_NETWORK_ID", help="The gateway's network id (signed into readings)."),
    ] = "gridtokenx-localnet",
    mqtt_host: Annotated[str, typer.Option(envvar="MQTT_BROKER_HOST")] = "127.0.0.1",
    mqtt_port: Annotated[int, typer.Option(envvar="MQTT_BROKER_PORT")] = 1883,
    mqtt_prefix: Annotated[str, typer.Option(envvar="GRIDTOKENX_MQTT_TOPIC_PREFIX")] = "gridtokenx",
    spool_limit: Annotated[
        int, typer.Option(help="Readings the on-disk spool holds before dropping the oldest.")
    ] = 100_000,
) -> None:
    """Drive a simulated meter fleet against a gateway; exits 1 if readings were lost or left unsent."""
    from gridtokenx.simulator.attacks import SCENARIOS
    from gridtokenx.simulator.driver import FleetConfig, FleetDriver, Report

    names = tuple(n.strip() for item in scenario or () for n in item.split(",") if n.strip())
    if "all" in names:
        names = tuple(SCENARIOS)
    try:
        config = FleetConfig(
            gateway=gateway,
            fleet_file=fleet_file,
            meters=meters,
            interval_s=interval,
            transport=transport,
            compat=compat,
            scenarios=names,
            speed=speed,
            duration_s=duration,
            seed=seed,
            prefix=prefix,
            admin_email=admin_email,
            admin_password=admin_password,
            network_id=network_id,
            mqtt_host=mqtt_host,
            mqtt_port=mqtt_port,
            mqtt_prefix=mqtt_prefix,
            spool_limit=spool_limit,
        )
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    console = Console()

    async def main() -> Report:
        driver = FleetDriver(config)
        await driver.start()
        # Ctrl-C stops generating and drains the spool (what is left waits for the next run)
        asyncio.get_running_loop().add_signal_handler(signal.SIGINT, driver.stopping.set)
        with Live(driver.stats.table(), console=console, refresh_per_second=2) as live:
            while not driver.task_done:
                live.update(driver.stats.table())
                await asyncio.sleep(0.5)
            report = await driver.wait()
            live.update(report.stats.table())
        return report

    try:
        report = asyncio.run(main())
    except KeyboardInterrupt:
        console.print("interrupted: spooled readings stay in the fleet file and go out on the next run")
        raise typer.Exit(1) from None
    for attack in report.stats.attacks:
        mark = "ok" if attack.ok else "UNEXPECTED"
        detail = f" ({attack.detail})" if attack.detail else ""
        console.print(
            f"attack {attack.scenario}: expected {attack.expected}, got {attack.got}{detail} [{mark}]"
        )
    console.print(
        f"lost {report.lost}, left in spool {report.spooled} (fleet file {os.fspath(fleet_file)})",
        style="green" if report.ok else "red",
    )
    if not report.ok:
        raise typer.Exit(1)
