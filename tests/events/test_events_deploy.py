"""deploy/ mirrors `gridtokenx cluster up` (docker cannot run here, so the files are parsed and
compared), and every metric the dashboard and the alert rules query exists."""

from __future__ import annotations

import configparser
import inspect
import json
import re
from pathlib import Path
from typing import Any

import yaml

from gridtokenx.cluster import (
    WORKER_COMMAND,
    Topology,
    gateway_command,
    ledger_command,
    shared_environment,
    up_command,
)
from gridtokenx.core.metrics import REGISTRY

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PROMQL_WORDS = {
    "sum", "max", "min", "avg", "rate", "increase", "histogram_quantile", "clamp_min", "by", "without",
    "and", "or", "unless", "on", "ignoring", "le", "up",
}  # fmt: skip


def _topology(db: str, redis: str, mqtt: str) -> Topology:
    return Topology(2, 2, 8100, db, redis, mqtt, 1883, "gridtokenx", "gridtokenx:events", Path("/unused"))


def _defaults() -> dict[str, Any]:
    return {name: p.default for name, p in inspect.signature(up_command).parameters.items()}


def test_compose_runs_what_cluster_up_runs() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    expected = shared_environment(
        _topology(
            "postgresql://gridtokenx:${POSTGRES_PASSWORD}@postgres:5432/gridtokenx",
            "redis://redis:6379/0",
            "mosquitto",
        ),
        ledger_url="${SOLANA_RPC_URL}",
        jwt_secret="${GRIDTOKENX_JWT_SECRET}",
        wallet_key="${GRIDTOKENX_WALLET_ENCRYPTION_KEY}",
        authority_path="/run/secrets/authority",
    )
    services = compose["services"]
    gateways = sorted(name for name in services if name.startswith("gateway-"))
    workers = sorted(name for name in services if name.startswith("worker-"))
    assert len(gateways) == _defaults()["gateways"] and len(workers) == _defaults()["workers"]
    assert services["migrate"]["environment"] == expected
    for name in gateways:
        service = services[name]
        assert service["command"] == ["gridtokenx", *gateway_command(8000, "0.0.0.0")[2:]]
        assert service["environment"] == {**expected, "GRIDTOKENX_DATA_DIR": f"/var/lib/gridtokenx/{name}"}
    for name in workers:
        service = services[name]
        assert service["command"] == ["gridtokenx", *WORKER_COMMAND[2:]]
        extra = {
            "GRIDTOKENX_DATA_DIR": f"/var/lib/gridtokenx/{name}",
            "GRIDTOKENX_METRICS_PORT": "9100",
            "GRIDTOKENX_HOST": "0.0.0.0",
        }
        assert service["environment"] == {**expected, **extra}
    assert {"postgres", "redis", "mosquitto"} <= set(services)
    ledger = ["gridtokenx", *ledger_command("/run/secrets/authority", 8899, "0.0.0.0")[2:]]
    assert services["ledger"]["command"] == ledger and services["ledger"]["secrets"] == ["authority"]
    assert services["ledger"]["profiles"] == ["local-ledger"]  # real deployments use a Solana RPC


def test_systemd_units_run_what_cluster_up_runs() -> None:
    lines = (DEPLOY / "systemd" / "gridtokenx.env").read_text().splitlines()
    env = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    expected = shared_environment(
        _topology(
            "postgresql://gridtokenx:CHANGE-ME@db.gridtokenx.internal:5432/gridtokenx",
            "redis://redis.gridtokenx.internal:6379/0",
            "mqtt.gridtokenx.internal",
        ),
        ledger_url="https://solana-rpc.gridtokenx.internal",
        jwt_secret=env["GRIDTOKENX_JWT_SECRET"],
        wallet_key=env["GRIDTOKENX_WALLET_ENCRYPTION_KEY"],
        authority_path="/etc/gridtokenx/authority.json",
    )
    assert env == expected and len(env["GRIDTOKENX_JWT_SECRET"]) >= 32

    def unit(name: str) -> configparser.SectionProxy:
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        parser.read(DEPLOY / "systemd" / name)
        return parser["Service"]

    binary = "/opt/gridtokenx/venv/bin/gridtokenx"
    gateway = unit("gridtokenx-gateway@.service")
    assert gateway["ExecStart"] == " ".join([binary, *gateway_command("%i", "0.0.0.0")[2:]])
    assert gateway["EnvironmentFile"] == "/etc/gridtokenx/gridtokenx.env"
    worker = unit("gridtokenx-worker@.service")
    assert worker["ExecStart"] == " ".join([binary, *WORKER_COMMAND[2:]])
    assert unit("gridtokenx-migrate.service")["ExecStart"] == f"{binary} db upgrade"


def _known_samples() -> set[str]:
    names = set()
    for family in REGISTRY.collect():
        names |= {family.name + suffix for suffix in ("", "_total", "_bucket", "_sum", "_count")}
    return names


def _metrics_in(expr: str) -> set[str]:
    expr = re.sub(r'"[^"]*"', "", expr)
    expr = re.sub(r"\b\d+(\.\d+)?(e-?\d+)?\b", "", expr)  # numbers such as 1e-9
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|without)\s*\([^)]*\)", "", expr)
    words = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", expr))
    return words - PROMQL_WORDS


def test_dashboard_and_alerts_query_only_metrics_that_exist() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "gridtokenx-dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    rules = yaml.safe_load((DEPLOY / "prometheus" / "gridtokenx-alerts.yaml").read_text())
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    exprs += [rule["expr"] for rule in alerts]
    assert {rule["labels"]["severity"] for rule in alerts} == {"critical", "warning"}
    known = _known_samples()
    used = set().union(*(_metrics_in(e) for e in exprs))
    assert used - known == set()
    wanted = {
        "meter_readings_submitted_total", "meter_readings_validation_errors_total",
        "meter_readings_processing_duration_seconds_bucket", "mqtt_messages_received_total",
        "mqtt_connection_errors_total", "device_signature_verifications_total",
        "websocket_clients_connected", "websocket_messages_sent_total",
        "websocket_broadcast_duration_seconds_bucket", "redis_pubsub_messages_total",
        "batch_jobs_submitted_total", "batch_jobs_completed_total", "cache_hits_total", "cache_misses_total",
        "tokens_minted_total", "mint_failures_total", "settlements_confirmed_total", "gridtokenx_leases_held",
    }  # fmt: skip
    assert wanted <= used  # the original plan's names are all on the dashboard or in an alert
