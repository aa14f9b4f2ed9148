"""What a meter measures in one interval: PV, load, battery and the grid exchange, in integer Wh.

Pure (no I/O) and deterministic: every random draw is a hash of (seed, what, when), so the same
seed, meter and interval always give the same reading, whatever order or process computes it.

- PV: pvlib clear-sky irradiance (Ineichen, fixed Linke turbidity) and solar position for the site,
  transposed onto each array's tilt and azimuth, dimmed by a cloud process (slow weather regimes
  with fast cloud passes that reach each building at a slightly different time), a temperature
  derate, and clipped at the inverter's nameplate. Zero with the sun below the horizon.
- Load: an hourly shape per building type (local time), weekend factor, a little noise.
- Battery: state of charge in Wh within [min, capacity]; charge and discharge limited per interval.
- Energy: each meter keeps cumulative milli-Wh of generation and load, so interval Wh are exact
  integer differences, and the grid exchange is solved in integers: per interval
  `generation + import + discharge == consumption + export + charge`.
  Registers only ever add interval values: they never go backwards.
"""

from __future__ import annotations

import hashlib
import math
import struct
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
import pandas as pd
import pvlib

from gridtokenx.simulator.fleet import BuildingType, MeterClass, MeterSpec

SIM_BLOCK = 256  # intervals of solar geometry computed per pvlib call
SYSTEM_DERATE = 0.86  # wiring, soiling, inverter
TEMP_COEFF = -0.004  # per degree C above 25
NOCT_RISE = 0.03  # cell heating, degrees C per W/m2
REGIME_S = 3 * 3600
PASS_S = 300


@dataclass(frozen=True)
class Site:
    """Where the fleet is (default: Bangkok). `utc_offset_h` sets the local hours of the load shapes."""

    latitude: float = 13.7563
    longitude: float = 100.5018
    altitude_m: float = 2.0
    utc_offset_h: int = 7
    linke_turbidity: float = 3.5  # hazy tropical air
    mean_temp_c: float = 29.0
    temp_swing_c: float = 4.5


def unit(seed: int, *keys: object) -> float:
    """A reproducible draw in [0, 1) named by `keys`."""
    digest = hashlib.blake2b(repr((seed, keys)).encode(), digest_size=8).digest()
    return struct.unpack("<Q", digest)[0] / 2**64


def _smooth(seed: int, label: str, t: float, period: float) -> float:
    """Value noise in [0, 1): random knots every `period` s, joined by a smoothstep."""
    k, frac = divmod(t / period, 1.0)
    a, b = unit(seed, label, int(k)), unit(seed, label, int(k) + 1)
    s = frac * frac * (3 - 2 * frac)
    return a + (b - a) * s


def clearness(seed: int, t: float) -> float:
    """Fraction of clear-sky irradiance that gets through the clouds at time `t` (0.2 .. 1)."""
    regime = _smooth(seed, "regime", t, REGIME_S) ** 1.5  # mostly fair weather
    passing = _smooth(seed, "pass", t, PASS_S)
    cover = min(1.0, max(0.0, regime * (0.6 + 0.8 * passing)))
    return 1.0 - 0.8 * cover


def ambient_temp_c(site: Site, t: float) -> float:
    """Air temperature: a daily sine peaking mid-afternoon, local time."""
    hour = ((t / 3600) + site.utc_offset_h) % 24
    return site.mean_temp_c + site.temp_swing_c * math.sin(2 * math.pi * (hour - 9) / 24)


@dataclass(frozen=True)
class Irradiance:
    """Plane-of-array irradiance in W/m2 under a clear sky, split into beam and diffuse."""

    elevation_deg: float
    beam: float
    diffuse: float


@lru_cache(maxsize=64)
def _block(site: Site, interval_s: int, block: int, tilt: int, azimuth: int) -> tuple[Irradiance, ...]:
    """Clear-sky irradiance at the midpoints of `SIM_BLOCK` consecutive intervals, one pvlib call."""
    first = block * SIM_BLOCK * interval_s
    mids = first + interval_s * np.arange(SIM_BLOCK) + interval_s / 2
    times = pd.DatetimeIndex(pd.to_datetime(mids, unit="s", utc=True))
    location = pvlib.location.Location(site.latitude, site.longitude, tz="UTC", altitude=site.altitude_m)
    sun = location.get_solarposition(times)
    sky = location.get_clearsky(
        times, model="ineichen", solar_position=sun, linke_turbidity=site.linke_turbidity
    )
    poa = pvlib.irradiance.get_total_irradiance(
        tilt, azimuth, sun["apparent_zenith"], sun["azimuth"], sky["dni"], sky["ghi"], sky["dhi"]
    )
    elevation = sun["apparent_elevation"].to_numpy()
    beam = np.nan_to_num(poa["poa_direct"].to_numpy())
    diffuse = np.nan_to_num(poa["poa_diffuse"].to_numpy())
    return tuple(
        Irradiance(float(e), max(0.0, float(b)), max(0.0, float(d)))
        for e, b, d in zip(elevation, beam, diffuse, strict=True)
    )


