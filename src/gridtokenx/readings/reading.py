"""The one internal shape every accepted wire format is turned into.

All energy is integer Wh; all times are integer seconds since the Unix epoch (UTC). A reading
covers the interval `[interval_start, interval_start + duration)` of one meter; its natural key
is `(meter_serial, channel, interval_start)`, where `channel` is the meter's measurement channel
(0 = the main meter). Each reading carries the energy quantities named in `QUANTITIES`.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

import msgspec

# Energy quantities: interval energy (Wh in the interval) and cumulative registers (Wh at
# interval end). Not to be confused with `channel`, the meter's measurement channel.
IMPORT = "import_wh"
EXPORT = "export_wh"
GENERATION = "generation_wh"
CONSUMPTION = "consumption_wh"
QUANTITIES = (IMPORT, EXPORT, GENERATION, CONSUMPTION)
IMPORT_REGISTER = "import_register_wh"
EXPORT_REGISTER = "export_register_wh"
REGISTER_OF = {IMPORT: IMPORT_REGISTER, EXPORT: EXPORT_REGISTER}
VALUE_FIELDS = (*QUANTITIES, IMPORT_REGISTER, EXPORT_REGISTER)


class Flag(StrEnum):
    """Codes stored on an accepted reading. Set by the parsers (`TIMESTAMP_ASSIGNED`), by gap
    estimation (`ESTIMATED`) or by the VEE rules in `gridtokenx.readings.vee` (the rest)."""

    TIMESTAMP_ASSIGNED = "TIMESTAMP_ASSIGNED"  # no timestamp was sent; the gateway's receive time was used
    ESTIMATED = "ESTIMATED"  # interpolated to fill a gap
    LATE = "LATE"  # older than the minting age limit: stored, never minted
    REVISED = "REVISED"  # replaces a different stored value for the same interval
    SPIKE = "SPIKE"  # above spike_factor x the 7-day same-slot median
    FROZEN_VALUE = "FROZEN_VALUE"  # the same value (≥ frozen_min_wh) frozen_repeats times in a row
    PV_AT_NIGHT = "PV_AT_NIGHT"  # generation/export while the sun is below the horizon
    EXPORT_EXCEEDS_GENERATION = "EXPORT_EXCEEDS_GENERATION"  # export > generation + 1 %
    REGISTER_ROLLOVER = "REGISTER_ROLLOVER"  # a register wrapped past its modulus
    REGISTER_BASELINE_RESET = "REGISTER_BASELINE_RESET"  # first register after a meter replacement
    CLOCK_QUESTIONABLE = "CLOCK_QUESTIONABLE"  # device reported an invalid or adjusted clock
    POWER_OUTAGE = "POWER_OUTAGE"  # device reported an outage during the interval
    TAMPER_REPORTED = "TAMPER_REPORTED"  # device reported tampering


class Trust(StrEnum):
    """How far the platform trusts a reading's numbers (see DESIGN.md, "Trust levels")."""

    DEVICE_SIGNED = "device-signed"  # a provisioned key of the meter signed it
    GATEWAY_ATTESTED = "gateway-attested"  # posted by an authenticated client, no verified device signature
    ESTIMATED = "estimated"  # made by VEE to fill a gap


class Source(StrEnum):
    """Which wire shape a reading arrived in (kept for audit and for re-deriving signed bytes)."""

    NATIVE = "native"  # gridtokenx.readings.native
    SUBMIT_READING = "submit-reading"  # POST /api/meters/submit-reading
    ENERGY_READING = "energy-reading"  # POST /api/v1/meters/readings
    SIMULATOR = "simulator"  # POST /api/v1/meters/{serial}/readings and the batch routes
    ESTIMATE = "estimate"  # gridtokenx.readings.intervals.estimate_gap


class Reading(msgspec.Struct, frozen=True):
    """One meter interval, normalised; immutable (change a copy with `msgspec.structs.replace`).

    A msgspec Struct rather than a frozen dataclass: every reading is built at least twice on the
    ingest path, and a Struct is several times cheaper to build
    (docs/decisions/2026-11-23-reading-as-msgspec-struct.md).

    `generation_wh`/`consumption_wh` are None when the sender did not report them (a None quantity
    is skipped by the rules that need it, never read as 0). `signature` is the raw 64-byte
    Ed25519 signature if one came with the reading, and `signed_messages` the exact byte strings
    it may cover (several for the legacy shapes, whose signers formatted fields differently).
    `flags` are set by the parser (e.g. `TIMESTAMP_ASSIGNED`) and joined with the VEE flags.
    """

    meter_serial: str
    interval_start: int
    duration: int
    observed_at: int  # when the values were read: interval end (native) or the posted timestamp (legacy)
    import_wh: int
    export_wh: int
    generation_wh: int | None
    consumption_wh: int | None
    source: Source
    trust: Trust
    import_register_wh: int | None = None
    export_register_wh: int | None = None
    channel: int = 0  # the meter's measurement channel (0 = main meter), part of the storage key
    seq: int | None = None
    key_id: str | None = None
    quality: int = 0
    firmware: str | None = None
    created: int | None = None
    expires: int | None = None
    signature: bytes | None = None
    signature_text: str | None = None
    signed_messages: tuple[bytes, ...] = ()
    extras: Mapping[str, Any] = msgspec.field(default_factory=dict)
    flags: frozenset[str] = frozenset()

    @property
    def interval_end(self) -> int:
        return self.interval_start + self.duration

    def quantity_values(self) -> dict[str, int]:
        """The reported interval energy quantities, keyed by name (unreported ones left out)."""
        values = {IMPORT: self.import_wh, EXPORT: self.export_wh}
        if self.generation_wh is not None:
            values[GENERATION] = self.generation_wh
        if self.consumption_wh is not None:
            values[CONSUMPTION] = self.consumption_wh
        return values

    def stored_values(self) -> dict[str, int | None]:
        """Every energy and register field (None when unreported), in the order of `VALUE_FIELDS`."""
        return {
            IMPORT: self.import_wh,
            EXPORT: self.export_wh,
            GENERATION: self.generation_wh,
            CONSUMPTION: self.consumption_wh,
            IMPORT_REGISTER: self.import_register_wh,
            EXPORT_REGISTER: self.export_register_wh,
        }

    def register_values(self) -> dict[str, int]:
        """Reported cumulative registers, keyed by the interval quantity they count (import/export)."""
        values = {}
        if self.import_register_wh is not None:
            values[IMPORT] = self.import_register_wh
        if self.export_register_wh is not None:
            values[EXPORT] = self.export_register_wh
        return values
