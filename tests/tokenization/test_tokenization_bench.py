"""`gridtokenx bench mint` at a tiny size: it runs end to end and prints every figure."""

from __future__ import annotations

import io

from rich.console import Console

from gridtokenx.bench import mint


def test_bench_mint_prints_latency_and_rates() -> None:
    out = io.StringIO()
    mint.run(samples=3, readings=40, owners=2, console=Console(file=out, width=120))
    text = out.getvalue()
    for figure in ("p50", "p95", "p99", "readings minted/s", "raw packed mint_to", "worker / raw"):
        assert figure in text, text
