"""Builds every CSMS service from settings: what the API, the CLI and the OCPP server share."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher

from csms.domain.station_ratings import RatingFallback
from csms.persistence import migrate as migrations
from csms.persistence.database import Database
from csms.routing.base import CommandRouter
from csms.routing.inprocess import InProcessRouter
from csms.services.commands import CommandService
from csms.services.common import Clock, utcnow
from csms.services.envelopes import EnvelopeService
from csms.services.live import LiveFeed
from csms.services.ocpp21_data import Ocpp21DataService
from csms.services.password_check import PasswordCheck, default_key_path, load_or_create_key
from csms.services.pnc import PlugAndChargeService, pnc_service_from_settings
from csms.services.records import (
    ChargingProfileService,
    DeviceModelService,
    EventService,
    MessageLogService,
    TariffService,
    TransactionService,
)
from csms.services.site_meters import SiteMeterService, SiteMeterSettings
from csms.services.sites import SiteService
from csms.services.station_messages import StationMessageService
from csms.services.stations import StationService
from csms.services.telemetry import Telemetry
from csms.services.tokens import ApiTokenService, IdTokenService
from csms.services.transaction_events import TransactionEventService
from csms.services.v2g import v2g_service_for
from csms.settings import Settings


@dataclass
class Services:
    settings: Settings
    db: Database
    router: CommandRouter
    clock: Clock
    stations: StationService
    id_tokens: IdTokenService
    api_tokens: ApiTokenService
    transactions: TransactionService
    device_model: DeviceModelService
    charging_profiles: ChargingProfileService
    message_log: MessageLogService
    events: EventService
    tariffs: TariffService
    commands: CommandService
    station_messages: StationMessageService
    transaction_events: TransactionEventService
    ocpp21: Ocpp21DataService  # periodic event streams, dynamic schedule updates
    live: LiveFeed
    telemetry: Telemetry
    pnc: PlugAndChargeService
    envelopes: EnvelopeService  # site operating envelopes on the stations (issue 18)
    sites: SiteService
    site_meters: SiteMeterService  # the sites' household meters (issue 18)

    async def start(self, *, migrate: bool = False) -> None:
        """Open the database writer; with migrate=True first bring the schema to head."""
        if migrate:
            await migrations.upgrade_async(self.settings.database_url)
        await self.db.start()
        self.live.start()
        self.message_log.start()
        v2g_service_for(self).start_background()  # re-planner: off unless configured
        self.envelopes.start()
        self.site_meters.start()

    async def close(self) -> None:
        await self.live.close()
        await self.site_meters.close()
        await self.envelopes.close()
        await v2g_service_for(self).close()
        try:
            await self.message_log.close()  # what is buffered is written first
        finally:
            await self.db.close()


def build_services(
    settings: Settings,
    *,
    router: CommandRouter | None = None,
    clock: Clock = utcnow,
    log_incoming_messages: bool | None = None,
    sqlite_synchronous: str = "FULL",
    password_hasher: PasswordHasher | None = None,
    message_log_retention: timedelta | None = None,
    telemetry: Telemetry | None = None,
) -> Services:
    """Wire the services. The default router is in-process (one node); the default password
    hasher is argon2id with argon2-cffi's default (RFC 9106 low-memory) parameters. The
    message-log arguments override the settings (message_log_*)."""
    db = Database(settings.database_url, sqlite_synchronous=sqlite_synchronous)
    telemetry = telemetry or Telemetry()
    db.writer.on_commit = telemetry.commit
    if log_incoming_messages is None:
        log_incoming_messages = settings.message_log_incoming
    if message_log_retention is None:
        message_log_retention = timedelta(days=settings.message_log_retention_days)
    router = router or InProcessRouter(settings.node_id)
    # Connection changes: the router's local connection list where it keeps one.
    connected_ids = getattr(router, "connected_station_ids", None)
    live = LiveFeed(connected_ids=connected_ids if callable(connected_ids) else None)
    commands = CommandService(
        db,
        router,
        default_timeout=settings.command_timeout_s,
        negative_limit_is_discharge=settings.negative_limit_is_discharge,
        clock=clock,
    )
    envelopes = EnvelopeService(
        db,
        commands,
        router,
        clock=clock,
        rating_fallback=RatingFallback(
            settings.station_rated_charge_w, settings.station_rated_discharge_w
        ),
    )
    site_meters = SiteMeterService(
        db, envelopes, router, clock=clock, settings=SiteMeterSettings.from_settings(settings)
    )
    envelopes.site_base = site_meters.site_base
    return Services(
        settings=settings,
        db=db,
        router=router,
        clock=clock,
        stations=StationService(
            db,
            router,
            clock=clock,
            hasher=password_hasher,
            password_check=PasswordCheck(
                load_or_create_key(
                    settings.password_key_file or default_key_path(settings.database_url)
                )
            ),
        ),
        id_tokens=IdTokenService(db, clock=clock),
        api_tokens=ApiTokenService(db, clock=clock),
        transactions=TransactionService(db),
        device_model=DeviceModelService(db),
        charging_profiles=ChargingProfileService(db),
        message_log=MessageLogService(
            db,
            log_incoming=log_incoming_messages,
            retention=message_log_retention,
            max_rows_per_station=settings.message_log_max_rows_per_station,
            clock=clock,
            on_dropped=telemetry.message_log_dropped.inc,
        ),
        events=EventService(db),
        tariffs=TariffService(db, clock=clock),
        commands=commands,
        station_messages=StationMessageService(db, live),
        transaction_events=TransactionEventService(db, live),
        ocpp21=Ocpp21DataService(db, clock=clock),
        live=live,
        telemetry=telemetry,
        pnc=pnc_service_from_settings(settings, clock, db),
        envelopes=envelopes,
        sites=SiteService(db, envelopes, clock=clock),
        site_meters=site_meters,
    )
