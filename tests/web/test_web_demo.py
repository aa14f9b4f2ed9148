"""The dashboard in a real browser against a running `gridtokenx demo` (a subprocess in a scratch
directory): live readings over the WebSocket, an order through an epoch, a certificate issued
and verified on the public page, no console error, and a screenshot of every page."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.live import free_port
from tests.web.browser import ConsoleErrors, chromium, screenshot

pytestmark = pytest.mark.browser
PROSUMER = "prosumer1@gridtokenx.io"
CONSUMER = "consumer1@gridtokenx.io"


@dataclass
class RunningDemo:
    base: str
    password: str


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDemo]:
    workdir = tmp_path_factory.mktemp("demo")
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("GRIDTOKENX_", "DATABASE_URL"))},
        "COLUMNS": "160",
    }
    log = (workdir / "demo.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "gridtokenx.cli", "demo", "--port", str(port)],
        env=env,
        cwd=workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        password = _wait_for_users(process, base, workdir / "var" / "demo.json")
        yield RunningDemo(base, password)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
    assert process.returncode in (0, -signal.SIGINT, 130), (workdir / "demo.log").read_text()[-3000:]


def _wait_for_users(process: subprocess.Popen[bytes], base: str, state: Path) -> str:
    """The demo is up once its consumers can sign in with faucet money in their wallets."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, "the demo exited early"
        if state.exists():
            password = str(json.loads(state.read_text())["password"])
            try:
                login = httpx.post(f"{base}/api/auth/login", json={"email": CONSUMER, "password": password})
                if login.status_code == 200:
                    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
                    wallet = httpx.get(f"{base}/api/wallets/me", headers=headers).json()
                    if any(b["token"] == "payment" and int(b["amount"]) for b in wallet["balances"]):
                        return password
            except httpx.HTTPError:
                pass
        time.sleep(1)
    raise AssertionError("the demo did not come up within 120 s")


def sign_in(browser: Browser, base: str, email: str, password: str) -> tuple[Page, ConsoleErrors]:
    context = browser.new_context(viewport={"width": 1280, "height": 860}, timezone_id="UTC")
    page = context.new_page()
    errors = ConsoleErrors(page)
    page.goto(f"{base}/#/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Overview")
    return page, errors


def test_live_demo_in_the_browser(demo: RunningDemo) -> None:
    with chromium() as browser:
        page, errors = sign_in(browser, demo.base, PROSUMER, demo.password)
        # a reading arrives over the WebSocket: the feed starts empty on every page load
        feed = page.locator("[data-test=feed] > div:not(.empty)")
        expect(feed.filter(has_text="reading from")).not_to_have_count(0, timeout=60_000)
        expect(page.locator("[data-test=wallet-address]")).not_to_be_empty()

        buyer, buyer_errors = sign_in(browser, demo.base, CONSUMER, demo.password)
        buyer.goto(f"{demo.base}/#/trading")
        expect(buyer.locator("h1")).to_have_text("Trading")
        buyer.select_option("select[name=order_type]", "buy")
        buyer.fill("input[name=energy_amount]", "1")
        buyer.fill("input[name=price_per_kwh]", "4.75")
        buyer.click("[data-test=order-form] button[type=submit]")
        expect(buyer.locator(".notice")).to_contain_text("Order placed")
        mine = buyer.locator("[data-test=my-orders] tbody tr", has_text="4.75")
        expect(mine).to_have_count(1)  # in "my orders"
        expect(buyer.locator("[data-test=epoch-status]")).not_to_have_text("no open epoch")
        screenshot(buyer, "demo-trading")
        # the epoch clears: the order leaves "open" and the epoch table offers its verification
        expect(mine.locator(".badge")).not_to_have_text(re.compile("^(open|pending)$"), timeout=150_000)
        buyer.locator("a:visible", has_text="verify this clearing").first.click()
        expect(buyer.locator("span", has_text=re.compile("^valid$")).first).to_be_visible(timeout=10_000)
        screenshot(buyer, "demo-trading-cleared")
        assert buyer_errors.messages == [], buyer_errors.messages

        page.goto(f"{demo.base}/#/meters")
        expect(page.locator("h1")).to_have_text("Meters")
        expect(page.locator("td", has_text="DEMO-")).not_to_have_count(0)
        screenshot(page, "demo-meters")

        # a certificate of a morning quarter hour the demo itself has not certified
        page.goto(f"{demo.base}/#/certificates")
        expect(page.locator("h1")).to_have_text("Renewable energy certificates")
        answers = _issue_some_period(page, _generating_periods(demo))
        assert answers[-1][1] == 201, f"no morning period of the last day could be certified: {answers}"
        screenshot(page, "demo-certificates")
        page.locator("[data-test=certificates] tr", has_text="active").first.locator("a").first.click()
        expect(page.locator("h1")).to_have_text("Verify a certificate")
        expect(page.locator("[data-test=verify-result] .badge").first).to_have_text("valid", timeout=20_000)
        screenshot(page, "demo-verify")

        page.goto(f"{demo.base}/#/overview")
        expect(page.locator("h1")).to_have_text("Overview")
        expect(page.locator("[data-test=energy-tokens]")).not_to_have_text(re.compile(r"^0\s*GRX"))
        page.wait_for_timeout(4_000)
        screenshot(page, "dashboard")
        assert errors.messages == [], errors.messages


