"""The readings domain as the app composes it: routes, the ingest pipeline, the MQTT consumer."""

from __future__ import annotations

from collections.abc import Sequence

from gridtokenx.core.context import AppContext
from gridtokenx.core.domain import BackgroundService, Domain
from gridtokenx.readings.api import router
from gridtokenx.readings.pipeline import IngestPipeline
from gridtokenx.readings.vee import VeeConfig


def _wire(ctx: AppContext) -> None:
    ctx.services.add(
        IngestPipeline(ctx.db, ctx.bus, VeeConfig.from_settings(ctx.settings), ctx.settings.network_id)
    )


def _background(ctx: AppContext) -> Sequence[BackgroundService]:
    if not ctx.settings.mqtt_broker_host:
        return ()
    from gridtokenx.readings.mqtt import MqttIngest

    return (ctx.services.add(MqttIngest(ctx.settings, ctx.services.get(IngestPipeline))),)


domain = Domain(name="readings", routers=(router,), wire=_wire, background=_background)
