"""What `bench ingest` measures per scenario, and the tables and verdicts it prints of it.

Kept apart from the run so that the figures' meaning (the captions, the target and how it is
judged) is read in one place, and the benchmark module stays about making the load.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.table import Table

from gridtokenx.bench.cpu import CpuSplit

if TYPE_CHECKING:
    from gridtokenx.bench.ingest import Plan

TARGET_OF_BARE = 0.50  # the pipeline's readings/s against the bare path's, same run


@dataclass(frozen=True)
class ScenarioResult:
    backend: str
    processes: int
    readings_sent: int
    readings_per_s: float
    ceiling_per_s: float
    p50_ms: float
    p95_ms: float
    rows_in_db: int  # of the timed part
    signed_rows: int
    history_rows: int  # seeded before the timed part
    accepted: int
    rejected: dict[str, int]
    http_errors: dict[str, int]
    lost_batches: int
    cpu: CpuSplit | None = None
    timed_readings: int = 0
    ceiling_drift: float = 0.0  # |after - before| / mean of the two ceiling measurements
    path: str = "pipeline"  # or "bare": decode, verify, insert only (see `ingest_bare`)

    @property
    def ratio(self) -> float:
        return self.readings_per_s / self.ceiling_per_s if self.ceiling_per_s else 0.0

    @property
    def complete(self) -> bool:
        """Every reading sent is stored exactly once, device-signed."""
        return self.rows_in_db == self.signed_rows == self.accepted == self.readings_sent


def verdicts(results: list[ScenarioResult]) -> list[str]:
    """The target's verdict: the pipeline against the bare path measured in the same run (the
    earlier 70%-of-the-ceiling target is withdrawn: the bare path alone sits there)."""
    bare = {r.processes: r for r in results if r.path == "bare"}
    lines = []
    for r in results:
        if r.backend == "postgres" and r.path == "pipeline" and r.processes in bare:
            share = r.readings_per_s / bare[r.processes].readings_per_s
            verdict = "met" if share >= TARGET_OF_BARE else "not met"
            lines.append(
                f"PostgreSQL, {r.processes} processes: the pipeline's {r.readings_per_s:,.0f} readings/s = "
                f"{share:.0%} of the bare path's {bare[r.processes].readings_per_s:,.0f}/s "
                f"(verify ceiling: {r.ratio:.0%} against {bare[r.processes].ratio:.0%}); "
                f"target ≥ {TARGET_OF_BARE:.0%}: [bold]{verdict}[/bold]"
            )
    return lines


def _problems(result: ScenarioResult) -> str:
    parts = [f"{code} x{n}" for code, n in sorted(result.rejected.items())]
    parts += [f"{kind} x{n} (resent)" for kind, n in sorted(result.http_errors.items())]
    if result.lost_batches:
        parts.append(f"{result.lost_batches} batches lost")
    return ", ".join(parts) or "none"


def results_table(results: list[ScenarioResult], plan: Plan, connections: int) -> Table:
    table = Table(
        title=(
            f"Signed native ingest over HTTP: {plan.readings:,} readings per scenario, batches of "
            f"{plan.batch:,}, {plan.meters:,} meters with {plan.history_days} days of stored history, "
            f"{connections} batches in flight per server"
        ),
        caption=(
            f"procs: server processes. ceiling/s: PyNaCl Ed25519 verify loop on all {os.cpu_count()} "
            "cores, the mean of a measurement right before and right after the timed part (± half their "
            "difference); ratio = readings/s / ceiling/s. p50/p95: latency of one "
            "batch. rows / sent: rows counted in the database afterwards (✓: each reading stored once, "
            "device-signed). The load generator (this process) shares the same cores. The first "
            f"batch per server is an untimed warm-up. Target: the pipeline on PostgreSQL at ≥ "
            f"{TARGET_OF_BARE:.0%} of the bare path's readings/s with as many processes. path: the "
            "ingest pipeline, or the bare path (decode, verify, one insert per batch; no VEE, state, "
            "history, versioning, rollups, mint outbox, events or per-item results; no stored history)."
        ),
    )
    for name in ("backend", "path", "procs", "readings/s", "ceiling/s", "ratio", "p50 ms", "p95 ms"):
        table.add_column(name, justify="left" if name in ("backend", "path") else "right")
    table.add_column("rows / sent", justify="right")
    table.add_column("rejected, HTTP errors")
    for r in results:
        stored = f"{r.rows_in_db:,} / {r.readings_sent:,}" + (" ✓" if r.complete else " ✗")
        table.add_row(
            r.backend, r.path, str(r.processes), f"{r.readings_per_s:,.0f}",
            f"{r.ceiling_per_s:,.0f} ±{r.ceiling_drift / 2:.0%}",
            f"{r.ratio:.0%}", f"{r.p50_ms:,.0f}", f"{r.p95_ms:,.0f}", stored, _problems(r),
        )  # fmt: skip
    return table


def _us(seconds: float | None, readings: int) -> str:
    return "–" if seconds is None or not readings else f"{seconds / readings * 1e6:,.0f}"


def cpu_table(results: list[ScenarioResult]) -> Table:
    """Where the CPU of the timed part went, per reading, beside what one verification costs."""
    cores = os.cpu_count() or 1
    table = Table(
        title="CPU per reading (µs), timed part",
        caption=(
            f"gateway: the server processes, every thread. database: all PostgreSQL processes (SQLite "
            f"runs inside the gateway). verify: one PyNaCl verification = {cores} cores / ceiling. At "
            f"{TARGET_OF_BARE:.0%} of the bare path, a reading may cost {1 / TARGET_OF_BARE:.0f}x the "
            "bare path's total."
        ),
    )
    for name in ("backend", "path", "procs", "gateway", "database", "load generator", "total", "verify"):
        table.add_column(name, justify="left" if name in ("backend", "path") else "right")
    for r in results:
        cpu, n = r.cpu, r.timed_readings
        parts = (cpu.servers, cpu.database, cpu.client) if cpu else (None, None, None)
        total = sum(p for p in parts if p is not None) if cpu else None
        verify = f"{cores / r.ceiling_per_s * 1e6:,.0f}" if r.ceiling_per_s else "–"
        table.add_row(r.backend, r.path, str(r.processes), *(_us(p, n) for p in parts), _us(total, n), verify)
    return table
