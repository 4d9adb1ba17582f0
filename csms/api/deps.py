"""What the REST API needs from the service layer, and its FastAPI dependencies.

`ApiServices` names the services the routes use; the edge engineer's container satisfies it
structurally (see csms/services/). Routes reach it through `request.app.state.services`.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Annotated, Protocol

from fastapi import Depends, HTTPException, Query, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from csms.domain.models import ApiToken
from csms.services.common import CommandSender
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


_bearer = HTTPBearer(auto_error=False, description="API token from `csms token create NAME`")


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


class PageParams:
    def __init__(
        self,
        offset: Annotated[int, Query(ge=0, description="items to skip")] = 0,
        limit: Annotated[int, Query(ge=1, le=1000, description="items per page")] = 50,
    ) -> None:
        self.offset = offset
        self.limit = limit


Paging = Annotated[PageParams, Depends()]
