"""The FastAPI application: routes under /api/v1, OpenAPI at /docs, /redoc and /openapi.json,
Prometheus metrics at /metrics, liveness at /health and readiness at /ready."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi_offline import FastAPIOffline

from csms.api import health
from csms.api.counting import CountedServices
from csms.api.deps import ApiServices, TokenCache
from csms.api.errors import PROBLEM_RESPONSES, install_error_handlers
from csms.api.health import Readiness
from csms.api.metrics import CsmsMetrics, metrics_route
from csms.api.routes import (
    commands,
    dashboard,
    ocpp21,
    records,
    site_meter,
    sites,
    stations,
    tokens,
    v2g,
    v2x,
)
from csms.dashboard import mount_dashboard
from csms.services.live import LiveFeed

API_PREFIX = "/api/v1"
# /docs (Swagger UI) and /redoc load their scripts and styles from the CSMS itself (the
# fastapi-offline package ships them), so they work without internet. Swagger UI's default
# spec validator is an online service: off.
SWAGGER_UI_PARAMETERS = {"validatorUrl": None}

# Every router under /api/v1; each of their routes declares its scope (deps.needs).
ROUTERS = (
    stations.router,
    records.router,
    records.transactions_router,
    commands.router,
    ocpp21.router,
    tokens.id_tokens_router,
    tokens.api_tokens_router,
    v2g.router,
    dashboard.router,
    v2x.router,
    sites.router,
    site_meter.router,
)


def create_api(
    services: ApiServices,
    *,
    metrics: CsmsMetrics | None = None,
    token_cache_ttl_s: float = 5.0,
    readiness: Readiness | None = None,
) -> FastAPI:
    app = FastAPIOffline(
        swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
        title="CSMS REST API",
        version="1",
        description="Operator API of the bidirectional-charging CSMS (OCPP 2.0.1). Every "
        "/api/v1 route needs `Authorization: Bearer <token>` (create one with "
        "`csms token create NAME --scope read|operate|admin`) whose scope covers the "
        "operation's security requirement: `read` for GET, `operate` for commands to "
        "stations, V2G plans/dispatch and prices, `admin` for stations, tokens, tariffs, "
        "vehicles and credentials (admin includes operate, operate includes read). Errors "
        "are a `ProblemRead`: 401 without a valid token, 403 without the scope, 422 for "
        "invalid input (request bodies are typed strictly: no number for a date, no boolean "
        "for a number, no NaN/Infinity).",
    )
    telemetry = metrics.telemetry if metrics is not None else None
    counted = CountedServices(services, telemetry.api_command_done if telemetry else None)
    app.state.services = counted
    if metrics is not None:
        metrics.command_counts = counted.command_counts
    app.state.token_cache = TokenCache(token_cache_ttl_s)
    # The live-update fan-out the services feed (a fresh, silent one for a bare services set).
    app.state.live = getattr(services, "live", None) or LiveFeed()
    install_error_handlers(app)
    api = APIRouter(prefix=API_PREFIX, responses=PROBLEM_RESPONSES)
    for router in ROUTERS:
        api.include_router(router)
    app.include_router(api)
    app.add_api_route("/metrics", metrics_route(metrics), methods=["GET"], include_in_schema=False)
    mount_dashboard(app)
    health.install(app, readiness)
    return app
