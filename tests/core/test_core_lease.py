"""Duty leases on both backends: one holder at a time, takeover after expiry, fencing tokens."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx

from gridtokenx.core.context import AppContext
from gridtokenx.core.db import Database
from gridtokenx.core.lease import LeasedDuty, holders, release, try_acquire
from tests.helpers import admin_token, bearer, user_token

TTL = timedelta(seconds=30)


async def test_one_holder_renews_and_another_waits(database: Database) -> None:
    assert await try_acquire(database, "mint", "a", TTL) == 1
    assert await try_acquire(database, "mint", "b", TTL) is None
    assert await try_acquire(database, "mint", "a", TTL) == 1  # a renewal keeps the token
    [state] = await holders(database)
    assert (state.name, state.holder, state.token) == ("mint", "a", 1)


async def test_expired_lease_moves_on_with_a_new_token(database: Database) -> None:
    assert await try_acquire(database, "epochs", "a", timedelta(seconds=-1)) == 1
    assert await try_acquire(database, "epochs", "b", TTL) == 2
    assert await try_acquire(database, "epochs", "a", TTL) is None


async def test_release_hands_over_at_once(database: Database) -> None:
    assert await try_acquire(database, "jobs", "a", TTL) == 1
    await release(database, "jobs", "a")
    assert await try_acquire(database, "jobs", "b", TTL) == 2


async def test_racing_first_claims_give_one_holder(database: Database) -> None:
    tokens = await asyncio.gather(*(try_acquire(database, "race", f"p{i}", TTL) for i in range(8)))
    assert sum(token is not None for token in tokens) == 1


async def test_leased_duty_runs_only_while_held(database: Database) -> None:
    rounds: list[tuple[str, int]] = []

    def work_of(name: str):  # type: ignore[no-untyped-def]
        async def work(token: int) -> float:
            rounds.append((name, token))
            return 0.01

        return work

    first = LeasedDuty(database, "duty", work_of("first"), ttl=timedelta(seconds=3), holder="first")
    second = LeasedDuty(database, "duty", work_of("second"), ttl=timedelta(seconds=3), holder="second")
    await first.start()
    await asyncio.sleep(0.2)
    await second.start()
    await asyncio.sleep(0.3)
    assert rounds and {name for name, _ in rounds} == {"first"}
    await first.stop()  # releases: the second takes over on its next try
    second.wake()
    for _ in range(300):  # generous: the machine may be loaded
        if rounds[-1][0] == "second":
            break
        await asyncio.sleep(0.1)
    await second.stop()
    assert rounds[-1] == ("second", 2)


async def test_admins_see_the_lease_holders(client: httpx.AsyncClient, ctx: AppContext) -> None:
    await try_acquire(ctx.db, "reporting", "gateway-1:42", TTL)
    admin = await admin_token(client, ctx)
    listed = await client.get("/api/admin/leases", headers=bearer(admin))
    assert listed.status_code == 200
    assert ("reporting", "gateway-1:42", 1) in [(r["name"], r["holder"], r["token"]) for r in listed.json()]
    someone = await user_token(client, ctx, "someone@example.com")
    assert (await client.get("/api/admin/leases", headers=bearer(someone))).status_code == 403
