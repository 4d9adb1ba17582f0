"""One site as a CSIP-AUS EndDevice of the aggregator: discovery, in-band registration (PIN
checked), ConnectionPoint (NMI), DER capability/settings/status, the DER programs' controls
polled at the server's rates, turned into the site's envelopes, Responses to replyTo.

`CsipSiteClient.tick(site)` does what is due for one site now (the poller calls it for the
sites this node holds). Stages and their rates (the server's pollRate, bounded):
  dcap  DeviceCapability + Time (clock offset)       pollRate of DeviceCapability
  edev  EndDevice list, registration, PIN, NMI       pollRate of EndDeviceList
  der   DER list; DERCapability, DERSettings         pollRate of DERList
  fsa   FunctionSetAssignments -> DERProgram lists   pollRate of the FSA list
  derp  DERPrograms -> DERControls + defaults        pollRate of the DERProgram list
DERStatus is PUT whenever the site's live state changes (checked every tick) and with `der`.
The controls are evaluated on every tick (start, end, Responses need no poll).
What is needed to resume is in csip_sites (csms.persistence.repositories.csip).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Protocol

from envoy_schema.server.schema.sep2.der import (
    DER,
    DefaultDERControl,
    DERControlListResponse,
    DERListResponse,
    DERProgramListResponse,
)
from envoy_schema.server.schema.sep2.device_capability import DeviceCapabilityResponse
from envoy_schema.server.schema.sep2.end_device import (
    EndDeviceListResponse,
    EndDeviceResponse,
    RegistrationResponse,
)
from envoy_schema.server.schema.sep2.function_set_assignments import (
    FunctionSetAssignmentsListResponse,
)
from envoy_schema.server.schema.sep2.response import DERControlResponse as DERControlReply
from envoy_schema.server.schema.sep2.response import ResponseType
from envoy_schema.server.schema.sep2.time import TimeResponse
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.domain.csip_controls import (
    ControlRecord,
    CsipControl,
    CsipDefaultControl,
    evaluate,
    unsent,
)
from csms.domain.envelopes import OperatingEnvelope
from csms.domain.sites import Site
from csms.integrations.csip import convert
from csms.integrations.csip.identity import sfdi_of_lfdi, site_lfdi
from csms.integrations.csip.transport import CsipError, CsipTransport
from csms.persistence.repositories import csip as repo
from csms.persistence.repositories import sites as sites_repo
from csms.persistence.repositories.csip import CsipSiteState

log = logging.getLogger("csms.csip")

SOURCE = "csip-aus"
STAGES = ("dcap", "edev", "der", "fsa", "derp")
MAX_PROGRAMS = 16
MAX_CONTROLS_PER_PROGRAM = 100
MAX_FSA = 8
MAX_CLOCK_OFFSET_S = 7 * 86_400.0


class Db(Protocol):
    """What the client needs of csms.persistence.database.Database."""

    def read(self) -> object: ...

    async def write(self, op: Callable[[AsyncConnection], Awaitable[object]]) -> object: ...


class SiteSource(Protocol):
    """The site's chargers as the client reports them (wired from the CSMS's live state)."""

    async def ratings(self, site: Site) -> convert.SiteRatings: ...

    async def live_state(self, site: Site) -> convert.SiteLiveState: ...


@dataclass(frozen=True)
class PollBounds:
    """Any server pollRate is kept within [min_s, max_s]; an error is retried after retry_s."""

    min_s: int = 10
    max_s: int = 3600
    retry_s: int = 30


class RegistrationStopped(Exception):
    """The site must not be served (PIN mismatch): visible in its state, retried slowly."""


@dataclass
class _Memory:
    """Per site, in memory only: what a restart re-reads from the server."""

    controls: list[CsipControl] = field(default_factory=list)
    defaults: list[CsipDefaultControl] = field(default_factory=list)
    fetched: bool = False
    live: convert.SiteLiveState | None = None
    envelopes_key: tuple[object, ...] | None = None
    set_grad_w: int | None = None  # the DERSettings setGradW last reported
    ratings: convert.SiteRatings | None = None  # as last reported in DERSettings


def _default_set_grad_w(defaults: Sequence[CsipDefaultControl]) -> int:
    """The setGradW (hundredths of a percent of setMaxW per second) the site applies: the
    DefaultDERControl's of the program with the lowest primacy; 0 (no limit) without one."""
    ramps = sorted(
        (d.primacy, d.limits.ramp_rate_pct_per_s)
        for d in defaults
        if d.limits.ramp_rate_pct_per_s is not None
    )
    return round(ramps[0][1] * 100) if ramps else 0


