"""One-shot administration used by the CLI (`csms station ...`, `csms token ...`,
`csms id-token ...`): open the
services on the configured database (migrating it first), do one thing, close."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from csms.domain.errors import CsmsError
from csms.domain.models import (
    ApiScope,
    ApiToken,
    ApiTokenCreated,
    BootPolicy,
    IdToken,
    SecurityProfile,
    Station,
)
from csms.services.container import Services, build_services
from csms.settings import Settings
from v2g_shared.ocpp_versions import OcppVersion

# Errors the CLI prints as one line (exit status 1) instead of a traceback.
USER_ERRORS: tuple[type[Exception], ...] = (CsmsError,)


@asynccontextmanager
async def opened(settings: Settings) -> AsyncIterator[Services]:
    services = build_services(settings)
    await services.start(migrate=True)
    try:
        yield services
    finally:
        await services.close()


async def add_station(
    settings: Settings,
    station_id: str,
    *,
    password: str | None,
    security_profile: int = 1,
    boot_policy: str = "Accepted",
    ocpp_versions: list[str] | None = None,
) -> Station:
    async with opened(settings) as services:
        return await services.stations.create(
            station_id,
            password=password,
            security_profile=SecurityProfile(security_profile),
            boot_policy=BootPolicy(boot_policy),
            ocpp_versions=[OcppVersion(v) for v in ocpp_versions] if ocpp_versions else None,
        )


async def update_station(settings: Settings, station_id: str, ocpp_versions: list[str]) -> Station:
    """Set a station's accepted OCPP versions ([] : back to the global setting)."""
    async with opened(settings) as services:
        return await services.stations.update(
            station_id, ocpp_versions=[OcppVersion(v) for v in ocpp_versions]
        )


async def list_stations(settings: Settings) -> list[Station]:
    stations: list[Station] = []
    async with opened(settings) as services:
        offset = 0
        while True:
            page = await services.stations.list(offset, 1000)
            stations.extend(page.items)
            offset += len(page.items)
            if not page.items or offset >= page.total:
                return stations


async def create_api_token(
    settings: Settings, name: str, scope: ApiScope = ApiScope.ADMIN
) -> ApiTokenCreated:
    async with opened(settings) as services:
        return await services.api_tokens.create(name, scope)


async def revoke_api_token(settings: Settings, name: str) -> int:
    """Revoke every live token named `name`; how many were revoked."""
    async with opened(settings) as services:
        live = [t for t in await services.api_tokens.list() if t.name == name and not t.revoked]
        for token in live:
            await services.api_tokens.revoke(token.id)
        return len(live)


async def list_api_tokens(settings: Settings) -> list[ApiToken]:
    async with opened(settings) as services:
        return await services.api_tokens.list()


async def add_id_token(settings: Settings, id_token: str, type: str = "ISO14443") -> IdToken:
    """Create (or re-accept) a driver's idToken: stations' Authorize of it is Accepted."""
    async with opened(settings) as services:
        return await services.id_tokens.create(id_token, type)


async def remove_id_token(settings: Settings, id_token: str, type: str = "ISO14443") -> None:
    async with opened(settings) as services:
        await services.id_tokens.delete(id_token, type)


async def list_id_tokens(settings: Settings) -> list[IdToken]:
    tokens: list[IdToken] = []
    async with opened(settings) as services:
        offset = 0
        while True:
            page = await services.id_tokens.list(offset, 1000)
            tokens.extend(page.items)
            offset += len(page.items)
            if not page.items or offset >= page.total:
                return tokens
