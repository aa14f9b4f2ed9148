"""`gridtokenx bench ws` end to end at a tiny size: real gateways, Redis, WebSocket clients."""

from __future__ import annotations

import math

from gridtokenx.bench.ws import run_scenario


def test_bench_ws_delivers_every_event_to_every_client_across_two_gateways() -> None:
    result = run_scenario(gateways=2, clients=10, events=3, rate=20.0)
    assert result.deliveries == result.expected == 30
    assert 0 < result.p50_ms <= result.p95_ms <= result.p99_ms and math.isfinite(result.p99_ms)
    assert result.messages_per_s > 0
