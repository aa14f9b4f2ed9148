"""HTTP routes of the readings domain: native signed ingest, the original platform's compatibility
routes, history, rollups, gaps and jobs. Bodies are read raw and parsed by `native`/`legacy`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import msgspec
import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from gridtokenx.accounts.deps import CurrentUser, Principal, require_scope
from gridtokenx.core.cache import Cache, CacheName
from gridtokenx.core.deps import Ctx, DbSession
from gridtokenx.core.errors import ApiError
from gridtokenx.core.types import utcnow
from gridtokenx.core.units import wh_to_kwh
from gridtokenx.core.wire import UtcDatetime
from gridtokenx.meters.service import owned_meter
from gridtokenx.readings import jobs, legacy, service
from gridtokenx.readings.errors import ReadingError, http_status
from gridtokenx.readings.ingest_results import ItemResult, ItemStatus
from gridtokenx.readings.jobs import JobRunner
from gridtokenx.readings.native import (
    NativeReading,
    decode_batch,
    decode_reading,
    native_schema,
    to_reading,
)
from gridtokenx.readings.pipeline import IngestPipeline, Submitter
from gridtokenx.readings.reading import Reading, Trust
from gridtokenx.readings.schemas import (
    GapOut,
    JobOut,
    ReadingOut,
    ReadingPage,
    RollupOut,
    compat_body_schemas,
)

router = APIRouter()
Writer = Annotated[Principal, Depends(require_scope("readings:write"))]
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Not authenticated or signature invalid"},
    403: {"description": "Not your meter"},
    409: {"description": "A lower-trust revision of a signed interval, or a changed resend of an instant"},
    413: {"description": "Too many items, or too many unknown fields kept with a reading"},
    422: {"description": "Rejected by a VEE rule or schema"},
}
_COMPAT = compat_body_schemas(legacy.EXTRAS_MAX_KEYS)
_NATIVE = native_schema()


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    """`openapi_extra` for a route that reads its JSON body raw."""
    return {"requestBody": {"content": {"application/json": {"schema": schema}}, "required": True}}


async def pipeline_of(ctx: Ctx) -> IngestPipeline:
    return ctx.services.get(IngestPipeline)


Pipeline = Annotated[IngestPipeline, Depends(pipeline_of)]


def _native(native: NativeReading, network_id: str) -> Reading:
    return to_reading(native, network_id)


def _request_error(error: ReadingError) -> ApiError:
    return ApiError(
        error.message,
        code=error.code.value,
        status_code=http_status(error.code),
        details={"path": error.path},
    )


def _rejection(result: ItemResult) -> ApiError:
    """A rejected item as the error envelope of a single-reading request."""
    return ApiError(
        result.message or "",
        code=result.code or "REJECTED",
        status_code=result.http_status,
        details={"path": result.path},
    )


def _single(result: ItemResult, created_status: int = 201) -> JSONResponse:
    if result.status is ItemStatus.REJECTED:
        raise _rejection(result)
    body = result.as_dict()
    body.pop("index")
    return JSONResponse(body, status_code=created_status if result.status is ItemStatus.ACCEPTED else 200)


def _wants_async(request: Request, flag: bool) -> bool:
    return flag or "respond-async" in request.headers.get("prefer", "")


@router.post(
    "/api/meters/readings",
    status_code=201,
    tags=["readings"],
    responses={**ERRORS, 200: {"description": "An identical resend: the stored reading"}},
    openapi_extra=_body(_NATIVE),
)
async def submit_native(request: Request, principal: Writer, ctx: Ctx, pipeline: Pipeline) -> JSONResponse:
    """One device-signed native reading (see `gridtokenx.readings.signing` for the recipe)."""
    try:
        native = decode_reading(await request.body())
    except ReadingError as error:
        raise _request_error(error) from None
    results = await pipeline.ingest(Submitter(principal.user), [_native(native, ctx.settings.network_id)])
    return _single(results[0])


@router.post(
    "/api/meters/readings/batch",
    tags=["readings"],
    responses={**ERRORS, 202: {"description": "Queued as a job (`Prefer: respond-async`)"}},
    openapi_extra=_body({"type": "array", "items": _NATIVE}),
)
async def submit_native_batch(
    request: Request,
    principal: Writer,
    ctx: Ctx,
    session: DbSession,
    pipeline: Pipeline,
    async_: Annotated[bool, Query(alias="async")] = False,
) -> Response:
    """Up to BATCH_MAX_SIZE signed readings; a result per item. `?async=true` (or `Prefer:
    respond-async`) stores the batch as a job and answers 202 with its id (see `jobs.py`)."""
    try:
        decoded = decode_batch(await request.body(), max_items=ctx.settings.batch_max_size)
    except ReadingError as error:
        raise _request_error(error) from None
    if _wants_async(request, async_):
        async with ctx.db.writing():
            job = await jobs.submit(session, principal.user, await request.body(), len(decoded))
            await session.commit()  # the job and its body are on disk before the 202
        ctx.services.get(JobRunner).wake()
        body = {"job_id": str(job.id), "status": "queued", "total": len(decoded)}
        return JSONResponse(body, status_code=202)
    network = ctx.settings.network_id
    items: list[Reading | ReadingError] = [
        item if isinstance(item, ReadingError) else _native(item, network) for item in decoded
    ]
    results = await pipeline.ingest(Submitter(principal.user), items)
    body = {**service.summarise(results), "results": [r.as_dict() for r in results]}
    return Response(orjson.dumps(body), media_type="application/json")  # 1,000 items: orjson, no model


@router.get("/api/meters/jobs/{job_id}", tags=["readings"], responses=ERRORS)
async def get_job(job_id: uuid.UUID, user: CurrentUser, session: DbSession) -> JobOut:
    return JobOut.model_validate(await service.get_job(session, user, job_id))


# --- the original platform's routes -----------------------------------------------------------


async def _ingest_one(
    pipeline: IngestPipeline, principal: Principal, parse: Any
) -> tuple[Reading, ItemResult]:
    try:
        reading = parse()
    except ReadingError as error:
        raise _request_error(error) from None
    result = (await pipeline.ingest(Submitter(principal.user), [reading]))[0]
    if result.status is ItemStatus.REJECTED:
        raise _rejection(result)
    return reading, result


def _net_kwh(reading: Reading) -> str:
    return str(wh_to_kwh(reading.export_wh - reading.import_wh))


def _outcome(result: ItemResult) -> dict[str, Any]:
    """The fields every compatibility response shares (the original clients read `id`, `message`)."""
    duplicate = result.status is ItemStatus.DUPLICATE
    return {
        "id": str(result.reading_id),
        "duplicate": duplicate,
        "trust": result.trust,
        "message": "duplicate reading: already stored" if duplicate else f"reading accepted ({result.trust})",
    }


@router.post(
    "/api/meters/submit-reading",
    tags=["compatibility"],
    responses=ERRORS,
    openapi_extra=_body(_COMPAT["submit-reading"]),
)
async def submit_reading(request: Request, principal: Writer, pipeline: Pipeline) -> dict[str, Any]:
    raw = await request.body()
    reading, result = await _ingest_one(pipeline, principal, lambda: legacy.parse_submit_reading(raw))
    return {
        **_outcome(result),
        "wallet_address": reading.extras.get("wallet_address"),
        "kwh_amount": _net_kwh(reading),
        "reading_timestamp": datetime.fromtimestamp(reading.observed_at, UTC).isoformat(),
        "submitted_at": utcnow().isoformat(),
        "minted": False,
        "mint_tx_signature": None,
    }


@router.post(
    "/api/v1/meters/readings",
    tags=["compatibility"],
    responses=ERRORS,
    openapi_extra=_body(_COMPAT["energy-reading"]),
)
async def submit_energy_reading(request: Request, principal: Writer, pipeline: Pipeline) -> dict[str, Any]:
    raw = await request.body()
    reading, result = await _ingest_one(pipeline, principal, lambda: legacy.parse_energy_reading(raw))
    return {
        **_outcome(result),
        "meter_id": reading.meter_serial,
        "kwh": _net_kwh(reading),
        "interval_start": result.interval_start.isoformat() if result.interval_start else None,
    }


@router.post(
    "/api/v1/meters/batch/readings",
    tags=["compatibility"],
    responses=ERRORS,
    openapi_extra=_body(_COMPAT["simulator-batch"]),
)
@router.post(
    "/api/v1/public/meters/batch/readings",
    tags=["compatibility"],
    responses=ERRORS,
    openapi_extra=_body(_COMPAT["simulator-batch"]),
)
async def simulator_batch(
    request: Request, principal: Writer, ctx: Ctx, pipeline: Pipeline
) -> dict[str, Any]:
    """The simulator's batch routes; "public" is kept as a path for its clients, not as open access."""
    try:
        items = legacy.parse_simulator_batch(
            await request.body(), received_at=_now_epoch(), max_items=ctx.settings.batch_max_size
        )
    except ReadingError as error:
        raise _request_error(error) from None
    return _legacy_batch_body(await pipeline.ingest(Submitter(principal.user), list(items)))


