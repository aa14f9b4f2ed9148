"""Property-based API fuzzing over the whole OpenAPI document (bounded examples, fixed seed): no
generated input may produce a 500, and every answer matches what the document says (status
code, content type, response schema; every error the envelope)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, seed, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from gridtokenx.accounts.models import Role
from gridtokenx.accounts.service import create_admin
from gridtokenx.core.db import Database
from gridtokenx.core.migrate import upgrade
from gridtokenx.core.security import JwtCodec
from tests.conftest import make_settings
from tests.live import live_server


@pytest.fixture(scope="module")
def api(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[schemathesis.schemas.BaseSchema, dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("fuzz")
    url = f"sqlite+aiosqlite:///{Path(tmp) / 'fuzz.db'}"
    config = make_settings(tmp, url, log_level="error")

    async def seed() -> str:
        db = Database(url)
        await upgrade(db)
        async with db.session() as session:
            admin = await create_admin(session, "fuzz@example.com", "fuzz-pass-123")
        await db.dispose()
        codec = JwtCodec(str(config.jwt_secret), config.jwt_issuer, 3600)
        return codec.issue(admin.id, Role.ADMIN.value, admin.email)

    token = asyncio.run(seed())
    with live_server(config) as base:
        schema = schemathesis.openapi.from_url(f"{base}/api/docs/openapi.json")
        schema.config.base_url = base  # type: ignore[misc]
        yield schema, {"Authorization": f"Bearer {token}"}


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def test_no_input_causes_a_server_error(api: tuple[schemathesis.schemas.BaseSchema, dict[str, str]]) -> None:
    schema, headers = api
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    for operation in operations:

        @given(case=operation.as_strategy())
        @seed(14)
        @settings(
            max_examples=12,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            derandomize=True,
        )
        def exercise(case: schemathesis.Case) -> None:
            response = case.call(headers=headers, timeout=10)
            case.validate_response(response, checks=CHECKS)
            assert response.status_code < 500, response.text
            if response.status_code >= 400 and response.headers.get("content-type") == "application/json":
                assert set(response.json()["error"]) == {"code", "message", "details"}, response.text

        exercise()