def _due(state: CsipSiteState, stage: str) -> datetime | None:
    text = state.hrefs.get(f"due:{stage}")
    return datetime.fromisoformat(text) if text else None


def _envelope_key(envelopes: Sequence[OperatingEnvelope]) -> tuple[object, ...]:
    # received_at (and a default's start, which is "now") change on every evaluation.
    return tuple(
        sorted(
            (
                (
                    e.control_id or "",
                    e.is_default,
                    None if e.is_default else e.start,
                    e.end,
                    e.export_limit_w,
                    e.import_limit_w,
                    e.generation_limit_w,
                    e.load_limit_w,
                    e.energize,
                    e.connect,
                    e.ramp_rate_pct_per_s,
                    e.ramp_time_s,
                )
                for e in envelopes
            ),
            key=repr,
        )
    )


class CsipSiteClient:
    def __init__(
        self,
        transport: CsipTransport,
        db: Db,
        source: SiteSource,
        *,
        on_envelopes_changed: Callable[[str], Awaitable[None]] | None = None,
        clock: Callable[[], datetime],
        bounds: PollBounds = PollBounds(),
        pen: int = 0,
        rng: random.Random | None = None,
        comm_loss_timeout_s: int | None = None,
    ) -> None:
        self.transport = transport
        self.db = db
        self.source = source
        self.on_envelopes_changed = on_envelopes_changed
        self.clock = clock
        self.bounds = bounds
        self.pen = pen
        self.rng = rng or random.Random()
        # None: controls are followed as scheduled while the server is unreachable (ALL-23);
        # set: they stop this long after the last successful poll and the defaults apply.
        self.comm_loss_timeout_s = comm_loss_timeout_s
        self._memory: dict[str, _Memory] = {}
        self._errors = 0  # errors recorded during the current tick

    # ---- state -------------------------------------------------------------------------

    async def load(self, site_id: str) -> CsipSiteState:
        async with self.db.read() as conn:  # type: ignore[attr-defined]
            state = await repo.get_state(conn, site_id)
        return state or CsipSiteState(site_id)

    async def _save(self, state: CsipSiteState) -> None:
        now = self.clock()

        async def op(conn: AsyncConnection) -> None:
            await repo.save_state(conn, state, now)

        await self.db.write(op)

    def _schedule(self, state: CsipSiteState, stage: str, now: datetime) -> None:
        rate = convert.bounded_poll_rate(
            state.poll_rates.get(stage), self.bounds.min_s, self.bounds.max_s
        )
        state.hrefs[f"due:{stage}"] = (now + timedelta(seconds=rate)).isoformat()

    def _is_due(self, state: CsipSiteState, stage: str, now: datetime) -> bool:
        due = _due(state, stage)
        return due is None or due <= now

    # ---- one tick ------------------------------------------------------------------------

    async def tick(self, site: Site) -> CsipSiteState:
        """Everything due for `site` now; errors are kept in its state, never raised."""
        state = await self.load(site.id)
        memory = self._memory.setdefault(site.id, _Memory())
        now = self.clock()
        self._errors = 0
        before = replace(state, hrefs=dict(state.hrefs), poll_rates=dict(state.poll_rates))
        try:
            site = await self._walk(site, state, memory, now)
            if memory.fetched:
                await self._evaluate(site, state, memory, now)
            if state.registration == "registered":
                await self._report_live_state(site, state, memory, now)
        except RegistrationStopped as stop:
            state.registration = "pin_mismatch"
            self._error(state, str(stop), now)
            for stage in STAGES:
                state.hrefs[f"due:{stage}"] = (
                    now + timedelta(seconds=self.bounds.max_s)
                ).isoformat()
        except (CsipError, convert.CsipValueError) as error:
            self._error(state, str(error), now)
            retry = (now + timedelta(seconds=self.bounds.retry_s)).isoformat()
            for stage in STAGES:
                if self._is_due(state, stage, now):
                    state.hrefs[f"due:{stage}"] = retry
        if state != before:
            await self._save(state)
        return state

    def _error(self, state: CsipSiteState, message: str, now: datetime) -> None:
        self._errors += 1
        log.warning("CSIP-AUS site %s: %s", state.site_id, message)
        state.last_error = message[:500]
        state.last_error_at = now

    async def _walk(self, site: Site, state: CsipSiteState, memory: _Memory, now: datetime) -> Site:
        if state.registration == "pin_mismatch" and not self._is_due(state, "edev", now):
            return site
        polled = False
        if self._is_due(state, "dcap", now) or "dcap" not in state.hrefs:
            await self._discover(state, now)
            polled = True
        if self._is_due(state, "edev", now) or state.registration != "registered":
            site = await self._register(site, state, now)
            polled = True
        if self._is_due(state, "der", now):
            await self._report_der(site, state, memory, now)
            polled = True
        if self._is_due(state, "fsa", now) or "programs" not in state.hrefs:
            await self._programs_lists(state, now)
            polled = True
        if self._is_due(state, "derp", now) or not memory.fetched:
            await self._controls(state, memory, now)
            polled = True
        if polled:
            state.last_poll_at = now
            if self._errors == 0 and state.registration == "registered":
                state.last_error = None  # a clean walk: the last error is over
            state.next_poll_at = min(d for s in STAGES if (d := _due(state, s)) is not None)
        return site

    # ---- stages --------------------------------------------------------------------------

    async def _discover(self, state: CsipSiteState, now: datetime) -> None:
        t = self.transport
        dcap = await t.get(t.dcap_path, DeviceCapabilityResponse)
        state.hrefs["dcap"] = t.dcap_path
        state.poll_rates["dcap"] = int(dcap.pollRate or 900)
        if dcap.EndDeviceListLink is None:
            raise CsipError("DeviceCapability has no EndDeviceListLink")
        state.hrefs["edev_list"] = dcap.EndDeviceListLink.href
        if dcap.MirrorUsagePointListLink is not None:
            state.hrefs["mup_list"] = dcap.MirrorUsagePointListLink.href
        if dcap.TimeLink is not None:
            tm = await t.get(dcap.TimeLink.href, TimeResponse)
            offset = float(tm.currentTime) - now.timestamp()
            if abs(offset) > MAX_CLOCK_OFFSET_S:
                raise CsipError(f"server clock {offset:.0f} s from ours: not believed")
            state.clock_offset_s = offset
        self._schedule(state, "dcap", now)

    async def _site_identity(self, site: Site, now: datetime) -> Site:
        """The site's LFDI/SFDI: its own, or derived once and stored on the site."""
        if site.lfdi is not None and site.sfdi is not None:
            return site
        lfdi = site.lfdi or site_lfdi(self.transport.aggregator_lfdi, site.id, self.pen)
        sfdi = site.sfdi or sfdi_of_lfdi(lfdi)

        async def op(conn: AsyncConnection) -> Site | None:
            await repo.set_site_identity(conn, site.id, lfdi.upper(), sfdi, now)
            return await sites_repo.get_site(conn, site.id)

        stored = await self.db.write(op)
        if not isinstance(stored, Site) or stored.lfdi is None or stored.sfdi is None:
            raise CsipError(f"site {site.id} has no LFDI/SFDI after storing one")
        return stored

    async def _register(self, site: Site, state: CsipSiteState, now: datetime) -> Site:
        t = self.transport
        site = await self._site_identity(site, now)
        assert site.lfdi is not None and site.sfdi is not None
        listing, devices = await t.get_list(
            state.hrefs["edev_list"], EndDeviceListResponse, "EndDevice"
        )
        state.poll_rates["edev"] = int(listing.pollRate or 900)
        href = next(
            (d.href for d in devices if (d.lFDI or "").upper() == site.lfdi.upper() and d.href),
            None,
        )
        if href is None:
            href = await t.post(
                state.hrefs["edev_list"], convert.end_device(site.lfdi, site.sfdi, now)
            )
            if not href:
                raise CsipError("EndDevice registration gave no Location")
            log.info("CSIP-AUS site %s registered as %s", site.id, href)
        state.edev_href = href
        device = await t.get(href, EndDeviceResponse)
        if device.RegistrationLink is not None and site.registration_pin is not None:
            registration = await t.get(device.RegistrationLink.href, RegistrationResponse)
            if int(registration.pIN) != site.registration_pin:
                raise RegistrationStopped(
                    f"the server's registration PIN for {href} is not the site's: not served"
                )
        for name, link in (
            ("der_list", device.DERListLink),
            ("fsa_list", device.FunctionSetAssignmentsListLink),
        ):
            if link is not None:
                state.hrefs[name] = link.href
        if site.nmi and state.hrefs.get("nmi_sent") != site.nmi:
            cp = device.ConnectionPointLink.href if device.ConnectionPointLink else f"{href}/cp"
            await t.put(cp, convert.connection_point(site.nmi))
            state.hrefs["nmi_sent"] = site.nmi
        if state.registration != "registered":
            state.registration = "registered"
            state.last_error = None
        self._schedule(state, "edev", now)
        return site

    async def _report_der(
        self, site: Site, state: CsipSiteState, memory: _Memory, now: datetime
    ) -> None:
        t = self.transport
        if "der_list" not in state.hrefs:
            raise CsipError("the EndDevice has no DERListLink")
        listing, ders = await t.get_list(
            state.hrefs["der_list"], DERListResponse, "DER_", max_items=4
        )
        state.poll_rates["der"] = int(listing.pollRate or 900)
        if not ders:
            raise CsipError("the server lists no DER for the site")
        der: DER = ders[0]
        base = der.href or f"{state.hrefs['der_list']}/1"
        links = {
            "dercap": der.DERCapabilityLink.href if der.DERCapabilityLink else f"{base}/dercap",
            "derg": der.DERSettingsLink.href if der.DERSettingsLink else f"{base}/derg",
            "ders": der.DERStatusLink.href if der.DERStatusLink else f"{base}/ders",
        }
        state.hrefs.update(links)
        ratings = await self.source.ratings(site)
        await t.put(links["dercap"], convert.der_capability(ratings))
        grad = _default_set_grad_w(memory.defaults)
        await t.put(links["derg"], convert.der_settings(ratings, now, grad))
        memory.set_grad_w, memory.ratings = grad, ratings
        memory.live = await self.source.live_state(site)
        await t.put(links["ders"], convert.der_status(memory.live, now))
        self._schedule(state, "der", now)

    async def _report_live_state(
        self, site: Site, state: CsipSiteState, memory: _Memory, now: datetime
    ) -> None:
        if "ders" not in state.hrefs:
            return
        live = await self.source.live_state(site)
        if live != memory.live:
            await self.transport.put(state.hrefs["ders"], convert.der_status(live, now))
            memory.live = live

    async def _programs_lists(self, state: CsipSiteState, now: datetime) -> None:
        """FunctionSetAssignments -> the DERProgram list hrefs (kept, '|'-joined)."""
        t = self.transport
        lists: list[str] = []
        if "fsa_list" in state.hrefs:
            listing, assignments = await t.get_list(
                state.hrefs["fsa_list"],
                FunctionSetAssignmentsListResponse,
                "FunctionSetAssignments",
                max_items=MAX_FSA,
            )
            state.poll_rates["fsa"] = int(listing.pollRate or 900)
            lists = [a.DERProgramListLink.href for a in assignments if a.DERProgramListLink]
        programs = "|".join(dict.fromkeys(lists))
        if programs != state.hrefs.get("programs"):
            # New or changed program lists (e.g. the DNSP's first program): read them now, not
            # at the rate of lists that were not there.
            state.hrefs.pop("due:derp", None)
        state.hrefs["programs"] = programs
        self._schedule(state, "fsa", now)

    async def _controls(self, state: CsipSiteState, memory: _Memory, now: datetime) -> None:
        t = self.transport
        controls: list[CsipControl] = []
        defaults: list[CsipDefaultControl] = []
        rates: list[int] = []
        for programs_href in filter(None, state.hrefs.get("programs", "").split("|")):
            listing, programs = await t.get_list(
                programs_href, DERProgramListResponse, "DERProgram", max_items=MAX_PROGRAMS
            )
            if listing.pollRate is not None:
                rates.append(int(listing.pollRate))
            for program in programs:
                program_href = program.href or programs_href
                primacy = program.primacy
                if program.DERControlListLink is not None:
                    _, docs = await t.get_list(
                        program.DERControlListLink.href,
                        DERControlListResponse,
                        "DERControl",
                        max_items=MAX_CONTROLS_PER_PROGRAM,
                    )
                    for doc in docs:
                        try:
                            controls.append(convert.control_of(doc, program_href, primacy))
                        except convert.CsipValueError as error:
                            self._error(state, f"control {doc.mRID} ignored: {error}", now)
                if program.DefaultDERControlLink is not None:
                    try:
                        dderc = await t.get(program.DefaultDERControlLink.href, DefaultDERControl)
                    except CsipError as error:
                        if error.status != 404:  # no default set: nothing to apply
                            raise
                    else:
                        defaults.append(convert.default_of(dderc, program_href, primacy))
        # No program list yet: look again at the FSA list's rate.
        state.poll_rates["derp"] = min(rates) if rates else state.poll_rates.get("fsa", 900)
        memory.controls, memory.defaults, memory.fetched = controls, defaults, True
        self._schedule(state, "derp", now)
        grad = _default_set_grad_w(defaults)
        if memory.ratings is not None and grad != memory.set_grad_w and "derg" in state.hrefs:
            # DERSettings say the ramp rate the site now follows (CACTUS ALL-13).
            await t.put(state.hrefs["derg"], convert.der_settings(memory.ratings, now, grad))
            memory.set_grad_w = grad

    # ---- evaluation ----------------------------------------------------------------------

    async def _evaluate(
        self, site: Site, state: CsipSiteState, memory: _Memory, now: datetime
    ) -> None:
        server_now = now + timedelta(seconds=state.clock_offset_s)
        records: dict[str, ControlRecord] = {}
        for data in state.control_records:
            try:
                record = ControlRecord.from_json(data)
            except (ValueError, TypeError) as error:  # a record we wrote, but bounded anyway
                self._error(state, f"stored control record dropped: {error}", now)
                continue
            records[record.mrid] = record
        result = evaluate(
            site.id,
            memory.controls,
            memory.defaults,
            records,
            server_now,
            lambda bound: self.rng.randint(min(0, bound), max(0, bound)),
            last_server_contact=(
                state.last_poll_at + timedelta(seconds=state.clock_offset_s)
                if state.last_poll_at is not None
                else None
            ),
            comm_loss_timeout_s=self.comm_loss_timeout_s,
        )
        out = dict(result.records)
        # Responses first: a record says "sent" only once its POST went through.
        for due in result.responses:
            if site.lfdi is None:
                break
            reply = DERControlReply(
                createdDateTime=int(due.created_at.timestamp()),
                endDeviceLFDI=site.lfdi.upper(),
                status=ResponseType(due.status),
                subject=due.subject_mrid,
            )
            try:
                await self.transport.post(due.reply_to, reply)
            except CsipError as error:
                self._error(state, f"Response {due.status} for {due.subject_mrid}: {error}", now)
                if due.subject_mrid in out:
                    out[due.subject_mrid] = unsent(out[due.subject_mrid], [due.status])
        state.control_records = [r.to_json() for r in out.values()]
        # The controls in force now; the defaults only when no control is.
        # (a default's fields during a control come as a non-default envelope with its mRID)
        in_force = {e.control_id for e in result.envelopes if e.covers(server_now)} - {None}
        controls = {c.mrid for c in memory.controls}
        state.active_controls = sorted(str(c) for c in (in_force & controls or in_force))
        key = _envelope_key(result.envelopes)
        if key != memory.envelopes_key:
            # Stored before the callback: whoever it wakes reads them.
            async def op(conn: AsyncConnection) -> None:
                await sites_repo.replace_envelopes(conn, site.id, SOURCE, result.envelopes)

            await self.db.write(op)
            memory.envelopes_key = key
            if self.on_envelopes_changed is not None:
                await self.on_envelopes_changed(site.id)
