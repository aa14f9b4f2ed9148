"""The dashboard as the app composes it: `/` and `/static/...`, every asset served locally."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from gridtokenx.core.domain import Domain
from gridtokenx.core.errors import NotFound

STATIC = Path(__file__).resolve().parent / "static"
MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".svg": "image/svg+xml"}

router = APIRouter(include_in_schema=False)


@router.get("/")
async def index() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"})


@router.get("/static/{path:path}")
async def asset(path: str) -> FileResponse:
    """One file under `static/`; anything outside it (`..`, absolute paths) is not found."""
    target = (STATIC / path).resolve()
    if not target.is_file() or not target.is_relative_to(STATIC):
        raise NotFound(f"no asset {path!r}", code="ASSET_NOT_FOUND")
    return FileResponse(
        target, media_type=MEDIA_TYPES.get(target.suffix), headers={"Cache-Control": "no-cache"}
    )


domain = Domain(name="web", routers=(router,))
