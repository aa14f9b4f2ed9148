"""The service check of tests/conftest.py: pure tests run with every service missing, a test that
needs a missing service stops the run loudly (never a skip).

"Missing" is a port nothing listens on (bound here, never listening), handed to a pytest child
through the conftest's environment variables, so the shared services keep running.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 600


@pytest.fixture
def dead_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # held, never listening: connections are refused
        yield sock.getsockname()[1]


def pytest_child(dead_port: int, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "GRIDTOKENX_TEST_PG_PORT": str(dead_port),
        "GRIDTOKENX_TEST_REDIS_URL": f"redis://127.0.0.1:{dead_port}/15",
        "GRIDTOKENX_TEST_MQTT_PORT": str(dead_port),
    }
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )


def test_pure_tests_run_with_every_service_missing(dead_port: int) -> None:
    result = pytest_child(dead_port, "tests/market/test_clearing_rules.py", "tests/test_layers.py")

    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout and "skipped" not in result.stdout


def test_the_sqlite_half_of_a_backend_test_needs_no_postgres(dead_port: int) -> None:
    result = pytest_child(dead_port, "tests/readings/test_readings_batch_facts.py", "-k", "sqlite")

    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout and "deselected" in result.stdout


def test_tests_that_need_missing_services_stop_the_run_naming_each(dead_port: int) -> None:
    result = pytest_child(
        dead_port,
        "--collect-only",
        "tests/readings/test_readings_batch_facts.py",  # the postgres backend
        "tests/readings/test_readings_mqtt.py",  # the broker's address
    )

    assert result.returncode == 3, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert f"PostgreSQL is not reachable on 127.0.0.1:{dead_port}; start it with: pg_ctlcluster" in output
    assert f"Mosquitto is not reachable on 127.0.0.1:{dead_port}; start it with: mosquitto" in output
    assert "Redis" not in output  # only what the collected tests need
