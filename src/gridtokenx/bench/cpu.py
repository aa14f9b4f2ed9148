"""CPU time of the processes taking part in a benchmark (Linux `/proc`), to say where the CPU went.

On a machine whose cores are all busy the throughput is the cores divided by the CPU spent per
reading, so the split (gateway processes, database server, load generator) shows what limits it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


def _ticks_per_second() -> int:
    return os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU of a process and all its threads so far; None when it cannot be read."""
    try:
        fields = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / _ticks_per_second()


def named_processes_cpu_seconds(name: str) -> float | None:
    """Summed CPU of every process whose command name is `name` (e.g. all `postgres` backends)."""
    if not PROC.is_dir():
        return None
    total = 0.0
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != name:
                continue
        except OSError:
            continue
        total += process_cpu_seconds(int(entry.name)) or 0.0
    return total


@dataclass(frozen=True)
class CpuSplit:
    """CPU seconds spent by each party during one measured interval (None: not measurable here)."""

    servers: float | None
    database: float | None
    client: float


class CpuMeter:
    """Snapshot the parties' CPU at `start()`, read the difference at `stop()`."""

    def __init__(self, server_pids: Iterable[int], database_process: str | None) -> None:
        self.server_pids = list(server_pids)
        self.database_process = database_process
        self._start: tuple[float | None, float | None, float] | None = None

    def _now(self) -> tuple[float | None, float | None, float]:
        servers = [process_cpu_seconds(pid) for pid in self.server_pids]
        server_total = None if any(s is None for s in servers) else sum(s or 0.0 for s in servers)
        database = named_processes_cpu_seconds(self.database_process) if self.database_process else None
        return server_total, database, time.process_time()

    def start(self) -> None:
        self._start = self._now()

    def stop(self) -> CpuSplit:
        if self._start is None:
            raise RuntimeError("CpuMeter.stop() before start()")
        (s0, d0, c0), (s1, d1, c1) = self._start, self._now()
        return CpuSplit(
            servers=None if s0 is None or s1 is None else s1 - s0,
            database=None if d0 is None or d1 is None else d1 - d0,
            client=c1 - c0,
        )
