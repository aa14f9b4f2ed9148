"""Prometheus metrics shared by every domain; one registry per process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_REQUESTS = Counter(
    "gridtokenx_http_requests_total",
    "HTTP requests by route template, method and status.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "gridtokenx_http_request_seconds",
    "HTTP request latency by route template.",
    ["method", "route"],
    registry=REGISTRY,
)

# The original plan's names. One registry per process, each process scraped on its own /metrics
# (gateways on their HTTP port, workers on GRIDTOKENX_METRICS_PORT): Prometheus adds the processes
# up with sum() by name, so no shared multiprocess directory is needed. Counters that must count
# a cluster-wide fact once (events, mints) are incremented by the one process that did the work.

# --- readings ------------------------------------------------------------------------------------
READINGS_SUBMITTED = Counter(
    "meter_readings_submitted", "Readings handed to the ingest pipeline.", registry=REGISTRY
)
READINGS_VALIDATION_ERRORS = Counter(
    "meter_readings_validation_errors",
    "Readings rejected, by error code.",
    ["error_type"],
    registry=REGISTRY,
)
READINGS_DURATION = Histogram(
    "meter_readings_processing_duration_seconds",
    "Time to ingest one batch (one transaction), from parsed items to committed verdicts.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
SIGNATURE_VERIFICATIONS = Counter(
    "device_signature_verifications",
    "Device signature checks, by result (valid, missing, unknown_key, revoked, expired, invalid).",
    ["result"],
    registry=REGISTRY,
)
MQTT_MESSAGES = Counter("mqtt_messages_received", "MQTT messages consumed.", registry=REGISTRY)
MQTT_CONNECTION_ERRORS = Counter(
    "mqtt_connection_errors", "MQTT connection failures and drops.", registry=REGISTRY
)
BATCH_JOBS_SUBMITTED = Counter("batch_jobs_submitted", "Asynchronous batch jobs accepted.", registry=REGISTRY)
BATCH_JOBS_COMPLETED = Counter(
    "batch_jobs_completed", "Asynchronous batch jobs finished, by status.", ["status"], registry=REGISTRY
)

# --- events and WebSocket ------------------------------------------------------------------------
EVENTS_PUBLISHED = Counter(
    "gridtokenx_events_published",
    "Events published after their commit, by type (counted once, by the publishing process).",
    ["event_type"],
    registry=REGISTRY,
)
EVENTS_INVALID = Counter(
    "gridtokenx_events_invalid",
    "Events whose data did not fit their type (sent to admins only), by type.",
    ["event_type"],
    registry=REGISTRY,
)
REDIS_PUBSUB_MESSAGES = Counter(
    "redis_pubsub_messages", "Events published to Redis pub/sub by this process.", registry=REGISTRY
)
REDIS_PUBSUB_ERRORS = Counter(
    "redis_pubsub_errors",
    "Redis failures of the event bus (publish fell back to local delivery, or the listener dropped).",
    ["operation"],
    registry=REGISTRY,
)
WS_CLIENTS = Gauge("websocket_clients_connected", "Open WebSocket connections.", registry=REGISTRY)
WS_MESSAGES_SENT = Counter(
    "websocket_messages_sent",
    "Event messages queued to WebSocket clients.",
    ["event_type"],
    registry=REGISTRY,
)
WS_BROADCAST_DURATION = Histogram(
    "websocket_broadcast_duration_seconds",
    "Time to fan one event out to every client queue of this process.",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1),
    registry=REGISTRY,
)
WS_DROPPED = Counter(
    "websocket_clients_dropped",
    "Clients closed by the hub, by reason (slow_consumer, heartbeat).",
    ["reason"],
    registry=REGISTRY,
)

# --- cache ---------------------------------------------------------------------------------------
CACHE_HITS = Counter("cache_hits", "Redis cache hits, by cache.", ["cache"], registry=REGISTRY)
CACHE_MISSES = Counter("cache_misses", "Redis cache misses, by cache.", ["cache"], registry=REGISTRY)

# --- minting, settlement, leases (counted from the events their domains publish) -----------------
TOKENS_MINTED = Counter(
    "tokens_minted", "Mint transactions confirmed (TokensMinted events).", registry=REGISTRY
)
MINT_FAILURES = Counter("mint_failures", "Mints given up on (MintFailed events).", registry=REGISTRY)
TRADES_EXECUTED = Counter("trades_executed", "Trades matched (TradeExecuted events).", registry=REGISTRY)
SETTLEMENTS_CONFIRMED = Counter(
    "settlements_confirmed",
    "Settlements confirmed on the ledger (SettlementConfirmed events).",
    registry=REGISTRY,
)
LEASES_HELD = Gauge(
    "gridtokenx_leases_held",
    "Duty leases this process holds (1) or not (0), by duty.",
    ["duty"],
    registry=REGISTRY,
)
