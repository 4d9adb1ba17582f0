"""CSIP-AUS telemetry of a site: its two MirrorUsagePoints (site and DER: W, var, V) made once
on the server, then a MirrorMeterReadingList posted to each at the server's postRate.

Per site (`CsipTelemetry.tick(site, mup_list_href, now)`, called by the poller for the sites this
node holds, e.g. on every poll loop pass):
  1. MirrorUsagePoints not yet known: GET the MirrorUsagePointList (an existing one with our
     mRID is taken over: a lost database does not make duplicates), POST the missing ones
     (Location kept in csip_mirror_points), GET the list again for the server's postRate;
  2. every `list_refresh_s` (one GET per aggregator, not per site) the list is read again: a
     changed postRate applies from the next period (CACTUS ALL-10);
  3. each role whose period is due (csms.domain.csip_telemetry.next_period: whole minutes, one
     postRate long) posts the period's average; a period with nothing fresh is skipped.
The site W is the household meter's reading where the site has a recent one
(csms.services.site_meters), else the DER's own power in the site's convention.
The documents are envoy-schema 1.1.1 models (the reference server's own).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol, TypeVar

from envoy_schema.server.schema.sep2.metering import Reading, ReadingType
from envoy_schema.server.schema.sep2.metering_mirror import (
    MirrorMeterReading,
    MirrorMeterReadingListRequest,
    MirrorUsagePoint,
    MirrorUsagePointListResponse,
    MirrorUsagePointRequest,
)
from envoy_schema.server.schema.sep2.types import (
    AccumulationBehaviourType,
    CommodityType,
    DataQualifierType,
    DateTimeIntervalType,
    FlowDirectionType,
    KindType,
    PhaseCode,
    ServiceKind,
    UomType,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.domain import csip_telemetry as ct
from csms.domain.csip_telemetry import Quantity, Role
from csms.domain.sites import Site
from csms.integrations.csip.transport import CsipError, CsipTransport
from csms.persistence.repositories import csip_telemetry as repo
from csms.persistence.repositories import site_meters
from csms.persistence.repositories.csip_telemetry import MirrorPoint

log = logging.getLogger("csms.csip.telemetry")

T = TypeVar("T")
MAX_MUPS = 2_000  # a MirrorUsagePointList read is bounded (the transport bounds it too)
# A reading is posted a little after its period ends: samples stamped just before the minute
# may still be on their way in.
SETTLE_S = 2.0
USAGE_POINT_ON = 1  # UsagePointBase.status: 1 on


class Db(Protocol):
    """csms.persistence.database.Database, as far as telemetry needs it."""

    def read(self) -> AbstractAsyncContextManager[AsyncConnection]: ...

    async def write(self, op: Callable[[AsyncConnection], Awaitable[T]]) -> T: ...


@dataclass(frozen=True)
class TelemetrySettings:
    pen: int = 0  # the aggregator's IANA Private Enterprise Number (last 8 digits of mRIDs)
    max_age_s: float = 300.0  # a station's latest value counts this long when it sends nothing
    default_post_rate_s: int = ct.DEFAULT_POST_RATE_S
    list_refresh_s: float = 60.0  # how often the MirrorUsagePointList is read (postRate changes)

    def __post_init__(self) -> None:
        if not 0 <= self.pen <= ct.MAX_PEN:
            raise ValueError(f"csip pen: 0..{ct.MAX_PEN}")
        if not 10 <= self.max_age_s <= 3_600:
            raise ValueError("telemetry max_age_s: 10..3600")
        if not 30 <= self.list_refresh_s <= 3_600:
            raise ValueError("telemetry list_refresh_s: 30..3600")


# ---- documents (pure) ---------------------------------------------------------------------

_ROLE_NAMES = {Role.SITE: "site", Role.DER: "DER"}


def reading_type(role: Role, spec: ct.ReadingSpec) -> ReadingType:
    return ReadingType(
        accumulationBehaviour=AccumulationBehaviourType(spec.accumulation_behaviour),
        commodity=CommodityType(spec.commodity),
        dataQualifier=DataQualifierType(spec.data_qualifier),
        flowDirection=FlowDirectionType(spec.flow_direction(role)),
        kind=KindType(spec.kind),
        phase=PhaseCode(spec.phase),
        powerOfTenMultiplier=spec.power_of_ten,
        uom=UomType(spec.uom),
    )


def mirror_usage_point(site_lfdi: str, role: Role, pen: int) -> MirrorUsagePointRequest:
    """The role's MirrorUsagePoint with one MirrorMeterReading (and its ReadingType) per
    quantity (CSIP-AUS Annex A)."""
    return MirrorUsagePointRequest(
        mRID=ct.mrid(site_lfdi, role, None, pen),
        description=f"{_ROLE_NAMES[role]} readings",
        roleFlags=f"{role.role_flags:02X}",
        serviceCategoryKind=ServiceKind.ELECTRICITY,
        status=USAGE_POINT_ON,
        deviceLFDI=site_lfdi.upper(),
        mirrorMeterReadings=[
            MirrorMeterReading(
                mRID=ct.mrid(site_lfdi, role, spec.quantity, pen),
                description=f"{_ROLE_NAMES[role]} {spec.description}"[:32],
                readingType=reading_type(role, spec),
            )
            for spec in ct.READING_SPECS
        ],
    )


def meter_readings(
    site_lfdi: str,
    role: Role,
    pen: int,
    values: dict[Quantity, float],
    start: datetime,
    end: datetime,
    next_update: datetime,
) -> MirrorMeterReadingListRequest:
    """One Reading per quantity for [start, end), found by the MirrorMeterReading's mRID."""
    period = DateTimeIntervalType(
        start=int(start.timestamp()), duration=int((end - start).total_seconds())
    )
    return MirrorMeterReadingListRequest(
        mirrorMeterReadings=[
            MirrorMeterReading(
                mRID=ct.mrid(site_lfdi, role, spec.quantity, pen),
                lastUpdateTime=int(end.timestamp()),
                nextUpdateTime=int(next_update.timestamp()),
                reading=Reading(
                    timePeriod=period, value=ct.scaled_value(values[spec.quantity], spec)
                ),
            )
            for spec in ct.READING_SPECS
            if spec.quantity in values
        ]
    )


