"""The household meter of each site (issue 18): readings in, the site base out, and the
stations' envelope profile re-sent when the base changes materially.

A reading (POST /sites/{id}/meter, or the Home Assistant bridge) is stored as the site's latest
together with the base computed from it at once: the reading minus the chargers' own power,
each station's latest meter value (csms.domain.csip_telemetry: Power.Active.Import - Export,
grid side) no older than `site_meter_charger_sample_max_age_s` while a transaction runs on it
(else only a sample within 10 s of the reading); a station with no such value counts 0 W when
no transaction runs on it, else as unknown (csms.domain.site_meter).

A site may instead (or as well) take its readings from one of its stations' own main meter
(the site's `meter_station_id`): each OCPP MeterValues with evseId 0 and location Inlet of that
station is a reading (`main_meter_values`, csms.domain.inlet_meter), bounded and aged like a
pushed one; evse-0 values of any other station are ignored. Evse-0 values are never counted as
a station's own power (csms.domain.csip_telemetry).

The envelope service asks `site_base(site_id, now)` whenever it computes the stations' bounds
(profiles, the envelope view, the planners' caps), so every node computes from the database.
After each reading, and every `site_meter_check_s` on the nodes holding a station of a metered
site (a fresh reading turns stale by itself), `maybe_resend` compares the bases now with the
bases of the last re-send: a change of at least the hysteresis in either direction (or, once
the reading is stale, any tightening) re-sends the site's stations their profile, at most once
per `site_meter_min_resend_s` (a noisy meter does not flood the stations; the check loop sends
a change held back). A re-send also re-plans the site's V2G vehicles within the new bounds
(`reenforce_site` calls the envelope change listeners). The bases applied are swapped
compare-and-set in site_meters: one node re-sends (and re-plans) for one change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import BaseModel, Field

from csms.domain import csip_telemetry as ct
from csms.domain.errors import NotFound
from csms.domain.inlet_meter import REGISTER_MAX_INTERVAL_S, inlet_reading, is_inlet_sample
from csms.domain.models import MeterSample
from csms.domain.site_meter import (
    BaseInterval,
    ChargerPower,
    MeterReading,
    MeterReadingError,
    SiteBase,
    age_s,
    base_interval,
    changed_materially,
    is_fresh,
    reading_from,
    site_base,
    tightens,
)
from csms.persistence.database import Database
from csms.persistence.repositories import csip_telemetry as samples_repo
from csms.persistence.repositories import site_meters as repo
from csms.persistence.repositories import sites as srepo
from csms.persistence.repositories import v2g as v2g_repo
from csms.routing.base import CommandRouter
from csms.services.common import Clock, utcnow
from csms.services.envelopes import EnvelopeService

log = logging.getLogger(__name__)

# A station's power around the reading: the mean of its samples in [t - 10 s, t + 1 s).
_AROUND_BEFORE_S = 10.0
_AROUND_AFTER_S = 1.0


def _sample(m: MeterSample) -> ct.Sample:
    return ct.Sample(
        station_id=m.station_id,
        timestamp=m.timestamp,
        measurand=m.measurand,
        value=m.value,
        unit=m.unit,
        phase=m.phase,
        location=m.location,
        evse_id=m.evse_id,
    )


class SiteMeterSettings(BaseModel):
    """The `site_meter_*` fields of csms.settings.Settings."""

    site_meter_max_age_s: float = Field(default=60.0, ge=5, le=3600, allow_inf_nan=False)
    site_meter_hysteresis_w: float = Field(default=300.0, ge=0, le=100_000, allow_inf_nan=False)
    site_meter_min_resend_s: float = Field(default=15.0, ge=0, le=3600, allow_inf_nan=False)
    site_meter_check_s: float = Field(default=5.0, ge=0, le=3600, allow_inf_nan=False)
    site_meter_charger_sample_max_age_s: float = Field(
        default=120.0, ge=5, le=3600, allow_inf_nan=False
    )

    @classmethod
    def from_settings(cls, settings: object) -> SiteMeterSettings:
        return cls(
            **{
                name: getattr(settings, name)
                for name in cls.model_fields
                if getattr(settings, name, None) is not None
            }
        )


@dataclass(frozen=True)
class MeterView:
    """What GET /sites/{id}/meter and the envelope view show."""

    reading: MeterReading | None
    age_s: float | None
    fresh: bool
    max_age_s: float
    interval: BaseInterval | None
    base: SiteBase  # what the bounds use now


class SiteMeterService:
    def __init__(
        self,
        db: Database,
        envelopes: EnvelopeService,
        router: CommandRouter | None = None,
        *,
        clock: Clock = utcnow,
        settings: SiteMeterSettings | None = None,
    ) -> None:
        self._db = db
        self._envelopes = envelopes
        self._router = router
        self._clock = clock
        self.settings = settings or SiteMeterSettings()
        self._task: asyncio.Task[None] | None = None
        self._locks: dict[str, asyncio.Lock] = {}

    def now(self) -> datetime:
        return self._clock()

    # ---- readings ------------------------------------------------------------------------

    async def record(self, reading: MeterReading) -> MeterView:
        """Store the site's reading (NotFound: no such site) with its base; re-send the
        stations' profiles when the base changed materially."""
        async with self._db.read() as conn:
            site = await srepo.get_site(conn, reading.site_id)
        if site is None:
            raise NotFound(f"no site {reading.site_id!r}")
        interval = base_interval(
            reading.grid_import_w, await self._charger_powers(site.station_ids, reading)
        )
        kept = await self._db.write(lambda c: repo.save_reading(c, reading, interval))
        if not kept:
            log.info("site %s: meter reading older than the stored one ignored", site.id)
        await self.maybe_resend(site.id)
        return await self.view(site.id)

    async def main_meter_values(
        self, station_id: str, samples: list[MeterSample]
    ) -> MeterView | None:
        """A station's stored MeterValues: when it has evse-0 Inlet values and the station is
        its site's meter source, a reading of that site (recorded as `record` does). None when
        it is no reading (another station's main meter, no usable value, out of bounds)."""
        inlet = [s for s in (_sample(m) for m in samples) if is_inlet_sample(s)]
        if not inlet:
            return None
        async with self._db.read() as conn:
            site = await srepo.site_metered_by(conn, station_id)
            if site is None:
                return None  # not a site's meter: the station's evse-0 values stay its own
            found = inlet_reading(inlet)
            if found is None:  # registers only: the previous reading gives the mean power
                newest = max(s.timestamp for s in inlet)
                history = await repo.main_meter_registers(
                    conn, station_id, newest - timedelta(seconds=REGISTER_MAX_INTERVAL_S), newest
                )
                found = inlet_reading([*history, *inlet])
        if found is None:
            log.info("site %s: no usable main meter value from %s", site.id, station_id)
            return None
        try:
            reading = reading_from(
                site.id,
                measured_at=found.measured_at,
                received_at=self._clock(),
                source="ocpp",
                grid_import_w=found.grid_import_w,
            )
        except MeterReadingError as exc:
            log.info("site %s: main meter value of %s refused: %s", site.id, station_id, exc)
            return None
        return await self.record(reading)

    async def _charger_powers(
        self, station_ids: tuple[str, ...], reading: MeterReading
    ) -> list[ChargerPower]:
        if not station_ids:
            return []
        t = reading.measured_at
        max_age = self.settings.site_meter_charger_sample_max_age_s
        async with self._db.read() as conn:
            samples = await samples_repo.recent_samples(
                conn,
                station_ids,
                t - timedelta(seconds=max_age),
                t + timedelta(seconds=_AROUND_AFTER_S),
            )
            running = await v2g_repo.active_transactions(conn, set(station_ids))
        ratings = await self._envelopes.station_ratings(station_ids)
        out = []
        for station_id, (rated_c, rated_d) in zip(station_ids, ratings, strict=True):
            # Without a transaction only a sample around the reading counts (a car that just
            # left must not be taken as still charging for minutes).
            generated_w, _, _ = ct.station_der_readings(
                samples.get(station_id, []),
                t - timedelta(seconds=_AROUND_BEFORE_S),
                t + timedelta(seconds=_AROUND_AFTER_S),
                max_age if running.get(station_id) else _AROUND_BEFORE_S,
            )
            if generated_w is not None:
                power: float | None = -generated_w  # the station's + charging
            else:
                power = None if running.get(station_id) else 0.0
            out.append(ChargerPower(power, rated_c, rated_d))
        return out

    async def site_exists(self, site_id: str) -> bool:
        async with self._db.read() as conn:
            return await srepo.get_site(conn, site_id) is not None

    async def delete(self, site_id: str) -> bool:
        """Forget the site's reading (its chargers alone again); False when it had none."""
        gone = await self._db.write(lambda c: repo.delete(c, site_id))
        if gone:
            await self._envelopes.reenforce_site(site_id)
        return gone

    # ---- the base the envelope service uses ----------------------------------------------

    async def _stored(self, site_id: str) -> repo.StoredMeter | None:
        async with self._db.read() as conn:
            return await repo.latest(conn, site_id)

    def _base_of(self, stored: repo.StoredMeter | None, now: datetime) -> SiteBase:
        if stored is None:
            return site_base(None, fresh=False, margin_w=0.0)
        fresh = is_fresh(stored.reading, now, self.settings.site_meter_max_age_s)
        return site_base(
            stored.interval, fresh=fresh, margin_w=self.settings.site_meter_hysteresis_w
        )

    async def site_base(self, site_id: str, now: datetime) -> SiteBase | None:
        """The bases the site's bounds use at `now`; None without a meter reading."""
        stored = await self._stored(site_id)
        return None if stored is None else self._base_of(stored, now)

    async def view(self, site_id: str) -> MeterView:
        now = self._clock()
        stored = await self._stored(site_id)
        max_age = self.settings.site_meter_max_age_s
        if stored is None:
            return MeterView(None, None, False, max_age, None, self._base_of(None, now))
        return MeterView(
            stored.reading,
            age_s(stored.reading, now),
            is_fresh(stored.reading, now, max_age),
            max_age,
            stored.interval,
            self._base_of(stored, now),
        )

    # ---- re-sending ----------------------------------------------------------------------

    async def maybe_resend(self, site_id: str) -> bool:
        """Re-send the site's stations their profile when the bases changed by at least the
        hysteresis since the last re-send, and that was `min_resend_s` ago. True when sent."""
        lock = self._locks.setdefault(site_id, asyncio.Lock())
        async with lock:
            now = self._clock()
            stored = await self._stored(site_id)
            if stored is None:
                return False
            base = self._base_of(stored, now)
            current = base.pair
            material = changed_materially(
                stored.applied, current, self.settings.site_meter_hysteresis_w
            )
            if not material and (base.fresh or not tightens(stored.applied, current)):
                return False
            if stored.applied_at is not None and now - stored.applied_at < timedelta(
                seconds=self.settings.site_meter_min_resend_s
            ):
                return False  # the check loop sends it once the interval has passed
            claimed = await self._db.write(
                lambda c: repo.claim_applied(c, site_id, stored.applied_at, current, now)
            )
            if not claimed:
                return False  # another node did
            log.info("site %s: base %s -> %s, profiles re-sent", site_id, stored.applied, current)
            await self._envelopes.reenforce_site(site_id)
            return True

    def start(self) -> None:
        if self._task is None and self.settings.site_meter_check_s > 0:
            self._task = asyncio.create_task(self._loop(), name="site-meter-check")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.site_meter_check_s)
            try:
                await self.check_all()
            except Exception:  # one bad round must not end the loop
                log.exception("site meter check failed")

    async def check_all(self) -> list[str]:
        """One round: the metered sites with a station on this node (bounded by
        repo.MAX_METERED_SITES); the sites re-sent."""
        async with self._db.read() as conn:
            site_ids = await repo.metered_site_ids(conn)
            sites = [s for sid in site_ids if (s := await srepo.get_site(conn, sid)) is not None]
        done = []
        for site in sites:
            if self._router is not None and not any(
                self._router.is_local(s) for s in site.station_ids
            ):
                continue
            if await self.maybe_resend(site.id):
                done.append(site.id)
        return done
