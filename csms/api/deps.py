"""What the REST API needs from the service layer, and its FastAPI dependencies.

`ApiServices` names the services the routes use; the edge engineer's container satisfies it
structurally (see csms/services/). Routes reach it through `request.app.state.services`.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

from fastapi import Depends, HTTPException, Query, Request, Security, status
from fastapi.exceptions import RequestValidationError
from fastapi.params import Depends as DependsParam
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, SecurityScopes

from csms.domain.models import ApiScope, ApiToken
from csms.services.common import CommandSender
from csms.services.ocpp21_data import Ocpp21DataService
from csms.services.records import (
    ChargingProfileService,
    DeviceModelService,
    EventService,
    MessageLogService,
    TariffService,
    TransactionService,
)
from csms.services.stations import StationService
from csms.services.tokens import ApiTokenService, IdTokenService


class ApiServices(Protocol):
    @property
    def stations(self) -> StationService: ...
    @property
    def transactions(self) -> TransactionService: ...
    @property
    def device_model(self) -> DeviceModelService: ...
    @property
    def charging_profiles(self) -> ChargingProfileService: ...
    @property
    def message_log(self) -> MessageLogService: ...
    @property
    def events(self) -> EventService: ...
    @property
    def tariffs(self) -> TariffService: ...
    @property
    def id_tokens(self) -> IdTokenService: ...
    @property
    def api_tokens(self) -> ApiTokenService: ...
    @property
    def commands(self) -> CommandSender: ...
    @property
    def ocpp21(self) -> Ocpp21DataService: ...


def get_services(request: Request) -> ApiServices:
    services: ApiServices = request.app.state.services
    return services


Services = Annotated[ApiServices, Depends(get_services)]


@dataclass
class _CachedToken:
    token: ApiToken
    expires: float


class TokenCache:
    """Verified bearer tokens for a few seconds: one database read per token per TTL, not per
    request. Revocation through the API clears it at once; through the CLI it takes <= TTL."""

    def __init__(self, ttl_s: float = 5.0) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[bytes, _CachedToken] = {}

    @staticmethod
    def _key(plaintext: str) -> bytes:
        return hashlib.sha256(plaintext.encode()).digest()

    def get(self, plaintext: str) -> ApiToken | None:
        entry = self._entries.get(self._key(plaintext))
        if entry is None or entry.expires < time.monotonic():
            return None
        return entry.token

    def put(self, plaintext: str, token: ApiToken) -> None:
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[self._key(plaintext)] = _CachedToken(token, time.monotonic() + self.ttl_s)

    def clear(self) -> None:
        self._entries.clear()


_bearer = HTTPBearer(
    auto_error=False,
    description="API token from `csms token create NAME --scope read|operate|admin`. Each "
    "operation lists the scope it needs in its security requirement; admin includes operate, "
    "operate includes read. A valid token without the scope gets 403.",
)


async def require_token(
    request: Request,
    services: Services,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> ApiToken:
    unauthorized = HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail="a valid bearer token is required (Authorization: Bearer <token>)",
        headers={"WWW-Authenticate": "Bearer"},
    )
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise unauthorized
    cache: TokenCache = request.app.state.token_cache
    token = cache.get(credentials.credentials)
    if token is None:
        token = await services.api_tokens.verify(credentials.credentials)
        if token is None:
            raise unauthorized
        cache.put(credentials.credentials, token)
    return token


class ScopeMissing(Exception):
    """A valid token without the scope a route needs (answered 403, see errors.py)."""

    def __init__(self, needed: ApiScope, held: ApiScope) -> None:
        super().__init__(f"this API token has scope '{held}'; this operation needs '{needed}'")
        self.needed = needed
        self.held = held


def check_scope(token: ApiToken, needed: ApiScope) -> None:
    """For routes whose need depends on the request (e.g. which OCPP action is sent)."""
    if not token.scope.allows(needed):
        raise ScopeMissing(needed, token.scope)


# JSON bodies: deeper nesting than this is refused (OCPP payloads nest about 6 levels).
MAX_JSON_DEPTH = 32


def _json_problem(body: Any) -> str | None:
    """Why a parsed JSON body is refused (see `json_problem_at`), or None."""
    found = json_problem_at(body)
    return None if found is None else found[0]


def json_problem_at(body: Any) -> tuple[str, tuple[str | int, ...]] | None:
    """Why a parsed JSON body is refused, and where: non-finite numbers (Python's parser takes
    the NaN/Infinity literals JSON does not have) or nesting beyond MAX_JSON_DEPTH. Iterative:
    the walk itself has no recursion an outsider could exhaust; only containers are stacked."""
    non_finite = "NaN and Infinity are not JSON numbers"
    if type(body) is float:
        return None if math.isfinite(body) else (non_finite, ())
    Loc = tuple[str | int, ...]
    stack: list[tuple[Any, int, Loc]] = [(body, 1, ())] if type(body) in (dict, list) else []
    while stack:
        container, depth, loc = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return f"JSON nested deeper than {MAX_JSON_DEPTH} levels", loc
        pairs = container.items() if type(container) is dict else enumerate(container)
        for key, item in pairs:
            kind = type(item)
            if kind is float:
                if not math.isfinite(item):
                    return non_finite, (*loc, key)
            elif kind is dict or kind is list:
                stack.append((item, depth + 1, (*loc, key)))
    return None


async def _check_json_body(request: Request) -> None:
    if request.method in ("GET", "HEAD") or not await request.body():
        return
    # FastAPI reads a body without a content type as JSON too (unless strict about it).
    content_type = request.headers.get("content-type")
    if content_type is not None and "json" not in content_type.split(";")[0]:
        return
    # FastAPI has parsed it already (Starlette caches it); a parse error is answered there.
    try:
        body = await request.json()
    except ValueError:
        return
    found = json_problem_at(body)
    if found is not None:
        problem, loc = found
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body", *loc), "msg": problem, "input": None}]
        )


async def authorize(
    security_scopes: SecurityScopes,
    request: Request,
    token: Annotated[ApiToken, Depends(require_token)],
) -> ApiToken:
    """401 without a valid token, 403 without the scope the route declares, then 422 for a
    JSON body no model should see (non-finite numbers, too deep)."""
    for name in security_scopes.scopes:
        check_scope(token, ApiScope(name))
    await _check_json_body(request)
    return token


def needs(scope: ApiScope) -> DependsParam:
    """The dependency a route declares (`dependencies=[needs(ApiScope.READ)]`): OpenAPI shows
    it as the operation's security requirement `{"HTTPBearer": [scope]}`."""
    return Security(authorize, scopes=[scope.value])


def required_scope(dependencies: list[Any]) -> ApiScope | None:
    """The scope a route declared through `needs` (None: none declared)."""
    for dependency in dependencies:
        if getattr(dependency, "dependency", None) is authorize and dependency.scopes:
            return ApiScope(dependency.scopes[0])
    return None


READ = needs(ApiScope.READ)
OPERATE = needs(ApiScope.OPERATE)
ADMIN = needs(ApiScope.ADMIN)
# Handlers that check a further scope themselves take the token through this.
OperateToken = Annotated[ApiToken, Security(authorize, scopes=[ApiScope.OPERATE.value])]

# Paging offsets beyond this are refused before they reach the database (SQLite and
# PostgreSQL take 64-bit integers; a larger Python int would fail there, a 500).
MAX_OFFSET = 2**31 - 1


class PageParams:
    def __init__(
        self,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="items to skip")] = 0,
        limit: Annotated[int, Query(ge=1, le=1000, description="items per page")] = 50,
    ) -> None:
        self.offset = offset
        self.limit = limit


Paging = Annotated[PageParams, Depends()]