def _meter_w(
    meter: site_meters.StoredMeter | None, end: datetime, max_age_s: float
) -> float | None:
    """The household meter's net import for a period ending at `end`: its latest reading when
    measured no earlier than `max_age_s` before `end` (only the latest reading is kept, so the
    site W is that reading, not a period average), else None (the DER's own power stands in)."""
    if meter is None:
        return None
    measured = meter.reading.measured_at
    if (end - measured).total_seconds() > max_age_s:
        return None
    return meter.reading.grid_import_w


# ---- I/O ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TickResult:
    posted: dict[Role, tuple[datetime, datetime]]  # role -> the period reported
    skipped: list[Role]  # due, but nothing fresh
    next_due: datetime | None


class CsipTelemetry:
    """MirrorUsagePoints and readings of the aggregator's sites (one per aggregator/node)."""

    def __init__(self, transport: CsipTransport, db: Db, settings: TelemetrySettings) -> None:
        self._transport = transport
        self._db = db
        self.settings = settings
        self._listed: dict[str, tuple[str | None, int | None]] = {}  # mRID -> (href, postRate)
        self._listed_at: datetime | None = None

    async def refresh_list(self, mup_list_href: str, now: datetime) -> None:
        """GET the MirrorUsagePointList: each MUP's href and postRate by mRID."""
        _, items = await self._transport.get_list(
            mup_list_href, MirrorUsagePointListResponse, "mirrorUsagePoints", max_items=MAX_MUPS
        )
        listed: dict[str, tuple[str | None, int | None]] = {}
        for mup in items:
            if isinstance(mup, MirrorUsagePoint) and mup.mRID:
                listed[str(mup.mRID).upper()] = (mup.href, mup.postRate)
        self._listed = listed
        self._listed_at = now

    def _list_stale(self, now: datetime) -> bool:
        return (
            self._listed_at is None
            or (now - self._listed_at).total_seconds() >= self.settings.list_refresh_s
            or now < self._listed_at
        )

    def _rate(self, point: MirrorPoint) -> int:
        listed = self._listed.get(point.mrid)
        server = listed[1] if listed else point.post_rate_s
        return ct.bounded_post_rate(server, self.settings.default_post_rate_s)

    async def _ensure_points(
        self, site: Site, lfdi: str, mup_list_href: str, now: datetime
    ) -> dict[Role, MirrorPoint]:
        async with self._db.read() as conn:
            points = await repo.mirror_points(conn, site.id)
        if all(p.href for p in points.values()) and len(points) == len(Role):
            return points
        await self.refresh_list(mup_list_href, now)
        made = False
        for role in Role:
            mrid = ct.mrid(lfdi, role, None, self.settings.pen)
            point = points.get(role) or MirrorPoint(site.id, role, mrid)
            if point.href:
                continue
            listed = self._listed.get(mrid)
            href = listed[0] if listed and listed[0] else None
            if href is None:
                href = await self._transport.post(
                    mup_list_href, mirror_usage_point(lfdi, role, self.settings.pen)
                )
                made = True
            if not href:
                raise CsipError(f"POST {mup_list_href}: no Location for the {role.value} MUP")
            points[role] = replace(point, href=self._transport.path_of(href))
        if made:  # the server's postRate of what was just made (CACTUS ALL-06 GET-MUP-2)
            await self.refresh_list(mup_list_href, now)
        points = {role: replace(p, post_rate_s=self._rate(p)) for role, p in points.items()}

        async def save(conn: AsyncConnection) -> None:
            for p in points.values():
                await repo.save_mirror_point(conn, p, now)

        await self._db.write(save)
        return points

    async def tick(self, site: Site, mup_list_href: str, now: datetime) -> TickResult:
        """What is due for `site` at `now` (aware UTC). CsipError when the server fails."""
        if site.lfdi is None:
            return TickResult({}, [], None)
        lfdi = site.lfdi.upper()
        points = await self._ensure_points(site, lfdi, mup_list_href, now)
        if self._list_stale(now):
            await self.refresh_list(mup_list_href, now)
        due = {
            role: period
            for role, p in points.items()
            if (
                period := ct.next_period(
                    now - timedelta(seconds=SETTLE_S), p.last_period_end, self._rate(p)
                )
            )
        }
        posted: dict[Role, tuple[datetime, datetime]] = {}
        skipped: list[Role] = []
        if due:
            earliest = min(start for start, _ in due.values())
            latest = max(end for _, end in due.values())
            async with self._db.read() as conn:
                samples = await repo.recent_samples(
                    conn,
                    site.station_ids,
                    earliest - timedelta(seconds=self.settings.max_age_s),
                    latest,
                )
                meter = await site_meters.latest(conn, site.id)
            for role, (start, end) in sorted(due.items(), key=lambda kv: kv[0].value):
                point = points[role]
                der = ct.der_readings(samples, start, end, self.settings.max_age_s)
                site_w = _meter_w(meter, end, self.settings.max_age_s)
                values = ct.reading_values(role, ct.site_from_meter(der, site_w), der)
                rate = self._rate(point)
                if values:
                    assert point.href is not None
                    document = meter_readings(
                        lfdi,
                        role,
                        self.settings.pen,
                        values,
                        start,
                        end,
                        end + timedelta(seconds=rate),
                    )
                    try:
                        await self._transport.post(point.href, document)
                    except CsipError as error:
                        if error.status in (404, 410):  # the server lost it: make it again
                            await self._db.write(
                                lambda conn: repo.forget_mirror_points(conn, site.id)
                            )
                        raise
                    posted[role] = (start, end)
                else:
                    skipped.append(role)
                points[role] = replace(point, last_period_end=end, post_rate_s=rate)

            async def save(conn: AsyncConnection) -> None:
                for role in due:
                    await repo.save_mirror_point(conn, points[role], now)

            await self._db.write(save)
        next_due = min(
            (p.last_period_end or now) + timedelta(seconds=self._rate(p) + SETTLE_S)
            for p in points.values()
        )
        return TickResult(posted, skipped, next_due)
