"""One-shot administration used by the CLI (`csms station ...`, `csms token ...`,
`csms id-token ...`, `csms site ...`): open the
services on the configured database (migrating it first), do one thing, close."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

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
from csms.domain.sites import Site
from csms.services.container import Services, build_services
from csms.services.envelopes import EnvelopeView
from csms.services.sites import site_or_422
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


# Sites (issue 18). The CLI holds no station: what it changes reaches the stations through the
# running server's refresh round (EnvelopeService.refresh_due, every 30 s) or their reconnect,
# a station taken out of its site is cleared by release_unsited, and its listeners (re-plan)
# run through announce_stored_changes in the same round.


async def add_site(settings: Settings, fields: dict[str, Any]) -> Site:
    async with opened(settings) as services:
        services.sites.enforce = False
        return await services.sites.create(site_or_422(**fields))


async def update_site(settings: Settings, site_id: str, changes: dict[str, Any]) -> Site:
    """Change the given fields of a site (the others kept)."""
    async with opened(settings) as services:
        services.sites.enforce = False
        current = await services.sites.get(site_id)
        fields = {f.name: getattr(current, f.name) for f in dataclasses.fields(current)}
        fields.update(changes)
        return await services.sites.replace(site_or_422(**fields))


async def delete_site(settings: Settings, site_id: str) -> None:
    async with opened(settings) as services:
        services.sites.enforce = False
        await services.sites.delete(site_id)


async def list_sites(settings: Settings) -> list[Site]:
    async with opened(settings) as services:
        return await services.sites.all()


async def show_site(settings: Settings, site_id: str) -> tuple[Site, EnvelopeView]:
    async with opened(settings) as services:
        return await services.sites.get(site_id), await services.envelopes.view(site_id)