def _legacy_batch_body(results: list[ItemResult]) -> dict[str, Any]:
    counts = service.summarise(results)
    return {
        "success_count": counts["accepted"] + counts["duplicates"],
        "failed_count": counts["rejected"],
        "message": "{accepted} accepted, {duplicates} duplicate, {rejected} rejected".format(**counts),
        **counts,
        "results": [r.as_dict() for r in results],
    }


class _SubmitBatch(msgspec.Struct):
    readings: list[msgspec.Raw]


@router.post(
    "/api/meters/submit-batch",
    tags=["compatibility"],
    responses=ERRORS,
    openapi_extra=_body(_COMPAT["submit-batch"]),
)
async def submit_batch(request: Request, principal: Writer, ctx: Ctx, pipeline: Pipeline) -> dict[str, Any]:
    """`{"readings": [submit-reading bodies]}`: the batch mode of the original simulator, which its
    gateway never served; each item is parsed and judged on its own."""
    try:
        submitted = msgspec.json.decode(await request.body(), type=_SubmitBatch)
    except msgspec.ValidationError:
        raise ApiError(
            "expected an object with a `readings` array", code="SCHEMA_INVALID", status_code=422
        ) from None
    except msgspec.DecodeError:
        raise ApiError("request body is not valid JSON", code="MALFORMED_JSON", status_code=400) from None
    except RecursionError:
        raise ApiError("the body nests JSON too deep", code="JSON_TOO_DEEP", status_code=400) from None
    if len(submitted.readings) > ctx.settings.batch_max_size:
        message = f"{len(submitted.readings)} items; at most {ctx.settings.batch_max_size}"
        raise ApiError(message, code="BATCH_TOO_LARGE", status_code=413)
    items: list[Reading | ReadingError] = []
    for index, raw in enumerate(submitted.readings):
        try:
            items.append(legacy.parse_submit_reading(bytes(raw)))
        except ReadingError as error:
            items.append(error.located(f"$.readings[{index}]"))
    return _legacy_batch_body(await pipeline.ingest(Submitter(principal.user), items))


