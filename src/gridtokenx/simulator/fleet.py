"""The simulated fleet: which meters exist, what each one has (PV, battery, load) and where it sits.

Pure and seedable: `build_fleet(n, seed)` returns the same meters for the same arguments. The
default 25 meters mirror the original campus (40 % solar prosumers, 35 % grid consumers, 20 %
hybrid prosumers with batteries, 5 % battery-storage sites), spread over buildings and floors.
"""

from __future__ import annotations

import hashlib
import random
import struct
from dataclasses import dataclass
from enum import StrEnum

DEFAULT_METERS = 25
METERS_PER_FLOOR = 4
FLOORS_PER_BUILDING = 3


class MeterClass(StrEnum):
    SOLAR_PROSUMER = "solar_prosumer"  # rooftop PV, no storage
    GRID_CONSUMER = "grid_consumer"  # load only
    HYBRID_PROSUMER = "hybrid_prosumer"  # PV plus a battery that stores the surplus
    BATTERY_STORAGE = "battery_storage"  # a battery shifting grid energy to the evening peak


class BuildingType(StrEnum):
    RESIDENTIAL = "residential"  # dormitories, staff housing
    COMMERCIAL = "commercial"  # offices, classrooms, the canteen
    INDUSTRIAL = "industrial"  # labs and workshops


CLASS_SHARES = (
    (MeterClass.SOLAR_PROSUMER, 40),
    (MeterClass.GRID_CONSUMER, 35),
    (MeterClass.HYBRID_PROSUMER, 20),
    (MeterClass.BATTERY_STORAGE, 5),
)
BUILDING_CYCLE = (
    BuildingType.RESIDENTIAL,
    BuildingType.COMMERCIAL,
    BuildingType.RESIDENTIAL,
    BuildingType.INDUSTRIAL,
    BuildingType.COMMERCIAL,
)
# Per building type, in W: (peak load range, PV range, battery capacity range in Wh), from the
# original generator's residential / commercial / industrial tiers (scaled down one notch for a campus).
SIZES: dict[BuildingType, tuple[tuple[int, int], tuple[int, int], tuple[int, int]]] = {
    BuildingType.RESIDENTIAL: ((1_500, 4_000), (3_000, 10_000), (5_000, 15_000)),
    BuildingType.COMMERCIAL: ((8_000, 30_000), (20_000, 50_000), (30_000, 100_000)),
    BuildingType.INDUSTRIAL: ((30_000, 90_000), (50_000, 150_000), (100_000, 300_000)),
}
TILTS_DEG = (10, 15, 20)  # a few orientations, so irradiance is computed once per orientation
AZIMUTHS_DEG = (180, 135, 225)


@dataclass(frozen=True)
class Battery:
    """A battery's fixed parameters, integer Wh and W."""

    capacity_wh: int
    charge_w: int
    discharge_w: int
    min_soc_wh: int


@dataclass(frozen=True)
class MeterSpec:
    """One simulated meter and the installation behind it."""

    serial: str
    meter_class: MeterClass
    building: str
    building_type: BuildingType
    floor: int
    peak_load_w: int
    pv_w: int = 0  # nameplate (inverter limit); 0 = no PV
    tilt_deg: int = 15
    azimuth_deg: int = 180
    battery: Battery | None = None

    @property
    def capacity_w(self) -> int:
        """What the gateway is told the meter can generate (at least 1 kW: the registry needs > 0)."""
        return max(self.pv_w, 1_000)


def class_counts(n: int) -> list[tuple[MeterClass, int]]:
    """`n` meters split over the classes by `CLASS_SHARES` (largest remainder, so they add up)."""
    exact = [(cls, n * share / 100) for cls, share in CLASS_SHARES]
    counts = {cls: int(value) for cls, value in exact}
    rest = n - sum(counts.values())
    for cls, _ in sorted(exact, key=lambda item: item[1] - int(item[1]), reverse=True)[:rest]:
        counts[cls] += 1
    return [(cls, counts[cls]) for cls, _ in CLASS_SHARES]


def _rng(seed: int, label: str) -> random.Random:
    digest = hashlib.blake2b(f"{seed}:{label}".encode(), digest_size=8).digest()
    return random.Random(struct.unpack("<Q", digest)[0])


def build_fleet(n: int = DEFAULT_METERS, seed: int = 42, prefix: str = "SIM") -> list[MeterSpec]:
    """`n` meters over buildings of `FLOORS_PER_BUILDING` floors; the same arguments, the same fleet."""
    if n < 1:
        raise ValueError("a fleet has at least one meter")
    rng = _rng(seed, "fleet")
    classes = [cls for cls, count in class_counts(n) for _ in range(count)]
    rng.shuffle(classes)
    meters = []
    per_building = METERS_PER_FLOOR * FLOORS_PER_BUILDING
    for index, meter_class in enumerate(classes):
        building_no, slot = divmod(index, per_building)
        floor = slot // METERS_PER_FLOOR + 1
        building_type = BUILDING_CYCLE[building_no % len(BUILDING_CYCLE)]
        load_range, pv_range, battery_range = SIZES[building_type]
        peak_load = rng.randrange(*load_range, 100)
        has_pv = meter_class in (MeterClass.SOLAR_PROSUMER, MeterClass.HYBRID_PROSUMER)
        has_battery = meter_class in (MeterClass.HYBRID_PROSUMER, MeterClass.BATTERY_STORAGE)
        battery = None
        if has_battery:
            capacity = rng.randrange(*battery_range, 1_000)
            battery = Battery(capacity, capacity // 2, capacity // 2, capacity // 10)
        meters.append(
            MeterSpec(
                serial=f"{prefix}-B{building_no + 1:02d}-F{floor}-{index + 1:04d}",
                meter_class=meter_class,
                building=f"B{building_no + 1:02d}",
                building_type=building_type,
                floor=floor,
                peak_load_w=peak_load,
                pv_w=rng.randrange(*pv_range, 500) if has_pv else 0,
                tilt_deg=rng.choice(TILTS_DEG),
                azimuth_deg=rng.choice(AZIMUTHS_DEG),
                battery=battery,
            )
        )
    return meters
