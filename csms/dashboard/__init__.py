"""The operator dashboard: static files (plain ES modules, the vendored uPlot) served by the
API's own server under `/`; every asset comes from this package (works offline)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(str(resources.files("csms.dashboard").joinpath("static")))

# The page may load scripts, styles, images and data only from this server.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def mount_dashboard(app: FastAPI) -> None:
    headers = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "Cache-Control": "no-cache"}

    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers=headers)

    app.add_api_route("/", index, methods=["GET"], include_in_schema=False)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="dashboard-static")
