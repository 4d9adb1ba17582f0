"""Enforcing a site's operating envelope on its stations (issue 18; wire contract: README).

Whenever a site's envelopes change (the CSIP-AUS client stores them and calls
`envelopes_changed`; the operator API calls `replace_operator_envelopes`), each station of the
site gets one SetChargingProfile: a ChargingStationMaxProfile (id 62007, stack level 8, evseId
0) whose periods are the station's share of the envelope for the next 24 h
(csms.domain.envelopes). A site without any envelope any more gets ClearChargingProfile 62007.
The profile is sent again when the station boots or reconnects, and when the timeline it
carried runs short (more periods than the station holds, or half the 24 h gone). An OCPP 2.1
station also gets its share as a DER LimitMaxDischarge with each profile (and re-sent when the
envelope period in force ends): csms.services.envelope_der.

Each attempt is recorded as a station event of kind `EnvelopeEnforcement` (what was sent, the
answer or why nothing was), so every node reads the same state (GET /sites/{id}/envelope).
Commands go through the CommandService: K01 checks, the station's version, and in multi-node
the node that holds the station. The background loop of each node looks after the stations
whose websocket it holds.

After an envelope change the listeners (the V2G re-plan, the frequency-response re-send, the
Home Assistant bridge) are called once per change, whichever process stored it: the site's
envelope state (its envelopes, its stations and the envelopes in force at the time, so an
envelope starting or ending by its own time counts as a change: `announced_state`) is
swapped compare-and-set in sites.envelopes_announced by the node that calls them, on the API
path at once and otherwise in the refresh round (`announce_stored_changes`: `csms site`,
another node's CSIP client). A household-meter re-send (`reenforce_site`, rate-limited and
claimed by site_meters) calls them too: the shares changed. A station taken out of its site
by another process gets its profile cleared in the same round by the node holding it
(`release_unsited`).

A station's rating (what its share is proportional to, and its bound where the envelope does
not limit a direction): csms.domain.station_ratings (device model, else the settings'
fallback), as the CSIP-AUS client reports it. The rest of the site (household load, solar)
counts where the site's household meter is known: `site_base` (csms.services.site_meters) gives
the bases the bounds are computed with; without it the site limits apply to the chargers alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from csms.domain.envelope_ramps import profile_bounds_at, ramp_periods
from csms.domain.envelopes import (
    DEFAULT_PERIODS_PER_SCHEDULE,
    TIMELINE_HORIZON_S,
    ChargerBounds,
    OperatingEnvelope,
    StationPeriod,
    announced_state,
    clear_payload,
    envelope_at,
    envelope_profile,
    envelope_timeline,
    envelopes_fingerprint,
    station_timelines,
)
from csms.domain.errors import InvalidRequest, NotFound
from csms.domain.site_meter import SiteBase, metered_charger_bounds, metered_station_timelines
from csms.domain.station_ratings import RatingFallback
from csms.persistence import repositories as repo
from csms.persistence.database import Database
from csms.persistence.repositories import sites as srepo
from csms.routing.base import CommandRouter
from csms.services.common import Clock, CommandSender, utcnow
from csms.services.envelope_attempts import send_and_record
from csms.services.envelope_der import EnvelopeDerControls
from csms.services.station_ratings import station_ratings
from csms.v2g.vehicle import PowerCap
from v2g_shared.ocpp_versions import OcppVersion, parse_ocpp_version

log = logging.getLogger(__name__)

EVENT_KIND = "EnvelopeEnforcement"
MAX_CAP_KW = 1000.0  # csms.v2g.bounds.VEHICLE_POWER_KW
# ClearChargingProfile answers after which the station holds no envelope profile.
_CLEARED = ("Accepted", "Unknown")
OPERATOR_SOURCE = "operator"
MAX_OPERATOR_ENVELOPES = 100
# Failed attempts (not Offline: a reconnect re-sends) are tried again after this long.
RETRY_AFTER_S = 300.0
_RETRIED = ("Timeout", "CallError", "Error", "Unreachable")
# Re-send once half the horizon is gone, so envelopes known further ahead always arrive.
REFRESH_AFTER_S = TIMELINE_HORIZON_S / 2
# Claims lost in a row before an announcement is left to the next round.
_ANNOUNCE_TRIES = 3
# Stations in no site that may hold a profile, looked at per round (the rest: next rounds).
RELEASE_PER_ROUND = 500

# Called with (site id, its station ids) after an envelope change was enforced: the V2G
# planner re-plans those stations' vehicles within the new envelope.
ChangeListener = Callable[[str, Sequence[str]], Awaitable[None]]
# The site base at a moment (csms.services.site_meters.SiteMeterService.site_base).
SiteBaseSource = Callable[[str, datetime], Awaitable[SiteBase | None]]


@dataclass(frozen=True)
class StationEnforcement:
    """The last enforcement attempt on a station, as recorded."""

    station_id: str
    action: str | None  # SetChargingProfile | ClearChargingProfile | None: never tried
    status: str  # the station's status, or Offline / Invalid / Timeout / Error / Pending
    sent_at: datetime | None
    fingerprint: str | None
    payload: dict[str, Any] | None
    answer: dict[str, Any] | None
    detail: str | None = None
    resend_at: datetime | None = None  # when the profile sent runs short


@dataclass(frozen=True)
class EnvelopeView:
    """GET /sites/{id}/envelope."""

    site_id: str
    now: datetime
    in_force: OperatingEnvelope | None
    charger_bounds: ChargerBounds
    stations: list[tuple[str, ChargerBounds, bool, StationEnforcement]]
    upcoming: list[OperatingEnvelope]


class EnvelopeService:
    def __init__(
        self,
        db: Database,
        commands: CommandSender,
        router: CommandRouter | None = None,
        *,
        clock: Clock = utcnow,
        check_interval_s: float = 30.0,
        reconnect_grace_s: float = 2.0,
        rating_fallback: RatingFallback | None = None,
    ) -> None:
        self._db = db
        self.rating_fallback = rating_fallback or RatingFallback()
        self._commands = commands
        self._router = router
        self._clock = clock
        self.check_interval_s = check_interval_s
        self.reconnect_grace_s = reconnect_grace_s
        self._listeners: list[ChangeListener] = []
        self._locks: dict[str, asyncio.Lock] = {}
        self._sent_since: dict[str, int] = {}  # station -> sends, to skip a redundant re-send
        self._task: asyncio.Task[None] | None = None
        # 2.1 stations also get the envelope as a DER LimitMaxDischarge (beside the profile).
        self.der = EnvelopeDerControls(db, commands, self._ratings)
        self.site_base: SiteBaseSource | None = None  # the household meter, where known

    def now(self) -> datetime:
        return self._clock()

    def add_listener(self, listener: ChangeListener) -> None:
        self._listeners.append(listener)

    # ---- what the CSIP-AUS client and the API call --------------------------------------

    async def envelopes_changed(self, site_id: str) -> None:
        """The site's envelopes changed (already stored): enforce them on each of its stations
        now, then let the planners re-plan within them, unless that state was announced
        already (by another node's refresh round, or it is no change). Unknown site:
        NotFound."""
        async with self._db.read() as conn:
            site = await srepo.get_site(conn, site_id)
        if site is None:
            raise NotFound(f"no site {site_id!r}")
        await self._enforce_site(site_id, site.station_ids)
        await self._announce(site_id)

    async def _call_listeners(self, site_id: str, station_ids: Sequence[str]) -> None:
        for listener in self._listeners:
            try:
                await listener(site_id, station_ids)
            except Exception:  # a planner failing must not undo the enforcement
                log.exception("re-plan after the envelope change of site %s failed", site_id)

    async def _announce(self, site_id: str) -> bool:
        """Call the listeners if the site's envelope state is not the one last announced and
        this node wins the claim for it. True when called."""
        for _ in range(_ANNOUNCE_TRIES):
            now = self._clock()
            async with self._db.read() as conn:
                site = await srepo.get_site(conn, site_id)
                if site is None:
                    return False
                envelopes = await srepo.site_envelopes(conn, site_id)
                seen = await srepo.envelopes_announced(conn, site_id)
            state = announced_state(envelopes, site.station_ids, now)
            if seen == state:
                return False  # announced already (by another node), or no change
            claim = partial(srepo.claim_announcement, site_id=site_id, seen=seen, state=state)
            if await self._db.write(claim):
                await self._call_listeners(site_id, site.station_ids)
                return True
            # Lost: another node announced a newer state meanwhile; look again.
        return False

    async def replace_operator_envelopes(
        self, site_id: str, envelopes: Sequence[OperatingEnvelope]
    ) -> None:
        """The operator's own envelopes for the site become `envelopes` (empty: none), then
        enforced at once."""
        if len(envelopes) > MAX_OPERATOR_ENVELOPES:
            raise InvalidRequest(f"at most {MAX_OPERATOR_ENVELOPES} operator envelopes per site")
        now = self._clock()
        fixed = [replace(e, site_id=site_id, source=OPERATOR_SOURCE) for e in envelopes]
        async with self._db.read() as conn:
            if await srepo.get_site(conn, site_id) is None:
                raise NotFound(f"no site {site_id!r}")
        await self._db.write(lambda c: srepo.replace_envelopes(c, site_id, OPERATOR_SOURCE, fixed))
        log.info("site %s: %d operator envelopes at %s", site_id, len(fixed), now.isoformat())
        await self.envelopes_changed(site_id)

    # ---- stations (re)connecting ------------------------------------------------------------

    async def station_booted(self, station_id: str) -> None:
        """A BootNotification was accepted: the station may have lost its profiles."""
        await self.enforce_station(station_id)

    async def station_connected(self, station_id: str) -> None:
        """A station already accepted (re)connected: after a short grace (a booting station
        sends BootNotification first), send its profile unless that happened meanwhile."""
        before = self._sent_since.get(station_id, 0)
        await asyncio.sleep(self.reconnect_grace_s)
        if self._sent_since.get(station_id, 0) == before:
            await self.enforce_station(station_id)

    async def enforce_station(self, station_id: str) -> StationEnforcement | None:
        """Send one station what its site's envelope asks now (None: it is in no site)."""
        async with self._db.read() as conn:
            site_id = await srepo.site_of_station(conn, station_id)
            site = None if site_id is None else await srepo.get_site(conn, site_id)
        if site is None:
            return None
        results = await self._enforce_site(site.id, site.station_ids, only=station_id)
        return results.get(station_id)

    async def _may_hold_profile(self, station_id: str) -> bool:
        """Whether the station may still hold an envelope profile: it was sent one and no
        clearing of it went through since (so a station never sent one is not bothered)."""
        last = await self.last_enforcement(station_id)
        if last.action is None:
            return False
        return not (last.action == "ClearChargingProfile" and last.status in _CLEARED)

    async def release_station(self, station_id: str) -> StationEnforcement | None:
        """The station left its site: clear the envelope profile it was sent (None: it holds
        none)."""
        if not await self._may_hold_profile(station_id):
            return None
        return await self._send_clear(station_id, "", self._clock())

    # ---- the work ---------------------------------------------------------------------------

    async def reenforce_site(self, site_id: str) -> dict[str, StationEnforcement]:
        """Send the site's stations their profile again (the site base changed), then call
        the listeners: the vehicles are re-planned within the new shares. The caller makes
        this once per base change (site_meters: claimed, at most every min_resend_s). An
        unknown site: nothing."""
        async with self._db.read() as conn:
            site = await srepo.get_site(conn, site_id)
        if site is None:
            return {}
        sent = await self._enforce_site(site.id, site.station_ids)
        await self._call_listeners(site.id, site.station_ids)
        return sent

    async def station_ratings(self, station_ids: Sequence[str]) -> list[tuple[float, float]]:
        return await self._ratings(station_ids)

    async def _base(self, site_id: str, now: datetime) -> SiteBase | None:
        return None if self.site_base is None else await self.site_base(site_id, now)

    async def _ratings(self, station_ids: Sequence[str]) -> list[tuple[float, float]]:
        async with self._db.read() as conn:
            return await station_ratings(conn, station_ids, self.rating_fallback)

    async def timelines(
        self, site_id: str, station_ids: Sequence[str], now: datetime
    ) -> tuple[list[OperatingEnvelope], list[list[StationPeriod]]]:
        """The site's envelopes and each station's bounds timeline from `now`."""
        async with self._db.read() as conn:
            envelopes = await srepo.site_envelopes(conn, site_id)
        ratings = await self._ratings(station_ids)
        timeline = envelope_timeline(envelopes, now)
        base = await self._base(site_id, now)
        if base is not None:
            return envelopes, metered_station_timelines(timeline, ratings, base)
        return envelopes, station_timelines(timeline, ratings)

    async def _enforce_site(
        self, site_id: str, station_ids: Sequence[str], *, only: str | None = None
    ) -> dict[str, StationEnforcement]:
        now = self._clock()
        envelopes, per_station = await self.timelines(site_id, station_ids, now)
        fingerprint = envelopes_fingerprint(envelopes)
        jobs = []
        for station_id, periods in zip(station_ids, per_station, strict=True):
            if only is not None and station_id != only:
                continue
            if envelopes:
                jobs.append(self._send_profile(site_id, station_id, periods, fingerprint, now))
            elif await self._may_hold_profile(station_id):
                jobs.append(self._send_clear(station_id, fingerprint, now))
        results = await asyncio.gather(*jobs)
        return {r.station_id: r for r in results}

    async def _max_periods(self, station_id: str) -> int:
        async with self._db.read() as conn:
            found = await repo.list_device_variables(
                conn, station_id, "SmartChargingCtrlr", "PeriodsPerSchedule"
            )
        for v in found:
            if v.attribute_type == "Actual" and v.value is not None:
                with contextlib.suppress(ValueError):
                    n = int(v.value)
                    if 1 <= n <= 1024:
                        return n
        return DEFAULT_PERIODS_PER_SCHEDULE

    async def _version(self, station_id: str) -> OcppVersion:
        async with self._db.read() as conn:
            station = await repo.get_station(conn, station_id)
        text = None if station is None else station.ocpp_version
        try:
            return parse_ocpp_version(str(text)) if text else OcppVersion.V201
        except ValueError:
            return OcppVersion.V201

    async def _send_profile(
        self,
        site_id: str,
        station_id: str,
        periods: Sequence[StationPeriod],
        fingerprint: str,
        now: datetime,
    ) -> StationEnforcement:
        version = await self._version(station_id)
        max_periods = await self._max_periods(station_id)
        # A control's rampTms: from the bounds the station last accepted, stepped (issue 18).
        # The 2.1 DER limit below takes the unstepped periods: its new value at once (a ramp
        # down there is immediate, never slower; a ramp up is held back by the profile).
        last = await self.last_enforcement(station_id)
        held = last.payload if last.action == "SetChargingProfile" else None
        current = profile_bounds_at(held, now) if last.status == "Accepted" else None
        ramped = ramp_periods(periods, current=current, max_steps=max_periods - 2)
        built = envelope_profile(
            ramped,
            site_id=site_id,
            now=now,
            ocpp_2_1=version is OcppVersion.V21,
            max_periods=max_periods,
        )
        refresh = now + timedelta(seconds=REFRESH_AFTER_S)
        resend_at = min(built.resend_at or refresh, refresh)
        resend_at = min(resend_at, self.der.resend_before(version, periods, now) or resend_at)
        record = await self._send(
            station_id, "SetChargingProfile", built.payload, fingerprint, now, resend_at
        )
        await self.der.follow_profile(station_id, version, site_id, periods, now)
        return record

    async def _send_clear(
        self, station_id: str, fingerprint: str, now: datetime
    ) -> StationEnforcement:
        record = await self._send(
            station_id, "ClearChargingProfile", clear_payload(), fingerprint, now
        )
        await self.der.clear(station_id, now)
        return record

    async def _send(
        self,
        station_id: str,
        action: str,
        payload: dict[str, Any],
        fingerprint: str,
        now: datetime,
        resend_at: datetime | None = None,
    ) -> StationEnforcement:
        lock = self._locks.setdefault(station_id, asyncio.Lock())
        async with lock:  # one attempt per station at a time: the last one sent wins
            self._sent_since[station_id] = self._sent_since.get(station_id, 0) + 1
            sent = await send_and_record(
                self._db,
                self._commands,
                log,
                kind=EVENT_KIND,
                station_id=station_id,
                action=action,
                payload=payload,
                now=now,
                resend_at=resend_at,
                what="profile",
                recorded_with={"fingerprint": fingerprint},
            )
            return StationEnforcement(
                station_id,
                action,
                sent.status,
                now,
                fingerprint,
                payload,
                sent.answer,
                sent.detail,
                resend_at,
            )

    async def last_enforcement(self, station_id: str) -> StationEnforcement:
        async with self._db.read() as conn:
            page = await repo.list_events(conn, station_id, 0, 1, kind=EVENT_KIND)
        if not page.items:
            return StationEnforcement(station_id, None, "Pending", None, None, None, None)
        e = page.items[0]
        p = e.payload
        return StationEnforcement(
            station_id,
            p.get("action"),
            str(p.get("status")),
            e.received_at,
            p.get("fingerprint"),
            p.get("request"),
            p.get("answer"),
            p.get("detail"),
            _parse_time(p.get("resend_at")),
        )

    async def view(self, site_id: str) -> EnvelopeView:
        """The envelope in force, the bounds it leaves and what each station holds."""
        now = self._clock()
        async with self._db.read() as conn:
            site = await srepo.get_site(conn, site_id)
        if site is None:
            raise NotFound(f"no site {site_id!r}")
        envelopes, per_station = await self.timelines(site_id, site.station_ids, now)
        ratings = await self._ratings(site.station_ids)
        in_force = envelope_at(envelopes, now)
        total = metered_charger_bounds(
            in_force,
            sum(c for c, _ in ratings),
            sum(d for _, d in ratings),
            await self._base(site_id, now),
        )
        fingerprint = envelopes_fingerprint(envelopes)
        stations = []
        for station_id, periods in zip(site.station_ids, per_station, strict=True):
            last = await self.last_enforcement(station_id)
            enforced = (
                bool(envelopes)
                and last.action == "SetChargingProfile"
                and last.status == "Accepted"
                and last.fingerprint == fingerprint
            )
            stations.append((station_id, periods[0].bounds, enforced, last))
        horizon = now + timedelta(seconds=TIMELINE_HORIZON_S)
        upcoming = sorted(
            (e for e in envelopes if e.start < horizon and (e.end is None or e.end > now)),
            key=lambda e: (e.start, e.received_at),
        )
        return EnvelopeView(site_id, now, in_force, total, stations, upcoming)

    async def power_caps(self, station_id: str, now: datetime) -> tuple[PowerCap, ...]:
        """The station's bounds timeline as the planners' caps (kW); empty when its site has
        no envelope (or it is in no site)."""
        async with self._db.read() as conn:
            site_id = await srepo.site_of_station(conn, station_id)
            site = None if site_id is None else await srepo.get_site(conn, site_id)
            envelopes = [] if site is None else await srepo.site_envelopes(conn, site.id)
        if site is None or not envelopes:
            return ()
        _, per_station = await self.timelines(site.id, site.station_ids, now)
        periods = per_station[site.station_ids.index(station_id)]
        return tuple(
            PowerCap(
                p.start,
                p.end,
                min(p.bounds.max_charge_w / 1000.0, MAX_CAP_KW),
                min(p.bounds.max_discharge_w / 1000.0, MAX_CAP_KW),
            )
            for p in periods
        )

    # ---- background: timelines running short ------------------------------------------------

    def start(self) -> None:
        if self._task is None and self.check_interval_s > 0:
            self._task = asyncio.create_task(self._loop(), name="envelope-enforcer")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.check_interval_s)
            try:
                await self.refresh_due()
            except Exception:  # one bad round must not end the loop
                log.exception("envelope refresh round failed")
            try:
                await self.release_unsited()
            except Exception:
                log.exception("envelope release round failed")
            try:
                await self.announce_stored_changes()
            except Exception:
                log.exception("envelope change announcement round failed")

    async def release_unsited(self) -> list[str]:
        """Clear the envelope profile of the stations this node holds that may still hold one
        but belong to no site any more: taken out by another process (`csms site`, which
        holds no station, or another node's API), so `release_station` was not called here.
        A failed clear is tried again after RETRY_AFTER_S, an Offline one once the station is
        here. The station ids sent to."""
        now = self._clock()
        async with self._db.read() as conn:
            found = await srepo.unsited_stations_holding(
                conn, EVENT_KIND, _CLEARED, RELEASE_PER_ROUND
            )
        done = []
        for station_id, last, sent_at in found:
            if self._router is not None and not self._router.is_local(station_id):
                continue
            failed = last.get("status") in _RETRIED
            if failed and now - sent_at < timedelta(seconds=RETRY_AFTER_S):
                continue
            async with self._db.read() as conn:  # joined a site since: refresh_due's then
                if await srepo.site_of_station(conn, station_id) is not None:
                    continue
            await self._send_clear(station_id, "", now)
            done.append(station_id)
        return done

    async def announce_stored_changes(self) -> list[str]:
        """Call the listeners for each site whose envelope state changed since they were last
        called: a change through another process (`csms site`, another node's CSIP-AUS
        client, a write to the database), or an envelope that started or ended by its own
        time since (seen at the round's time, so up to check_interval_s late). Every site,
        whichever node holds its stations (the API path does the same); the claim makes one
        node call them per change. The site ids announced."""
        async with self._db.read() as conn:
            site_ids = [site.id for site in await srepo.list_sites(conn)]
        return [site_id for site_id in site_ids if await self._announce(site_id)]

    async def refresh_due(self) -> list[str]:
        """Send again the stations this node holds whose profile is not the site's current
        one (envelopes changed through another process, e.g. `csms site` or another node's
        CSIP client), ran short (its resend time passed), or whose last attempt failed
        RETRY_AFTER_S ago; a station of a site without envelopes that may still hold a
        profile gets it cleared. Read from the recorded attempts, so it holds across nodes
        and restarts. The station ids sent to."""
        now = self._clock()
        async with self._db.read() as conn:
            sites = await srepo.list_sites(conn)
        done = []
        for site in sites:
            local = [
                s for s in site.station_ids if self._router is None or self._router.is_local(s)
            ]
            if not local:
                continue
            async with self._db.read() as conn:
                envelopes = await srepo.site_envelopes(conn, site.id)
            fingerprint = envelopes_fingerprint(envelopes)
            for station_id in local:
                last = await self.last_enforcement(station_id)
                if last.sent_at is not None and last.status in _RETRIED:
                    due = now - last.sent_at >= timedelta(seconds=RETRY_AFTER_S)
                elif envelopes:
                    due = (
                        last.action != "SetChargingProfile"
                        or last.status == "Offline"  # it is connected here now
                        or last.fingerprint != fingerprint
                        or (last.resend_at is not None and last.resend_at <= now)
                    )
                else:
                    due = await self._may_hold_profile(station_id)
                due = due or await self.der.retry_due(station_id, now)
                if due:
                    await self.enforce_station(station_id)
                    done.append(station_id)
        return done


def _parse_time(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None
