"""The per-meter ingest state row: written in the positional layout, still read in the named layout
that rows written before it kept."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from gridtokenx.readings.batch_facts import StateFacts
from gridtokenx.readings.ingest_state import MeterState
from gridtokenx.readings.reading import Reading, Source, Trust

START = 1_767_225_600
LAST = {  # in the order of the positional layout
    "interval_start": START,
    "duration": 900,
    "import_wh": 0,
    "export_wh": 500,
    "generation_wh": 800,
    "consumption_wh": None,
    "import_register_wh": 1_000,
    "export_register_wh": 2_000,
}
NAMED = {"values": {"export_wh": [400, 500], "generation_wh": [700, 800]}, "last": LAST, "first_start": 1_000}


def _state(recent: dict[str, object]) -> MeterState:
    facts = StateFacts(uuid.uuid4(), None, None, None, None, None, recent)
    return MeterState.load(facts, 1024)


def _facts(state: MeterState) -> tuple[object, ...]:
    return (state.recent, state.loaded_last, state.first_start, state.latest())


def test_the_named_layout_of_older_rows_reads_as_the_positional_one() -> None:
    named = _state(NAMED)
    written = named.row_values(datetime.now(UTC))["recent"]
    assert set(written) == {"v", "l", "f"}  # what is written now
    assert _facts(_state(written)) == _facts(named) == (NAMED["values"], list(LAST.values()), 1_000, START)


def test_a_remembered_reading_survives_the_round_trip() -> None:
    state = _state({})
    assert _facts(state) == ({}, None, None, None)
    reading = Reading(
        meter_serial="M-1",
        interval_start=START + 900,
        duration=900,
        observed_at=START + 1800,
        import_wh=3,
        export_wh=0,
        generation_wh=None,
        consumption_wh=7,
        source=Source.NATIVE,
        trust=Trust.DEVICE_SIGNED,
        import_register_wh=10,
    )
    state.remember(reading)
    again = _state(state.row_values(datetime.now(UTC))["recent"])
    assert again.recent == {"import_wh": [3], "export_wh": [0], "consumption_wh": [7]}
    assert again.loaded_last == [START + 900, 900, 3, 0, None, 7, 10, None]
    assert again.latest() == START + 900 and again.first_start == START + 900