def clear_sky(site: Site, interval_start: int, interval_s: int, tilt: int, azimuth: int) -> Irradiance:
    """Clear-sky irradiance on a plane over the interval starting at `interval_start` (aligned)."""
    index = interval_start // interval_s
    block, offset = divmod(index, SIM_BLOCK)
    return _block(site, interval_s, block, tilt, azimuth)[offset]


def pv_power_w(spec: MeterSpec, site: Site, seed: int, interval_start: int, interval_s: int) -> float:
    """Mean PV output over the interval, W: irradiance x clouds x derates, clipped at nameplate."""
    if spec.pv_w == 0:
        return 0.0
    sky = clear_sky(site, interval_start, interval_s, spec.tilt_deg, spec.azimuth_deg)
    if sky.elevation_deg <= 0:
        return 0.0
    # clouds reach each building a little earlier or later
    lag = unit(seed, "lag", spec.building) * 240
    k = clearness(seed, interval_start + interval_s / 2 + lag)
    poa = sky.beam * k * k + sky.diffuse * (0.6 + 0.4 * k)
    cell_c = ambient_temp_c(site, interval_start) + NOCT_RISE * poa
    power = spec.pv_w * poa / 1000 * SYSTEM_DERATE * (1 + TEMP_COEFF * (cell_c - 25))
    return min(max(power, 0.0), float(spec.pv_w))


# Fraction of peak load for each local hour 0..23.
# fmt: off
LOAD_SHAPES: dict[BuildingType, tuple[float, ...]] = {
    BuildingType.RESIDENTIAL: (
        0.35, 0.30, 0.28, 0.27, 0.28, 0.35, 0.55, 0.75, 0.65, 0.45, 0.38, 0.36,
        0.40, 0.38, 0.37, 0.40, 0.50, 0.70, 0.90, 1.00, 0.95, 0.80, 0.60, 0.45,
    ),
    BuildingType.COMMERCIAL: (
        0.20, 0.18, 0.18, 0.18, 0.18, 0.20, 0.30, 0.55, 0.85, 0.95, 1.00, 1.00,
        0.90, 0.98, 1.00, 0.97, 0.90, 0.70, 0.45, 0.35, 0.28, 0.25, 0.22, 0.20,
    ),
    BuildingType.INDUSTRIAL: (
        0.55, 0.55, 0.55, 0.55, 0.55, 0.60, 0.75, 0.90, 1.00, 1.00, 1.00, 1.00,
        0.95, 1.00, 1.00, 1.00, 0.95, 0.80, 0.65, 0.60, 0.58, 0.56, 0.55, 0.55,
    ),
}
# fmt: on
WEEKEND_FACTOR = {BuildingType.RESIDENTIAL: 1.1, BuildingType.COMMERCIAL: 0.45, BuildingType.INDUSTRIAL: 0.7}


