"""Service errors -> HTTP answers, every body a `ProblemRead`."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from csms.api.deps import ScopeMissing
from csms.api.schemas import ProblemRead
from csms.domain.errors import (
    AlreadyExists,
    BrokerUnavailable,
    CallErrorReceived,
    CommandNotAllowed,
    CommandTimeout,
    CommandValidationError,
    CsmsError,
    InvalidRequest,
    NotFound,
    StationDisconnected,
    StationOffline,
    TokenNotAllowed,
)


class ApiProblem(Exception):
    """An error raised by a route itself (not by a service)."""

    def __init__(
        self, status_code: int, detail: str, *, errors: list[dict[str, str]] | None = None
    ) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail
        self.errors = errors


def problem(status_code: int, detail: str, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"detail": detail}
    body.update({key: value for key, value in extra.items() if value is not None})
    return JSONResponse(body, status_code=status_code)


def _status_of(error: CsmsError) -> int:
    if isinstance(error, NotFound):
        return status.HTTP_404_NOT_FOUND
    if isinstance(error, AlreadyExists | StationOffline | CommandNotAllowed | TokenNotAllowed):
        return status.HTTP_409_CONFLICT
    if isinstance(error, InvalidRequest):
        return status.HTTP_422_UNPROCESSABLE_CONTENT
    if isinstance(error, CommandTimeout):
        return status.HTTP_504_GATEWAY_TIMEOUT
    if isinstance(error, CallErrorReceived | StationDisconnected):
        return status.HTTP_502_BAD_GATEWAY
    if isinstance(error, BrokerUnavailable):
        return status.HTTP_503_SERVICE_UNAVAILABLE
    return status.HTTP_500_INTERNAL_SERVER_ERROR


async def _csms_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, CsmsError)
    code = _status_of(error)
    if isinstance(error, CallErrorReceived):
        return problem(
            code,
            f"the station answered CALLERROR {error.code}: {error.description}",
            code=error.code,
            error_details=error.details or None,
        )
    if isinstance(error, CommandValidationError):
        return problem(code, str(error), errors=error.errors)
    return problem(code, str(error))


async def _api_problem(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ApiProblem)
    return problem(error.status_code, error.detail, errors=error.errors)


def _field_of(location: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(part) for part in location if part not in ("body", "query", "path")]
    return ".".join(parts) or "(body)"


async def _request_validation(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    errors = [
        {"field": _field_of(item.get("loc", ())), "message": str(item.get("msg", ""))}
        for item in error.errors()
    ]
    summary = "; ".join(f"{item['field']}: {item['message']}" for item in errors)
    return problem(
        status.HTTP_422_UNPROCESSABLE_CONTENT, f"invalid request: {summary}", errors=errors
    )


async def _scope_missing(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ScopeMissing)
    response = problem(status.HTTP_403_FORBIDDEN, str(error), required_scope=str(error.needed))
    # RFC 6750 section 3.1: the token is valid but its scope is too narrow.
    response.headers["WWW-Authenticate"] = (
        f'Bearer error="insufficient_scope", scope="{error.needed}"'
    )
    return response


# Documented on every /api/v1 operation; every body is a ProblemRead (FastAPI's own
# HTTPValidationError shape is never sent: RequestValidationError is reshaped above).
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ProblemRead, "description": "missing, wrong or revoked token"},
    404: {"model": ProblemRead, "description": "no such resource"},
    403: {"model": ProblemRead, "description": "the token lacks the scope (`required_scope`)"},
    422: {"model": ProblemRead, "description": "invalid input: each field and why (`errors`)"},
}


async def _internal(_request: Request, _error: Exception) -> JSONResponse:
    # A bug, never an answer to input: the body says nothing more (the server logs the
    # traceback), but it keeps the documented shape.
    return problem(status.HTTP_500_INTERNAL_SERVER_ERROR, "internal error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(Exception, _internal)
    app.add_exception_handler(ScopeMissing, _scope_missing)
    app.add_exception_handler(CsmsError, _csms_error)
    app.add_exception_handler(ApiProblem, _api_problem)
    app.add_exception_handler(RequestValidationError, _request_validation)
