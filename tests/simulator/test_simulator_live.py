"""The simulator against a real gateway process on the local PostgreSQL and Mosquitto: every
transport stores every reading once, the compatibility shapes reach their routes, the spool
survives a gateway restart, and each attack gets its expected answer."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from gridtokenx.simulator.driver import FleetConfig, FleetDriver, Report
from gridtokenx.simulator.transport import RetryPolicy
from tests.simulator.gateway import ADMIN_EMAIL, ADMIN_PASSWORD, Gateway

pytestmark = [pytest.mark.postgres, pytest.mark.mqtt]
INTERVAL = 15


@pytest.fixture
def gateway(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Gateway]:
    rate = getattr(request, "param", "100000/minute")
    gw = Gateway(tmp_path, rate_limit=rate)
    gw.create()
    gw.start()
    try:
        yield gw
    finally:
        gw.drop()


def config(gw: Gateway, tmp_path: Path, **overrides: object) -> FleetConfig:
    values: dict[str, object] = {
        "gateway": gw.url,
        "fleet_file": tmp_path / "fleet.db",
        "meters": 5,
        "interval_s": INTERVAL,
        "speed": 60.0,
        "duration_s": 6.0,
        "admin_email": ADMIN_EMAIL,
        "admin_password": ADMIN_PASSWORD,
        "mqtt_prefix": gw.mqtt_prefix,
        "prefix": "T" + gw.name[-6:].upper(),
        "retry": RetryPolicy(attempts=3, base_s=0.05, cap_s=0.5),
    }
    values.update(overrides)
    return FleetConfig(**values)  # type: ignore[arg-type]


def run(cfg: FleetConfig) -> Report:
    async def main() -> Report:
        driver = FleetDriver(cfg)
        await driver.start()
        return await driver.wait()

    return asyncio.run(main())


def stored_once(gw: Gateway, report: Report) -> None:
    total = report.stats.total
    assert report.lost == 0 and report.spooled == 0, report.stats.table()
    assert total.generated >= 5 * 8  # 6 s at x60 is 24 intervals of 15 s per meter
    assert total.accepted == total.generated
    rows = gw.count("SELECT count(*) FROM meter_readings")
    assert rows == total.generated
    keys = gw.count("SELECT count(DISTINCT (meter_id, interval_start)) FROM meter_readings")
    assert keys == rows


@pytest.mark.parametrize("transport", ["http", "batch", "mqtt"])
def test_each_transport_stores_every_reading_once(gateway: Gateway, tmp_path: Path, transport: str) -> None:
    report = run(config(gateway, tmp_path, transport=transport))
    stored_once(gateway, report)
    signed = gateway.count("SELECT count(*) FROM meter_readings WHERE trust = 'device-signed'")
    trust = gateway.fetch("SELECT trust, flags::text, count(*) FROM meter_readings GROUP BY 1, 2")
    assert signed == report.stats.total.generated, trust
    assert report.stats.total.answer_seconds


@pytest.mark.parametrize("compat", ["a1", "a2"])
@pytest.mark.parametrize("transport", ["http", "batch"])
def test_compat_shapes_reach_their_routes(
    gateway: Gateway, tmp_path: Path, compat: str, transport: str
) -> None:
    report = run(config(gateway, tmp_path, transport=transport, compat=compat, duration_s=4.0))
    stored_once(gateway, report)


def test_spool_survives_a_gateway_outage_and_a_simulator_restart(gateway: Gateway, tmp_path: Path) -> None:
    cfg = config(gateway, tmp_path, transport="batch", duration_s=8.0, drain_timeout_s=1.0)

    async def with_outage() -> Report:
        driver = FleetDriver(cfg)
        await driver.start()
        await asyncio.sleep(3.0)
        await asyncio.to_thread(gateway.stop)  # SIGTERM mid-run; the fleet keeps measuring
        return await driver.wait()

    first = asyncio.run(with_outage())
    assert first.spooled > 0 and first.lost == 0  # held on disk, not lost
    assert first.stats.total.accepted > 0

    gateway.start()
    second = run(replace(cfg, duration_s=3.0))
    assert second.lost == 0 and second.spooled == 0, second.stats.table()
    generated = first.stats.total.generated + second.stats.total.generated
    assert gateway.count("SELECT count(*) FROM meter_readings WHERE trust = 'device-signed'") == generated
    assert gateway.count("SELECT count(*) FROM meter_readings") == generated
    assert second.stats.total.rejected == {}  # sequence numbers and registers continued


@pytest.mark.parametrize("gateway", ["100/minute"], indirect=True)
@pytest.mark.parametrize("transport", ["batch", "mqtt"])
def test_every_attack_gets_its_expected_answer(gateway: Gateway, tmp_path: Path, transport: str) -> None:
    """Over MQTT the attacks are published on meters' topics (a reading on another meter's topic
    is SERIAL_MISMATCH there, not HTTP's METER_NOT_OWNED); only the flood stays on HTTP."""
    from gridtokenx.simulator.attacks import SCENARIOS

    cfg = config(gateway, tmp_path, transport=transport, scenarios=tuple(SCENARIOS), flood_requests=150)
    report = run(cfg)
    results = {a.scenario: a for a in report.stats.attacks}
    assert set(results) == set(SCENARIOS)
    for attack in results.values():
        assert attack.ok, attack
    over_mqtt = transport == "mqtt"
    assert results["other_meter"].got == ("SERIAL_MISMATCH" if over_mqtt else "METER_NOT_OWNED")
    assert ("over HTTP" in results["flood"].detail) == over_mqtt
    assert report.lost == 0 and report.spooled == 0
    night = gateway.count("SELECT count(*) FROM meter_readings WHERE flags::text LIKE '%PV_AT_NIGHT%'")
    assert night == 1


def test_simulate_command_shows_the_table_and_exits_zero(gateway: Gateway, tmp_path: Path) -> None:
    env = {
        **gateway.env(),
        "GRIDTOKENX_SIM_ADMIN_EMAIL": ADMIN_EMAIL,
        "GRIDTOKENX_SIM_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "COLUMNS": "160",
    }
    args = [
        "--gateway",
        gateway.url,
        "--meters",
        "3",
        "--transport",
        "batch",
        "--speed",
        "60",
        "--duration",
        "4",
    ]
    args += ["--fleet-file", str(tmp_path / "fleet.db"), "--prefix", "CLI" + gateway.name[-5:].upper()]
    done = subprocess.run(
        [sys.executable, "-m", "gridtokenx.cli", "simulate", *args], env=env, capture_output=True, timeout=300
    )
    out = done.stdout.decode()
    assert done.returncode == 0, out + done.stderr.decode()
    assert "solar_prosumer" in out and "p95 ms" in out and "lost 0, left in spool 0" in out
    assert gateway.count("SELECT count(*) FROM meter_readings") > 0