def load_power_w(spec: MeterSpec, site: Site, seed: int, interval_start: int, interval_s: int) -> float:
    """Mean load over the interval, W: the building's hourly shape (interpolated), weekends, noise."""
    local = interval_start + interval_s / 2 + site.utc_offset_h * 3600
    hour, frac = divmod((local / 3600) % 24, 1.0)
    shape = LOAD_SHAPES[spec.building_type]
    level = shape[int(hour)] * (1 - frac) + shape[(int(hour) + 1) % 24] * frac
    weekday = int(local // 86_400 + 3) % 7  # 1970-01-01 was a Thursday: 0 = Monday
    if weekday >= 5:
        level *= WEEKEND_FACTOR[spec.building_type]
    noise = 0.85 + 0.3 * unit(seed, "load", spec.serial, interval_start)
    return spec.peak_load_w * level * noise


@dataclass(frozen=True)
class MeterState:
    """What a meter carries from one interval to the next (persisted in the fleet file)."""

    generation_mwh: int = 0  # cumulative, milli-Wh
    consumption_mwh: int = 0
    import_register_wh: int = 0
    export_register_wh: int = 0
    soc_wh: int = 0


def initial_state(spec: MeterSpec) -> MeterState:
    if spec.battery is None:
        return MeterState()
    return MeterState(soc_wh=(spec.battery.capacity_wh + spec.battery.min_soc_wh) // 2)


@dataclass(frozen=True)
class Interval:
    """One interval's measurements. Energy is integer Wh; telemetry (V, A, PF, Hz, degrees C) is
    informational and only travels in the compatibility shapes."""

    serial: str
    interval_start: int
    duration: int
    generation_wh: int
    consumption_wh: int
    import_wh: int
    export_wh: int
    charge_wh: int
    discharge_wh: int
    import_register_wh: int
    export_register_wh: int
    soc_wh: int
    voltage_v: float
    current_a: float
    power_factor: float
    frequency_hz: float
    temperature_c: float


def _battery_flow(spec: MeterSpec, state: MeterState, surplus_wh: int, local_hour: float, dt: int) -> int:
    """Wh into (+) or out of (-) the battery this interval: hybrids store surplus and cover
    deficits; storage sites charge from the grid before dawn and cover the evening peak."""
    battery = spec.battery
    if battery is None:
        return 0
    room = battery.capacity_wh - state.soc_wh
    available = state.soc_wh - battery.min_soc_wh
    charge_max = min(room, battery.charge_w * dt // 3600)
    discharge_max = min(available, battery.discharge_w * dt // 3600)
    if spec.meter_class is MeterClass.BATTERY_STORAGE:
        if 1 <= local_hour < 5:
            return max(charge_max, 0)
        if 17 <= local_hour < 22 and surplus_wh < 0:
            return -max(min(-surplus_wh, discharge_max), 0)
        return 0
    if surplus_wh > 0:
        return max(min(surplus_wh, charge_max), 0)
    return -max(min(-surplus_wh, discharge_max), 0)


def step(
    spec: MeterSpec, state: MeterState, site: Site, seed: int, interval_start: int, interval_s: int
) -> tuple[Interval, MeterState]:
    """Simulate one aligned interval; return its measurements and the meter's next state."""
    pv_w = pv_power_w(spec, site, seed, interval_start, interval_s)
    load_w = load_power_w(spec, site, seed, interval_start, interval_s)
    generation_mwh = state.generation_mwh + round(pv_w * interval_s / 3.6)
    consumption_mwh = state.consumption_mwh + round(load_w * interval_s / 3.6)
    generation = generation_mwh // 1000 - state.generation_mwh // 1000
    consumption = consumption_mwh // 1000 - state.consumption_mwh // 1000
    local_hour = ((interval_start / 3600) + site.utc_offset_h) % 24
    flow = _battery_flow(spec, state, generation - consumption, local_hour, interval_s)
    charge, discharge = max(flow, 0), max(-flow, 0)
    net = consumption - generation + charge - discharge  # > 0: drawn from the grid
    imported, exported = max(net, 0), max(-net, 0)
    next_state = replace(
        state,
        generation_mwh=generation_mwh,
        consumption_mwh=consumption_mwh,
        import_register_wh=state.import_register_wh + imported,
        export_register_wh=state.export_register_wh + exported,
        soc_wh=state.soc_wh + flow,
    )
    telemetry = _telemetry(spec, site, seed, interval_start, load_w, pv_w, net * 3600 / interval_s)
    interval = Interval(
        serial=spec.serial,
        interval_start=interval_start,
        duration=interval_s,
        generation_wh=generation,
        consumption_wh=consumption,
        import_wh=imported,
        export_wh=exported,
        charge_wh=charge,
        discharge_wh=discharge,
        import_register_wh=next_state.import_register_wh,
        export_register_wh=next_state.export_register_wh,
        soc_wh=next_state.soc_wh,
        **telemetry,
    )
    return interval, next_state


POWER_FACTOR = {BuildingType.RESIDENTIAL: 0.96, BuildingType.COMMERCIAL: 0.92, BuildingType.INDUSTRIAL: 0.88}


def _telemetry(
    spec: MeterSpec, site: Site, seed: int, t: int, load_w: float, pv_w: float, net_w: float
) -> dict[str, float]:
    """Voltage sags with import and rises with export (a weak feeder); current from the larger flow."""
    scale = max(spec.peak_load_w, spec.pv_w, 1)
    voltage = 230.0 * (1 + 0.01 * (unit(seed, "v", spec.building, t) - 0.5) - 0.03 * net_w / scale)
    power_factor = POWER_FACTOR[spec.building_type] + 0.03 * (unit(seed, "pf", spec.serial, t) - 0.5)
    current = max(load_w, pv_w) / (voltage * power_factor)
    return {
        "voltage_v": round(voltage, 1),
        "current_a": round(current, 2),
        "power_factor": round(power_factor, 3),
        "frequency_hz": round(50.0 + 0.1 * (unit(seed, "hz", t) - 0.5), 3),
        "temperature_c": round(ambient_temp_c(site, t), 1),
    }
