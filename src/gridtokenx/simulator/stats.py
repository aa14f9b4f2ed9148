"""Counters of a fleet run, per meter class, and the table `gridtokenx simulate` shows live."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from rich.table import Table

from gridtokenx.simulator.fleet import MeterClass


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


@dataclass
class ClassStats:
    generated: int = 0
    sent: int = 0  # send attempts (a reading resent after an outage counts again)
    accepted: int = 0
    duplicate: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    retries: int = 0
    answer_seconds: list[float] = field(default_factory=list)

    @property
    def stored(self) -> int:
        return self.accepted + self.duplicate


@dataclass(frozen=True)
class AttackResult:
    scenario: str
    expected: str
    got: str
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.expected == self.got


@dataclass
class FleetStats:
    classes: dict[MeterClass, ClassStats] = field(
        default_factory=lambda: {c: ClassStats() for c in MeterClass}
    )
    dropped: int = 0  # pushed out of a full spool: lost
    spool_depth: int = 0
    max_spool_depth: int = 0
    intervals: int = 0
    attacks: list[AttackResult] = field(default_factory=list)

    def note_depth(self, depth: int) -> None:
        self.spool_depth = depth
        self.max_spool_depth = max(self.max_spool_depth, depth)

    @property
    def total(self) -> ClassStats:
        out = ClassStats()
        for s in self.classes.values():
            out.generated += s.generated
            out.sent += s.sent
            out.accepted += s.accepted
            out.duplicate += s.duplicate
            out.rejected.update(s.rejected)
            out.retries += s.retries
            out.answer_seconds.extend(s.answer_seconds)
        return out

    @property
    def lost(self) -> int:
        """Readings that will never be stored: dropped from the spool or rejected by the gateway."""
        return self.dropped + sum(self.total.rejected.values())

    def table(self, title: str = "GridTokenX fleet") -> Table:
        table = Table(title=title)
        for column in (
            "class",
            "generated",
            "sent",
            "accepted",
            "duplicate",
            "rejected",
            "retries",
            "p50 ms",
            "p95 ms",
        ):
            table.add_column(column, justify="left" if column in ("class", "rejected") else "right")
        rows = [(c.value, s) for c, s in self.classes.items()] + [("all", self.total)]
        for name, s in rows:
            p50, p95 = percentile(s.answer_seconds, 50), percentile(s.answer_seconds, 95)
            rejected = ", ".join(f"{code} {n}" for code, n in sorted(s.rejected.items())) or "0"
            table.add_row(
                name,
                str(s.generated),
                str(s.sent),
                str(s.accepted),
                str(s.duplicate),
                rejected,
                str(s.retries),
                "-" if p50 is None else f"{p50 * 1000:.1f}",
                "-" if p95 is None else f"{p95 * 1000:.1f}",
            )
        table.caption = (
            f"intervals {self.intervals} · spool depth {self.spool_depth} · dropped {self.dropped}"
        )
        if self.attacks:
            table.caption += " · attacks " + ", ".join(
                f"{a.scenario} {'ok' if a.ok else 'UNEXPECTED'} ({a.got})" for a in self.attacks
            )
        return table
