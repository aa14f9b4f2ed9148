"""The readings domain as the app composes it: routes, the ingest pipeline, the MQTT consumer,
and the leased duty that runs queued batch jobs."""

from __future__ import annotations

from collections.abc import Sequence

from gridtokenx.core.context import AppContext
from gridtokenx.core.domain import BackgroundService, Domain
from gridtokenx.readings.api import router
from gridtokenx.readings.jobs import JobRunner
from gridtokenx.readings.pipeline import IngestPipeline
from gridtokenx.readings.vee import VeeConfig


def _wire(ctx: AppContext) -> None:
    settings = ctx.settings
    pipeline = ctx.services.add(
        IngestPipeline(ctx.db, ctx.bus, VeeConfig.from_settings(settings), settings.network_id)
    )
    ctx.services.add(
        JobRunner(
            ctx.db, pipeline, settings.network_id, settings.batch_max_size, settings.ingest_jobs_poll_seconds
        )
    )


def _duties(ctx: AppContext) -> Sequence[BackgroundService]:
    return (ctx.services.get(JobRunner).leased_duty(),)


def _background(ctx: AppContext) -> Sequence[BackgroundService]:
    if not ctx.settings.mqtt_broker_host:
        return ()
    from gridtokenx.readings.mqtt import MqttIngest

    return (ctx.services.add(MqttIngest(ctx.settings, ctx.services.get(IngestPipeline))),)


domain = Domain(name="readings", routers=(router,), wire=_wire, background=_background, duties=_duties)
