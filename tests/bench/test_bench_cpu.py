"""CPU accounting of benchmark parties, read from /proc of this machine's real processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from gridtokenx.bench.cpu import CpuMeter, named_processes_cpu_seconds, process_cpu_seconds


def _burn(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_a_busy_process_accumulates_cpu_and_a_missing_one_reads_none() -> None:
    busy_then_idle = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\n"
    child = subprocess.Popen([sys.executable, "-c", busy_then_idle + "time.sleep(30)"])
    try:
        deadline = time.monotonic() + 10
        while (process_cpu_seconds(child.pid) or 0.0) < 0.25 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (process_cpu_seconds(child.pid) or 0.0) >= 0.25
    finally:
        child.kill()
        child.wait()
    assert process_cpu_seconds(child.pid) is None  # reaped: nothing left to read


@pytest.mark.postgres
def test_the_postgres_processes_are_found_by_name() -> None:
    used = named_processes_cpu_seconds("postgres")
    assert used is not None and used > 0  # the test database server has done work already
    assert named_processes_cpu_seconds("no-such-process-name") == 0.0


def test_the_meter_splits_cpu_between_servers_database_and_client() -> None:
    meter = CpuMeter([os.getpid()], None)
    with pytest.raises(RuntimeError):
        meter.stop()
    meter.start()
    _burn(0.2)
    split = meter.stop()
    assert split.database is None
    assert split.client >= 0.19
    assert split.servers is not None and split.servers >= 0.15  # /proc counts in clock ticks