def _generating_periods(demo: RunningDemo) -> list[datetime]:
    """Quarter hours of the prosumer's first meter (the form's default) with measured, signed,
    unflagged generation, settled for over two hours, largest generation first. The fleet replays
    the last day, and on a busy machine it may lag: wait for such readings to be stored."""
    login = httpx.post(f"{demo.base}/api/auth/login", json={"email": PROSUMER, "password": demo.password})
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    deadline = time.monotonic() + 180
    while True:
        meters = httpx.get(f"{demo.base}/api/meters/registered", headers=headers).json()
        meters = meters["items"] if isinstance(meters, dict) else meters
        page = httpx.get(
            f"{demo.base}/api/meters/{meters[0]['id']}/readings",
            params={"limit": 1000, "trust": "device-signed"},
            headers=headers,
        ).json()
        settled = datetime.now(UTC) - timedelta(hours=2)
        found = sorted(
            (r for r in page["items"] if (r["generation_wh"] or 0) > 0 and not r["flags"]),
            key=lambda r: -int(r["generation_wh"]),
        )
        starts = [s for s in (datetime.fromisoformat(r["interval_start"]) for r in found) if s < settled]
        if len(starts) >= 3 or time.monotonic() > deadline:
            return starts[:12]
        time.sleep(2)


def _issue_some_period(page: Page, starts: list[datetime]) -> list[tuple[str, int, str]]:
    """Try the given quarter hours until one issues (the demo certifies some itself: those answer
    409); the answers tried. Each try waits for its own answer, not for the notice or error a
    previous try left on the page."""
    answers: list[tuple[str, int, str]] = [("no period with generation was stored", 0, "")]
    for start in starts:
        page.fill("input[type=datetime-local] >> nth=0", start.strftime("%Y-%m-%dT%H:%M"))
        page.fill(
            "input[type=datetime-local] >> nth=1", (start + timedelta(minutes=15)).strftime("%Y-%m-%dT%H:%M")
        )
        form = page.locator("form", has=page.locator("input[type=datetime-local]"))
        with page.expect_response(
            lambda r: r.url.endswith("/api/erc/issue") and r.request.method == "POST",
            timeout=60_000,  # issuance waits on a busy ledger
        ) as issued:
            form.locator("button[type=submit]").click()
        answers.append((start.isoformat(), issued.value.status, issued.value.text()[:200]))
        if issued.value.status == 201:
            expect(page.locator(".notice", has_text="Certificate issued")).to_be_visible()
            break
    return answers