@router.post(
    "/api/v1/meters/{serial}/readings",
    tags=["compatibility"],
    responses=ERRORS,
    openapi_extra=_body(_COMPAT["simulator-reading"]),
)
async def simulator_single(
    serial: str, request: Request, principal: Writer, pipeline: Pipeline
) -> dict[str, Any]:
    raw = await request.body()
    reading, result = await _ingest_one(
        pipeline,
        principal,
        lambda: legacy.parse_simulator_reading(raw, serial=serial, received_at=_now_epoch()),
    )
    return {
        **_outcome(result),
        "serial_number": reading.meter_serial,
        "kwh": _net_kwh(reading),
        "timestamp": result.interval_start.isoformat() if result.interval_start else None,
        "minted": False,
        "tx_signature": None,
    }


def _now_epoch() -> int:
    return int(utcnow().timestamp())


# --- queries ----------------------------------------------------------------------------------

# with a UTC offset, inside the calendar (see `core.wire`): a naive time is refused, not guessed
From = Annotated[UtcDatetime | None, Query(alias="from")]
To = Annotated[UtcDatetime | None, Query(alias="to")]


@router.get(
    "/api/meters/{meter_id}/readings", tags=["readings"], responses=ERRORS, response_model=ReadingPage
)
async def list_readings(
    meter_id: uuid.UUID,
    user: CurrentUser,
    session: DbSession,
    ctx: Ctx,
    start: From = None,
    end: To = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    trust: Annotated[Trust | None, Query()] = None,
    flag: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    meter = await owned_meter(session, user, meter_id)

    async def load() -> bytes:
        lo, hi = service.time_range(start, end, service.MAX_RANGE)
        rows, total = await service.readings_page(session, meter, lo, hi, limit, offset, trust, flag)
        items = [ReadingOut.model_validate(r) for r in rows]
        return ReadingPage(items=items, total=total, limit=limit, offset=offset).model_dump_json().encode()

    recent = (start, end, limit, offset, trust, flag) == (None, None, 100, 0, None, None)
    body = await (
        ctx.services.get(Cache).get_or_load(CacheName.RECENT_READINGS, str(meter.id), load)
        if recent
        else load()
    )
    return Response(body, media_type="application/json")


async def _rollups(
    meter_id: uuid.UUID,
    user: Any,
    session: DbSession,
    start: datetime | None,
    end: datetime | None,
    daily: bool,
) -> list[RollupOut]:
    meter = await owned_meter(session, user, meter_id)
    lo, hi = service.time_range(start, end, timedelta(days=31 if daily else 2))
    return [RollupOut.model_validate(r) for r in await service.rollups(session, meter, daily, lo, hi)]


@router.get("/api/meters/{meter_id}/stats/hourly", tags=["readings"], responses=ERRORS)
async def hourly(
    meter_id: uuid.UUID, user: CurrentUser, session: DbSession, start: From = None, end: To = None
) -> list[RollupOut]:
    return await _rollups(meter_id, user, session, start, end, daily=False)


@router.get("/api/meters/{meter_id}/stats/daily", tags=["readings"], responses=ERRORS)
async def daily(
    meter_id: uuid.UUID, user: CurrentUser, session: DbSession, start: From = None, end: To = None
) -> list[RollupOut]:
    return await _rollups(meter_id, user, session, start, end, daily=True)


@router.get("/api/meters/{meter_id}/gaps", tags=["readings"], responses=ERRORS)
async def meter_gaps(
    meter_id: uuid.UUID, user: CurrentUser, session: DbSession, start: From = None, end: To = None
) -> list[GapOut]:
    meter = await owned_meter(session, user, meter_id)
    lo, hi = service.time_range(start, end, timedelta(days=7))
    return await service.gaps(session, meter, lo, hi)
