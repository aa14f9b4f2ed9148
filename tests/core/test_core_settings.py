"""Settings: defaults are embedded, legacy names work, a bad value is one clear line."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal

import pytest

from gridtokenx.core.settings import SettingsError, load_settings


def test_defaults_are_embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "GRIDTOKENX_DATABASE_URL", "REDIS_URL", "GRIDTOKENX_LEDGER_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings(_env_file=None)
    assert settings.is_sqlite and settings.effective_database_url.endswith("var/gridtokenx.db")
    assert settings.redis_url is None and settings.ledger_backend == "litesvm"
    assert settings.tokenization_decimals == 9 and settings.batch_max_size == 1000


def test_legacy_names_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://u@db:5432/grid")
    monkeypatch.setenv("TOKENIZATION_KWH_TO_TOKEN_RATIO", "2.5")
    monkeypatch.setenv("TOKENIZATION_MAX_READING_KWH", "50")
    monkeypatch.setenv("BATCH_MAX_SIZE", "200")
    monkeypatch.setenv("MQTT_BROKER_HOST", "broker")
    monkeypatch.setenv("MQTT_USE_TLS", "true")
    settings = load_settings(_env_file=None)
    assert settings.database_url == "postgresql+asyncpg://u@db:5432/grid"
    assert settings.tokenization_kwh_to_token_ratio == Decimal("2.5")
    assert settings.tokenization_max_reading_kwh == Decimal(50)
    assert settings.batch_max_size == 200
    assert settings.mqtt_broker_host == "broker" and settings.mqtt_use_tls is True


def test_prefixed_name_wins_over_legacy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCH_MAX_SIZE", "200")
    monkeypatch.setenv("GRIDTOKENX_BATCH_MAX_SIZE", "300")
    assert load_settings(_env_file=None).batch_max_size == 300


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TOKENIZATION_DECIMALS", "nine"),
        ("GRIDTOKENX_PORT", "70000"),
        ("DATABASE_URL", "mysql://x"),
        ("TOKENIZATION_KWH_TO_TOKEN_RATIO", "-1"),
    ],
)
def test_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        load_settings(_env_file=None)
    assert str(info.value).startswith(f"invalid configuration: {name}: ")
    assert "\n" not in str(info.value)


def test_cli_reports_bad_setting_without_traceback(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {"PATH": "/usr/bin:/bin", "TOKENIZATION_DECIMALS": "nine", "GRIDTOKENX_DATA_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "gridtokenx.cli", "db", "upgrade"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    output = result.stdout + result.stderr
    assert "TOKENIZATION_DECIMALS" in output and "Traceback" not in output
    assert len([line for line in output.splitlines() if line.strip()]) == 1
