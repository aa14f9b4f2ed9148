"""Energy tokens minted from verified readings, exactly once: outbox, worker, corrections, audit."""
