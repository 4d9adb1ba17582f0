"""`/health` (liveness) and `/ready` (readiness): unauthenticated, cheap, and they say nothing
an outsider could use (no versions, no addresses, no URLs).

- `GET /health`: 200 `{"status": "ok"}` while the process serves HTTP (its event loop runs).
  For a liveness probe: restart the process when it fails.
- `GET /ready`: 200 `{"status": "ready", "checks": {...}}` when the database is reachable, its
  schema is at the migrations' head, the OCPP listener is up and the command router is
  connected; else 503 `{"status": "not ready", "checks": {...}}` naming the failing check.
  For a load balancer: send stations and API calls only to ready nodes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from csms.services.health import Check

# What the composition root hands in: every readiness check by name.
Readiness = Callable[[], Awaitable[dict[str, Check]]]


def install(app: FastAPI, readiness: Readiness | None) -> None:
    async def health() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def ready() -> JSONResponse:
        if readiness is None:
            return JSONResponse({"status": "ready", "checks": {}})
        checks = await readiness()
        ok = all(check.ok for check in checks.values())
        body = {
            "status": "ready" if ok else "not ready",
            "checks": {name: {"ok": c.ok, "detail": c.detail} for name, c in checks.items()},
        }
        return JSONResponse(body, status_code=200 if ok else 503)

    app.add_api_route("/health", health, methods=["GET"], include_in_schema=False)
    app.add_api_route("/ready", ready, methods=["GET"], include_in_schema=False)
