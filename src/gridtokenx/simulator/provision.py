"""Bring a fleet into being at a gateway, through its public API only, as a utility would:

1. the utility's admin logs in and keeps an API key (the head-end's credential for batches);
2. each owner (one per floor, plus an `attacker` account that owns nothing) registers, is
   marked verified by the admin, and keeps an API key scoped to `readings:write`;
3. the admin creates each meter (its serial, a utility-issued meter key, PV nameplate, the
   interval, the site's coordinates), the owner claims it with that meter key, and the admin
   provisions the meter's Ed25519 device public key.

Every step is recorded in the fleet file, so a rerun resumes where it stopped and a provisioned
fleet is not provisioned twice.
"""

from __future__ import annotations

import secrets
from decimal import Decimal
from typing import Any

import httpx

from gridtokenx.readings.signing import DeviceSigner
from gridtokenx.simulator.fleet import MeterClass, MeterSpec
from gridtokenx.simulator.fleetfile import FleetFile, MeterRecord, Owner
from gridtokenx.simulator.physics import Site, initial_state

ADMIN = "admin"
ATTACKER = "attacker"
METER_TYPE = {
    MeterClass.SOLAR_PROSUMER: "prosumer",
    MeterClass.GRID_CONSUMER: "consumer",
    MeterClass.HYBRID_PROSUMER: "hybrid",
    MeterClass.BATTERY_STORAGE: "battery",
}


class ProvisionError(Exception):
    """The gateway refused a provisioning step; the message says which and why."""


def _check(response: httpx.Response, what: str, *ok: int) -> dict[str, Any]:
    if response.status_code not in (ok or (200, 201)):
        raise ProvisionError(f"{what}: HTTP {response.status_code} {response.text[:300]}")
    return dict(response.json()) if response.content else {}


def owner_name(spec: MeterSpec) -> str:
    """One owner per floor: the gateway lets an account claim at most 5 meters an hour."""
    return f"owner-{spec.building.lower()}-f{spec.floor}"


def plan(fleet_file: FleetFile, fleet: list[MeterSpec], prefix: str, interval_s: int) -> None:
    """Record the fleet (fresh keys and meter keys) unless the file already holds it."""
    if fleet_file.meters():
        return
    fleet_file.put("interval_s", str(interval_s))
    fleet_file.add_meters(
        MeterRecord(
            spec=spec,
            owner=owner_name(spec),
            key_seed=secrets.token_bytes(32),
            meter_key=secrets.token_urlsafe(18),
            meter_id=None,
            provisioned=False,
            seq=0,
            state=initial_state(spec),
            next_interval=None,
        )
        for spec in fleet
    )
    for name in sorted({owner_name(s) for s in fleet} | {ATTACKER}):
        email = f"{prefix.lower()}-{name}@example.com"
        fleet_file.save_owner(Owner(name, email, secrets.token_urlsafe(12) + "9"))


async def _login(http: httpx.AsyncClient, email: str, password: str) -> dict[str, str]:
    body = _check(
        await http.post("/api/auth/login", json={"email": email, "password": password}), f"login {email}"
    )
    return {"Authorization": f"Bearer {body['access_token']}"}


async def _api_key(http: httpx.AsyncClient, headers: dict[str, str], name: str) -> str:
    response = await http.post("/api/users/me/api-keys", json={"name": name}, headers=headers)
    return str(_check(response, f"api key for {name}")["key"])


async def provision(
    fleet_file: FleetFile,
    http: httpx.AsyncClient,
    admin_email: str,
    admin_password: str,
    site: Site,
    *,
    claim: bool = True,
) -> None:
    """Run the steps that the fleet file does not yet record as done. Without `claim` the meters
    stay unowned and report through the head-end's credential only (fleet-capacity benches)."""
    owners = fleet_file.owners() if claim else {}
    pending = [m for m in fleet_file.meters() if not m.provisioned]
    missing_keys = [o for o in owners.values() if o.api_key is None]
    if not pending and not missing_keys and fleet_file.get("admin_api_key"):
        return
    admin = await _login(http, admin_email, admin_password)
    if not fleet_file.get("admin_api_key"):
        fleet_file.put("admin_api_key", await _api_key(http, admin, "gtx-sim head-end"))
    tokens: dict[str, dict[str, str]] = {}
    for owner in missing_keys:
        response = await http.post(
            "/api/auth/register", json={"email": owner.email, "password": owner.password, "role": "prosumer"}
        )
        if response.status_code != 409:
            user = _check(response, f"register {owner.email}")["user"]
            verified = await http.patch(
                f"/api/admin/users/{user['id']}", json={"email_verified": True}, headers=admin
            )
            _check(verified, f"verify {owner.email}")
        tokens[owner.name] = await _login(http, owner.email, owner.password)
        owner.api_key = await _api_key(http, tokens[owner.name], f"gtx-sim {owner.name}")
        fleet_file.save_owner(owner)
    interval_s = int(fleet_file.get("interval_s") or 900)
    for record in pending:
        spec = record.spec
        created = await http.post(
            "/api/admin/meters",
            json={
                "serial": spec.serial,
                "meter_key": record.meter_key,
                "meter_type": METER_TYPE[spec.meter_class],
                "location": f"building {spec.building}, floor {spec.floor}",
                "latitude": site.latitude,
                "longitude": site.longitude,
                "capacity_kw": str(Decimal(spec.capacity_w).scaleb(-3)),
                "interval_seconds": interval_s,
                "commissioned_at": "2020-01-01T00:00:00Z",
            },
            headers=admin,
        )
        meter = {} if created.status_code == 409 else _check(created, f"create meter {spec.serial}")
        if claim:
            owner = owners[record.owner]
            if record.owner not in tokens:
                tokens[record.owner] = await _login(http, owner.email, owner.password)
            claimed = await http.post(
                "/api/meters/verify",
                json={"serial": spec.serial, "meter_key": record.meter_key},
                headers=tokens[record.owner],
            )
            meter = _check(claimed, f"claim {spec.serial}")
        key = DeviceSigner.from_seed(record.key_seed)
        device = await http.post(
            "/api/admin/devices/register",
            json={"serial": spec.serial, "public_key": key.public_key_hex},
            headers=admin,
        )
        if device.status_code != 409:
            _check(device, f"device key of {spec.serial}")
        fleet_file.mark_provisioned(spec.serial, str(meter.get("id", "")))
