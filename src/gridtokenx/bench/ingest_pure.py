"""Micro-benchmark of the pure ingest path: decode, canonicalise and verify signed native readings.

Measured side by side in one run, best of `repeats`:
- raw PyNaCl verify of precomputed messages (the ceiling: what one core can verify),
- decode only (one msgspec pass over a batch body),
- decode with one bad item (the per-item fallback path),
- decode + canonical bytes + strict Ed25519 verify (what the gateway does per batch).
The ratio of the last to the first says how much of the work is the signature itself.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

from nacl.signing import VerifyKey
from rich.console import Console
from rich.table import Table

from gridtokenx.readings.native import NativeReading, decode_batch, encode_batch
from gridtokenx.readings.signing import DeviceSigner, sign_reading, signing_message, verify_reading

BENCH_NETWORK = "gridtokenx-bench"


def _signed_readings(n: int, devices: int) -> tuple[list[NativeReading], dict[str, VerifyKey]]:
    seeds = [hashlib.sha256(f"bench-device-{i}".encode()).digest() for i in range(devices)]
    keys = [DeviceSigner.from_seed(seed) for seed in seeds]
    start = 1_767_225_600
    readings = []
    for i in range(n):
        key = keys[i % devices]
        fields = {
            "device_id": f"BENCH-{i % devices:05d}",
            "seq": i,
            "interval_start": start + (i // devices) * 900,
            "duration": 900,
            "import_wh": i % 7,
            "export_wh": 1000 + i % 500,
            "generation_wh": 1500 + i % 500,
            "consumption_wh": 500,
            "import_register_wh": 10_000 + i,
            "export_register_wh": 20_000 + i,
            "quality": 0,
            "firmware": "1.0.0",
            "created": start + 900,
            "expires": start + 1200,
        }
        readings.append(sign_reading(fields, key, BENCH_NETWORK))
    return readings, {key.key_id: VerifyKey(key.public_key) for key in keys}


def _best(repeats: int, run: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - began)
    return best


def bench_parse_verify(
    n: int = 10_000, *, devices: int = 100, repeats: int = 3, console: Console | None = None
) -> dict[str, Any]:
    """Readings per second of each stage on one core; prints a table when given a console."""
    readings, verify_keys = _signed_readings(n, devices)
    body = encode_batch(readings)
    one_bad = body.replace(b'"seq":0,', b'"seq":0.5,', 1)
    prepared = [
        (verify_keys[r.key_id], signing_message(r, BENCH_NETWORK), bytes.fromhex(str(r.sig)))
        for r in readings
    ]

    def raw_verify() -> None:
        for key, message, signature in prepared:
            key.verify(message, signature)

    def full_path() -> None:
        for item in decode_batch(body):
            assert isinstance(item, NativeReading)
            verify_reading(item, verify_keys[item.key_id], BENCH_NETWORK)

    seconds = {
        "raw_verify": _best(repeats, raw_verify),
        "decode": _best(repeats, lambda: decode_batch(body)),
        "decode_one_bad": _best(repeats, lambda: decode_batch(one_bad)),
        "decode_verify": _best(repeats, full_path),
    }
    rates = {f"{stage}_per_s": n / elapsed for stage, elapsed in seconds.items()}
    results: dict[str, Any] = {
        "readings": n,
        "body_bytes": len(body),
        **rates,
        "us_per_reading_decode_verify": seconds["decode_verify"] / n * 1e6,
        "decode_verify_vs_raw_verify": rates["decode_verify_per_s"] / rates["raw_verify_per_s"],
    }
    if console is not None:
        console.print(_table(results))
    return results


def _table(results: dict[str, Any]) -> Table:
    table = Table(title=f"Pure ingest path, {results['readings']:,} signed readings, one core")
    table.add_column("stage")
    table.add_column("readings/s", justify="right")
    table.add_column("vs raw verify", justify="right")
    ceiling = results["raw_verify_per_s"]
    labels = {
        "raw_verify_per_s": "PyNaCl verify only (ceiling)",
        "decode_per_s": "decode batch (msgspec)",
        "decode_one_bad_per_s": "decode batch, one bad item",
        "decode_verify_per_s": "decode + canonical + verify",
    }
    for key, label in labels.items():
        table.add_row(label, f"{results[key]:,.0f}", f"{results[key] / ceiling:.2f}x")
    return table
