"""`gridtokenx bench clearing`: how fast `clear` is on random books, and how it scales.

Book: n bids with limits U(5, 35) ct/kWh and n offers with U(3, 30) ct/kWh, each of U(0.1, 5) kWh, ids
random UUID-like hex, from a fixed seed. The price tick is 1/100 ct, so limits are U(500, 3500) and
U(300, 3000) ticks/kWh and quantities U(100, 5000) Wh. Measured side by side in one run: `clear`,
`verify`, and the brute-force reference on the sizes it can handle (it is O(n × distinct prices)).
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from gridtokenx.market.clearing import Order, clear, verify
from gridtokenx.market.clearing.reference import clear_reference

DEFAULT_SIZES = [1_000, 10_000, 100_000, 1_000_000]
TARGET_SECONDS = {10_000: 0.030, 100_000: 0.5, 1_000_000: 5.0}
GROWTH_TARGET = 2.3  # time ratio per doubling of n
REFERENCE_MAX = 10_000  # orders per side beyond which the brute force takes minutes
WORK_PER_SIZE = 2_000_000  # repeat small sizes until about this many orders per side were cleared


@dataclass(frozen=True, slots=True)
class Measure:
    n: int
    fills: int
    clear_s: float
    verify_s: float
    reference_s: float | None


def random_book(n: int, seed: int) -> tuple[list[Order], list[Order]]:
    """The benchmark's book: n bids and n offers drawn from `seed` (see the module docstring)."""
    rng = np.random.default_rng(seed)

    def side(low: int, high: int) -> list[Order]:
        ids = [f"{hi:016x}-{lo:016x}" for hi, lo in rng.integers(0, 2**63, (n, 2)).tolist()]
        quantities = rng.integers(100, 5000, n, endpoint=True).tolist()
        prices = rng.integers(low, high, n, endpoint=True).tolist()
        return [Order(i, q, p) for i, q, p in zip(ids, quantities, prices, strict=True)]

    return side(500, 3500), side(300, 3000)


def run(sizes: list[int] | None = None, seed: int = 42) -> None:
    """Clear books of each size (orders per side), then print the figures as a table."""
    console = Console()
    measures: list[Measure] = []
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("clearing", total=len(sizes or DEFAULT_SIZES))
        for n in sizes or DEFAULT_SIZES:
            progress.update(task, description=f"{n:,} orders per side: building the book")
            bids, offers = random_book(n, seed)
            progress.update(task, description=f"{n:,} orders per side: clearing")
            measures.append(_measure(n, bids, offers))
            progress.advance(task)
    console.print(_table(measures, seed))


def _measure(n: int, bids: list[Order], offers: list[Order]) -> Measure:
    times = []
    for _ in range(max(1, min(9, WORK_PER_SIZE // (10 * n)))):
        started = time.perf_counter()
        result = clear(bids, offers)
        times.append(time.perf_counter() - started)
    started = time.perf_counter()
    verified = verify(bids, offers, result)
    verify_s = time.perf_counter() - started
    reference_s = None
    if n <= REFERENCE_MAX:
        started = time.perf_counter()
        verified = verified and clear_reference(bids, offers) == result
        reference_s = time.perf_counter() - started
    if not verified:
        raise RuntimeError(f"clearing benchmark, n={n}: verify or the reference disagrees with clear")
    return Measure(n, len(result.fills), statistics.median(times), verify_s, reference_s)


def _table(measures: list[Measure], seed: int) -> Table:
    table = Table(title=f"market clearing · random book, seed {seed}, tick 1/100 ct/kWh")
    for column in ("n/side", "fills", "clear", "target", "fills/s", "×/2n", "verify", "brute", "brute÷clear"):
        table.add_column(column, justify="right")
    previous: Measure | None = None
    for m in measures:
        target = TARGET_SECONDS.get(m.n)
        growth = None if previous is None else _per_doubling(previous, m)
        table.add_row(
            f"{m.n:,}",
            f"{m.fills:,}",
            _ms(m.clear_s),
            "" if target is None else _verdict(m.clear_s <= target, f"≤{_ms(target)}"),
            f"{m.fills / m.clear_s / 1e6:.2f} M",
            "" if growth is None else _verdict(growth <= GROWTH_TARGET, f"{growth:.2f}"),
            _ms(m.verify_s),
            "—" if m.reference_s is None else _ms(m.reference_s),
            "" if m.reference_s is None else f"{m.reference_s / m.clear_s:,.0f}×",
        )
        previous = m
    table.caption = (
        f"×/2n: time ratio per doubling of n (target ≤ {GROWTH_TARGET}); brute: O(n·levels) reference"
    )
    return table


def _per_doubling(before: Measure, after: Measure) -> float:
    """Time ratio per doubling of n between two sizes: (t2/t1) ** (1 / log2(n2/n1))."""
    return float((after.clear_s / before.clear_s) ** (1 / math.log2(after.n / before.n)))


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms" if seconds >= 0.1 else f"{seconds * 1000:.1f} ms"


def _verdict(ok: bool, text: str) -> str:
    return f"[green]{text} ✓[/green]" if ok else f"[red]{text} ✗[/red]"
