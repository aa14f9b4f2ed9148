"""Generated wire bodies on every ingest route, valid, mutated and hostile, against a real server
on both backends: no answer is a 5xx, every refusal is the error envelope, and a refused item
changes nothing stored (bounded examples, fixed seed: a fast, repeatable run)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from gridtokenx.accounts.service import create_admin
from gridtokenx.core.db import Database
from gridtokenx.core.migrate import upgrade
from gridtokenx.core.types import utcnow
from gridtokenx.readings.native import encode_reading
from gridtokenx.readings.signing import DeviceSigner
from tests.conftest import PG_HOST, PG_PORT, PG_USER, _admin, make_settings
from tests.live import live_server

SERIAL = "FUZZ-001"
INTERVAL = 900
EXAMPLES = settings(
    max_examples=15,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)


@dataclass
class Api:
    base: str
    owner: dict[str, str]
    key: DeviceSigner
    network_id: str
    meter_id: str
    seq: int = 0
    stored: dict[tuple[str, str], tuple[int, str]] | None = None  # the last snapshot taken

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq


def _seed(base: str, url: str) -> Api:
    async def admin() -> None:
        db = Database(url)
        await upgrade(db)
        async with db.session() as session:
            await create_admin(session, "fuzz-admin@example.com", "admin-pass-123")
        await db.dispose()

    asyncio.run(admin())
    with httpx.Client(base_url=base, timeout=30) as http:
        login = http.post(
            "/api/auth/login", json={"email": "fuzz-admin@example.com", "password": "admin-pass-123"}
        )
        admin_headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        meter = http.post(
            "/api/admin/meters",
            json={
                "serial": SERIAL,
                "meter_key": "fuzz-meter-key",
                "capacity_kw": "10",
                "commissioned_at": "2020-01-01T00:00:00Z",
                "attested_mintable": True,
            },
            headers=admin_headers,
        )
        assert meter.status_code == 201, meter.text
        owner = http.post(
            "/api/auth/register", json={"email": "fuzz-owner@example.com", "password": "fuzz-pass-123"}
        )
        assert owner.status_code == 201, owner.text
        user_id = owner.json()["user"]["id"]
        verified = http.patch(
            f"/api/admin/users/{user_id}", json={"email_verified": True}, headers=admin_headers
        )
        assert verified.status_code == 200, verified.text
        token = http.post(
            "/api/auth/login", json={"email": "fuzz-owner@example.com", "password": "fuzz-pass-123"}
        )
        owner_headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        claimed = http.post(
            "/api/meters/verify",
            json={"serial": SERIAL, "meter_key": "fuzz-meter-key"},
            headers=owner_headers,
        )
        assert claimed.status_code == 200, claimed.text
        key = DeviceSigner.generate()
        registered = http.post(
            "/api/admin/devices/register",
            json={"serial": SERIAL, "public_key": key.public_key_hex},
            headers=admin_headers,
        )
        assert registered.status_code == 201, registered.text
        settings_ = http.get("/health").json()
        assert settings_["status"] == "ok"
    return Api(base, owner_headers, key, "", meter.json()["id"])


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    tmp = tmp_path_factory.mktemp("ingest-fuzz")
    name = f"gtx_fuzz_{uuid.uuid4().hex[:10]}"
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'fuzz.db'}"
    else:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
        url = f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    # no duties: a queued async job would store its readings later, racing the next snapshot
    config = make_settings(tmp, url, log_level="error", run_duties=False)
    try:
        with live_server(config) as base:
            api = _seed(base, url)
            api.network_id = config.network_id
            yield api
    finally:
        if request.param == "postgres":
            asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# --- bodies -----------------------------------------------------------------------------------

HOSTILE_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(min_value=2**53, max_value=2**80).map(lambda n: orjson.Fragment(str(n).encode())),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(
        [
            "1e999999999",
            "-1e-999999999",
            "NaN",
            "0x10",
            "9999-12-31T23:59:59-10:00",
            "0001-01-01T00:00:00+10:00",
            "2026-01-01T00:00:00",
            "",
        ]
    ),
    st.sampled_from(
        [
            orjson.Fragment(b"1e999999999"),
            orjson.Fragment(b"-0.0e-99999"),
            orjson.Fragment(b"[" * 64 + b"]" * 64),
        ]
    ),
    st.lists(st.integers(-10, 10), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(-10, 10), max_size=3),
)
HOSTILE_BODIES = st.one_of(
    st.binary(max_size=64),
    st.sampled_from(
        [b"", b"null", b"[]", b"{}", b"[" * 50_000 + b"]" * 50_000, b'{"a":' * 3000 + b"1" + b"}" * 3000]
    ),
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8),
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
        ),
        max_leaves=12,
    ).map(orjson.dumps),
)


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _aligned(back: int) -> int:
    now = int(utcnow().timestamp())
    return now - now % INTERVAL - INTERVAL * (1 + back)


@st.composite
def mutated(draw: st.DrawFn, body: dict[str, Any]) -> dict[str, Any]:
    """`body` with a few fields replaced by hostile values, removed, or unknown ones added."""
    body = dict(body)
    for _ in range(draw(st.integers(0, 3))):
        action = draw(st.sampled_from(["set", "drop", "add", "many"]))
        if action == "set" and body:
            body[draw(st.sampled_from(sorted(body)))] = draw(HOSTILE_VALUES)
        elif action == "drop" and body:
            body.pop(draw(st.sampled_from(sorted(body))))
        elif action == "add":
            body[draw(st.text(min_size=1, max_size=10))] = draw(HOSTILE_VALUES)
        else:
            body.update({f"extra{i}": i for i in range(draw(st.sampled_from([10, 70])))})
    return body


def _compat_item(kind: str, back: int, second: int, kwh: str) -> dict[str, Any]:
    moment = _iso(_aligned(back) + second)
    if kind == "submit":
        return {
            "meter_serial": SERIAL,
            "wallet_address": "w" * 32,
            "kwh_amount": kwh,
            "reading_timestamp": moment,
        }
    if kind == "energy":
        return {
            "meter_id": SERIAL,
            "timestamp": moment,
            "energy_generated": kwh,
            "energy_consumed": "0",
            "engineering_authority_signature": "authority",
        }
    return {"meter_serial": SERIAL, "kwh": kwh, "timestamp": moment}


KWH = st.sampled_from(["0", "0.001", "0.05", "0.2", "-0.1", "1.5"])
BACK = st.integers(0, 40)
SECOND = st.integers(0, INTERVAL - 1)


@st.composite
def native_body(draw: st.DrawFn, api: Api) -> bytes:
    now = int(utcnow().timestamp())
    fields: dict[str, Any] = {
        "device_id": SERIAL,
        "interval_start": _aligned(draw(BACK)),
        "duration": INTERVAL,
        "import_wh": draw(st.integers(0, 300)),
        "export_wh": draw(st.integers(0, 900)),
        "generation_wh": 1000,
        "consumption_wh": draw(st.integers(0, 300)),
        "quality": 0,
        "firmware": "1.0.0",
        "seq": api.next_seq(),
        "created": now,
        "expires": now + 240,
    }
    kind = draw(st.sampled_from(["valid", "mutated-signed", "mutated", "hostile"]))
    if kind == "hostile":
        return draw(HOSTILE_BODIES)
    if kind == "mutated":
        signed = orjson.loads(encode_reading(api.key.sign_reading(fields, api.network_id)))
        return orjson.dumps(draw(mutated(signed)))
    if kind == "mutated-signed":
        fields = draw(mutated(fields))
    try:
        return encode_reading(api.key.sign_reading(fields, api.network_id))
    except Exception:  # a mutation the signer itself refuses: send it unsigned
        return orjson.dumps(fields)


@st.composite
def compat_body(draw: st.DrawFn, kind: str) -> bytes:
    item = _compat_item(kind, draw(BACK), draw(SECOND), draw(KWH))
    shape = draw(st.sampled_from(["valid", "mutated", "hostile"]))
    if shape == "hostile":
        return draw(HOSTILE_BODIES)
    return orjson.dumps(draw(mutated(item)) if shape == "mutated" else item)


@st.composite
def compat_batch(draw: st.DrawFn, kind: str) -> bytes:
    items = [
        draw(
            st.one_of(
                st.just(_compat_item(kind, draw(BACK), draw(SECOND), draw(KWH))),
                mutated(_compat_item(kind, 1, 1, "0.1")),
                HOSTILE_VALUES,
            )
        )
        for _ in range(draw(st.integers(0, 5)))
    ]
    if draw(st.integers(0, 9)) == 0:
        return draw(HOSTILE_BODIES)
    return orjson.dumps({"readings": items})


# --- the property -----------------------------------------------------------------------------


def _snapshot(http: httpx.Client, api: Api) -> dict[tuple[str, str], tuple[int, str]]:
    """Every measured interval stored for the meter: (start, trust) -> (version, values)."""
    found = {}
    for trust in ("device-signed", "gateway-attested"):
        page = http.get(
            f"/api/meters/{api.meter_id}/readings", params={"trust": trust, "limit": 1000}, headers=api.owner
        )
        assert page.status_code == 200, page.text
        for item in page.json()["items"]:
            values = (
                f"{item['import_wh']}/{item['export_wh']}/{item['generation_wh']}/{item['consumption_wh']}"
            )
            found[(item["interval_start"], trust)] = (item["version"], values)
    return found


def _check(
    http: httpx.Client, api: Api, route: str, body: bytes, headers: dict[str, str] | None = None
) -> None:
    before = api.stored if api.stored is not None else _snapshot(http, api)
    response = http.post(
        route, content=body, headers={**api.owner, "content-type": "application/json", **(headers or {})}
    )
    assert response.status_code < 500, (route, body[:200], response.text)
    assert response.headers["content-type"].startswith("application/json")
    data = response.json()
    if response.status_code >= 400:
        assert set(data) == {"error"} and set(data["error"]) == {"code", "message", "details"}, data
        changed = 0
    elif response.status_code == 202:
        api.stored = None  # queued: stored later by the job, judged there
        return
    elif "results" in data:
        changed = sum(r["status"] == "accepted" for r in data["results"])
        assert all(r.get("code") for r in data["results"] if r["status"] == "rejected"), data
    else:
        changed = 0 if data.get("duplicate") or data.get("status") == "duplicate" else 1
    after = api.stored = _snapshot(http, api)
    moved = {key for key in after if before.get(key) != after[key]}
    assert len(moved) <= changed, (route, body[:200], data, moved)


def test_native_routes(api: Api) -> None:
    with httpx.Client(base_url=api.base, timeout=30) as http:

        @EXAMPLES
        @seed(14)
        @given(body=native_body(api), batch=st.booleans(), later=st.booleans())
        def run(body: bytes, batch: bool, later: bool) -> None:
            if not batch:
                _check(http, api, "/api/meters/readings", body)
                return
            wrapped = b"[" + body + b"]" if body.startswith(b"{") else body
            _check(
                http,
                api,
                "/api/meters/readings/batch",
                wrapped,
                {"Prefer": "respond-async"} if later else None,
            )

        run()


@pytest.mark.parametrize(
    ("route", "kind"),
    [
        ("/api/meters/submit-reading", "submit"),
        ("/api/v1/meters/readings", "energy"),
        (f"/api/v1/meters/{SERIAL}/readings", "simulator"),
    ],
)
def test_compat_single_routes(api: Api, route: str, kind: str) -> None:
    with httpx.Client(base_url=api.base, timeout=30) as http:

        @EXAMPLES
        @seed(14)
        @given(body=compat_body(kind))
        def run(body: bytes) -> None:
            _check(http, api, route, body)

        run()


@pytest.mark.parametrize(
    ("route", "kind"),
    [
        ("/api/meters/submit-batch", "submit"),
        ("/api/v1/meters/batch/readings", "simulator"),
        ("/api/v1/public/meters/batch/readings", "simulator"),
    ],
)
def test_compat_batch_routes(api: Api, route: str, kind: str) -> None:
    with httpx.Client(base_url=api.base, timeout=30) as http:

        @EXAMPLES
        @seed(14)
        @given(body=compat_batch(kind))
        def run(body: bytes) -> None:
            _check(http, api, route, body)

        run()
