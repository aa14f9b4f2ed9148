"""Process tuning for long-running servers (not applied to tests or one-shot commands)."""

from __future__ import annotations

import gc

# Cyclic garbage is rare in a request/response server (reference counting frees almost everything),
# but CPython's default thresholds run a generation-0 pass every 700 allocations and full passes
# over every long-lived object (ORM mappers, caches) every few batches: a cost per reading on the
# ingest path (docs/decisions/2026-11-23-gc-thresholds-for-servers.md).
SERVER_GC_THRESHOLDS = (100_000, 50, 1_000)


def tune_gc_for_serving() -> None:
    """Move everything alive at start-up out of the collector's reach and collect cycles rarely."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*SERVER_GC_THRESHOLDS)
