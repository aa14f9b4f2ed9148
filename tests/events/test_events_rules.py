"""The event model and the visibility rules, without services."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from gridtokenx.events.bus import Replay
from gridtokenx.events.model import KINDS, Event
from gridtokenx.events.rules import ChannelError, Copy, Viewer, check_channel, public_copy, visible

ALICE, BOB = str(uuid.uuid4()), str(uuid.uuid4())
METER = str(uuid.uuid4())


def test_every_event_of_the_issue_has_a_type() -> None:
    wanted = {
        "MeterReadingReceived",
        "MeterReadingRejected",
        "TokensMinted",
        "MintFailed",
        "OrderPlaced",
        "OrderCancelled",
        "OrderBookChanged",
        "EpochTransition",
        "TradeExecuted",
        "SettlementConfirmed",
        "CertificateIssued",
        "CertificateTransferred",
        "CertificateRetired",
    }
    assert wanted <= set(KINDS)
    assert all(kind.version >= 1 for kind in KINDS.values())


def test_make_normalises_uuids_and_the_pipelines_owner_name() -> None:
    owner = uuid.uuid4()
    event = Event.make("MeterReadingReceived", {"meter_id": uuid.UUID(METER), "owner_id": owner, "x": 1})
    assert event.data["meter_id"] == METER and event.data["user_id"] == str(owner)
    assert event.data["x"] == 1 and event.v == 1 and event.id == 0
    assert event.routing.valid and event.routing.users == {str(owner)}
    assert event.routing.meter_id == METER


def test_make_turns_decimals_and_moments_into_json_strings() -> None:
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    event = Event.make("TokensMinted", {"user_id": ALICE, "kwh": Decimal("1.500"), "at": moment})
    assert event.data["kwh"] == "1.500" and event.data["at"] == "2026-01-01T00:00:00+00:00"


def test_owner_event_goes_to_its_owner_and_admins_only() -> None:
    event = Event.make("TokensMinted", {"user_id": ALICE, "amount": 5})
    assert visible(Viewer(ALICE), {"user"}, event) is Copy.FULL
    assert visible(Viewer(BOB), {"user", "market"}, event) is None
    assert visible(Viewer(BOB, is_admin=True), {"user"}, event) is Copy.FULL
    assert visible(Viewer(ALICE), {"market"}, event) is None  # not subscribed to `user`


def test_meter_event_on_the_meter_channel() -> None:
    event = Event.make("MeterReadingReceived", {"meter_id": METER, "user_id": ALICE})
    assert visible(Viewer(BOB, is_admin=True), {f"meters:{METER}"}, event) is Copy.FULL
    assert visible(Viewer(ALICE), {f"meters:{uuid.uuid4()}"}, event) is None


def test_public_trade_hides_its_parties_except_from_them() -> None:
    fill = {"user_id": BOB, "order_id": "o-1", "epoch_id": 4, "side": "sell", "energy_wh": 3000, "amount": 7}
    event = Event.make("TradeExecuted", fill)
    stranger = Viewer(str(uuid.uuid4()))
    assert visible(stranger, {"market"}, event) is Copy.PUBLIC
    assert visible(stranger, {"epochs"}, event) is None
    assert visible(Viewer(BOB), {"user"}, event) is Copy.FULL
    assert visible(Viewer(ALICE), {"user"}, event) is None
    body = public_copy(event)
    assert body["data"] == {"epoch_id": 4, "side": "sell", "energy_wh": 3000, "amount": 7}
    assert event.data["user_id"] == BOB  # the event itself is untouched


def test_epoch_and_book_events_are_public() -> None:
    epoch = Event.make("EpochTransition", {"epoch_id": 4, "status": "cleared"})
    book = Event.make("OrderBookChanged", {"epoch_id": 4})
    viewer = Viewer(ALICE)
    assert visible(viewer, {"epochs"}, epoch) is Copy.PUBLIC
    assert visible(viewer, {"orderbook"}, book) is Copy.PUBLIC
    assert visible(viewer, {"orderbook"}, epoch) is None


def test_data_missing_its_owner_goes_to_admins_only() -> None:
    event = Event.make("TokensMinted", {"amount": 5})  # no user_id
    assert not event.routing.valid
    assert visible(Viewer(ALICE), {"user", "market"}, event) is None
    assert visible(Viewer(ALICE, is_admin=True), {"user"}, event) is Copy.FULL
    unknown = Event.make("SomethingNew", {"user_id": ALICE})
    assert not unknown.routing.valid and visible(Viewer(ALICE), {"user"}, unknown) is None


def test_channel_names() -> None:
    for good in ("market", "orderbook", "epochs", "user", f"meters:{METER}"):
        check_channel(good)
    for bad in ("meters:", "admin", "meters:a b", "x" * 10):
        with pytest.raises(ChannelError):
            check_channel(bad)


def test_replay_buffer_says_too_old_once_events_left_it() -> None:
    replay = Replay(3)
    for i in range(1, 6):
        replay.add(Event("OrderBookChanged", {}, id=i))
    assert [e.id for e in replay.since(3) or []] == [4, 5]
    assert [e.id for e in replay.since(2) or []] == [3, 4, 5]
    assert replay.since(1) is None  # event 2 is gone
    assert replay.since(5) == [] and replay.since(99) == []
    replay.add(Event("OrderBookChanged", {}))  # unnumbered (local fallback): not replayable
    assert [e.id for e in replay.since(2) or []] == [3, 4, 5]


def test_wire_round_trip() -> None:
    event = Event.make("OrderPlaced", {"user_id": ALICE, "order_id": 9}).numbered(12)
    assert Event.from_wire(event.wire()) == event
