"""The dashboard in a real browser against a live gateway on SQLite with the embedded ledger."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from gridtokenx.accounts.service import create_admin
from gridtokenx.core.db import open_database
from tests.conftest import make_settings
from tests.live import live_server
from tests.web.browser import ConsoleErrors, chromium, screenshot

pytestmark = pytest.mark.browser
ADMIN = ("ops@example.com", "admin-pass-123")


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[str]:
    settings = make_settings(
        tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'web.db'}", require_email_verification=False
    )
    with live_server(settings) as base:

        async def seed() -> None:
            async with open_database(settings.effective_database_url) as db, db.session() as session:
                await create_admin(session, *ADMIN)

        asyncio.run(seed())
        yield base


def sign_in(page: Page, base: str, email: str, password: str) -> None:
    page.goto(f"{base}/#/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Overview")


def test_assets_are_served_locally(gateway: str) -> None:
    index = httpx.get(f"{gateway}/")
    assert index.status_code == 200 and "/static/app.js" in index.text
    assert "http" not in index.text.split("<body>")[0].replace('name="viewport"', "")  # no CDN
    for asset in ("app.js", "style.css", "vendor/alpine-3.17.4.min.js", "vendor/chart-4.6.1.umd.min.js"):
        assert httpx.get(f"{gateway}/static/{asset}").status_code == 200, asset
    escape = httpx.get(f"{gateway}/static/..%2F..%2Fcore%2Fsettings.py")
    assert escape.status_code == 404 and escape.json()["error"]["code"] == "ASSET_NOT_FOUND"


def test_register_sign_in_and_see_my_wallet(gateway: str) -> None:
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        errors = ConsoleErrors(page)
        page.goto(gateway)
        expect(page.locator("form button[type=submit]")).to_have_text("Sign in")
        screenshot(page, "login")
        page.click("text=Create account")
        page.fill("input[name=email]", "pat@example.com")
        page.fill("input[name=password]", "correct-horse-42")
        page.click("button[type=submit]")
        expect(page.locator(".notice")).to_contain_text("Check your email")
        sign_in(page, gateway, "pat@example.com", "correct-horse-42")
        address = page.locator("[data-test=wallet-address]")
        expect(address).to_have_text(re.compile(r"^[1-9A-HJ-NP-Za-km-z]{32,44}$"))
        expect(page.locator(".badge", has_text="custodial")).to_be_visible()
        screenshot(page, "overview")
        page.click("text=Meters")
        expect(page.locator("h1")).to_have_text("Meters")
        expect(page.locator("text=No meter yet")).to_be_visible()
        screenshot(page, "meters")
        assert errors.messages == [], "\n".join(errors.messages)


def test_a_bad_password_shows_the_reason(gateway: str) -> None:
    with chromium() as browser:
        page = browser.new_page()
        page.goto(f"{gateway}/#/login")
        page.fill("input[name=email]", ADMIN[0])
        page.fill("input[name=password]", "wrong-password-1")
        page.click("button[type=submit]")
        expect(page.locator("[data-test=auth-error]")).to_be_visible()


def test_phone_layout_keeps_navigation(gateway: str) -> None:
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 390, "height": 844})
        errors = ConsoleErrors(page)
        sign_in(page, gateway, *ADMIN)
        expect(page.get_by_role("link", name="Admin")).to_be_visible()
        screenshot(page, "overview-phone")
        assert errors.messages == [], "\n".join(errors.messages)
