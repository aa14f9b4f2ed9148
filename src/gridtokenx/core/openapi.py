"""The OpenAPI document, made to tell the truth about errors.

Every failure is the one error envelope (`core.errors`), 422 included (FastAPI would document its
own validation body, which this API never sends). Each operation lists the statuses it can
answer: every request may be refused for its size (413) or rate (429) and malformed input (400,
422); operations with a security requirement, and writes (which check credentials or device
signatures in their bodies), also 401/403; writes 404 and 409, reads with path parameters 404.
The security schemes come from the authentication dependencies (`accounts.deps`).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

ENVELOPE_SCHEMA: dict[str, Any] = {
    "title": "ErrorEnvelope",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string", "description": "machine-readable, stable"},
                "message": {"type": "string"},
                "details": {"description": "field errors, a JSON path, or null"},
            },
        }
    },
}
_ENVELOPE_REF = {"$ref": "#/components/schemas/ErrorEnvelope"}
_DESCRIPTIONS = {
    "400": "Malformed JSON, or nested too deep",
    "401": "Not authenticated (or a device signature did not verify)",
    "403": "Authenticated, but not allowed",
    "404": "No such resource",
    "409": "Conflicts with what is stored",
    "413": "Body or batch too large",
    "422": "Failed validation",
    "429": "Too many requests; see Retry-After",
}
_WRITES = {"post", "put", "patch", "delete"}


def _statuses(method: str, path: str, operation: dict[str, Any]) -> list[str]:
    statuses = ["400", "413", "422", "429"]
    if operation.get("security") or method in _WRITES:  # credentials or signatures checked
        statuses += ["401", "403"]
    if method in _WRITES:  # a body may name what does not exist, or conflict with what does
        statuses += ["404", "409"]
    elif "{" in path:
        statuses.append("404")
    return statuses


def _error(status: str, existing: dict[str, Any] | None) -> dict[str, Any]:
    description = (existing or {}).get("description") or _DESCRIPTIONS[status]
    if description == "Validation Error":  # FastAPI's default 422
        description = _DESCRIPTIONS[status]
    return {"description": description, "content": {"application/json": {"schema": _ENVELOPE_REF}}}


def document(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document with every error response the envelope, and listed."""
    schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    components["ErrorEnvelope"] = ENVELOPE_SCHEMA
    for path, methods in schema.get("paths", {}).items():
        for method, operation in methods.items():
            responses = operation.setdefault("responses", {})
            wanted = set(_statuses(method, path, operation)) | {s for s in responses if s[0] in "45"}
            for status in sorted(wanted):
                responses[status] = _error(status, responses.get(status))
    return schema


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
