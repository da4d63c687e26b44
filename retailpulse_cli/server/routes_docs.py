"""API documentation that works without the internet: Swagger UI at /docs and ReDoc at
/redoc, their scripts and styles served from an installed package (fastapi-offline ships
the Swagger UI and ReDoc bundles), never from a CDN or a font service.

ReDoc's standalone bundle shows a "Redocly" logo that it loads from Redocly's CDN; the
bundle is served with that address blanked, so the page makes no request off the server
(the image then simply does not show).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

from retailpulse_cli.server.errors import ApiError

router = APIRouter(include_in_schema=False)

ASSETS_URL = "/docs/assets"
REDOC_LOGO_URL = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}
TITLE = "retailpulse API"


def _assets_dir() -> Path:
    import fastapi_offline

    return Path(fastapi_offline.__file__).resolve().parent / "static"


@cache
def asset(name: str) -> bytes:
    """An asset's bytes, read once; ReDoc's with its CDN logo address blanked."""
    data = (_assets_dir() / name).read_bytes()
    if name == "redoc.standalone.js":
        data = data.replace(REDOC_LOGO_URL, b"")
    return data


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url=request.app.openapi_url,
        title=f"{TITLE} - Swagger UI",
        swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
        # no badge fetched from validator.swagger.io
        swagger_ui_parameters={"validatorUrl": None, "displayRequestDuration": True},
    )


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    return get_redoc_html(
        openapi_url=request.app.openapi_url,
        title=f"{TITLE} - ReDoc",
        redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
        redoc_favicon_url=f"{ASSETS_URL}/favicon.png",
        with_google_fonts=False,
    )


@router.get(ASSETS_URL + "/{name}")
async def docs_asset(name: str) -> Response:
    if name not in ASSETS:
        raise ApiError(404, "not_found", f"no documentation asset {name!r}")
    return Response(
        asset(name), media_type=ASSETS[name], headers={"Cache-Control": "max-age=86400"}
    )
