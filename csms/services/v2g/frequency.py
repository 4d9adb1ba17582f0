"""Frequency response: the central under-frequency rule and the stations' local
freq-watt setting.

The central under-frequency rule keeps its state in the database (`v2g_rule_states`, one row
for the rule), changed by read-modify-write under that row's lock, so samples that alternate
between nodes are one stream: an event fires once and is cleared once, whichever node answers
each sample.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from csms.domain.errors import CsmsError, InvalidRequest
from csms.persistence.repositories import v2g as vrepo
from csms.services.common import ocpp_datetime
from csms.services.v2g.central_frequency import CentralFrequencyPart
from csms.services.v2g.fleet import Plugged
from csms.services.v2g.profiles import (
    FREQUENCY_PROFILE_ID,
    FREQUENCY_STACK_LEVEL,
)
from csms.v2g import (
    FreqWattCurve,
    UnderFrequencyEvent,
    UnderFrequencyRule,
)
from csms.v2g.armed_services import MAX_POWER_W, ArmedKind, ArmedService
from csms.v2g.envelope_caps import held_bounds
from csms.v2g.frequency import EventSnapshot, EventState
from csms.v2g.v2x import OperationMode, frequency_period, v21_profile

log = logging.getLogger(__name__)


# The row of v2g_rule_states holding the under-frequency rule: {vehicle id: EventSnapshot}.
UNDER_FREQUENCY_RULE = "under_frequency"


@dataclass(frozen=True)
class _FrequencyStep:
    """What one sample did to the shared rule state (decided under its row lock)."""

    fired: tuple[str, ...] = ()  # vehicle ids whose event started
    ended: tuple[str, ...] = ()  # vehicle ids whose event stopped before its duration
    error: str | None = None  # the sample was refused (out of time order): nothing changed


class FrequencyPart(CentralFrequencyPart):
    def _rule(self) -> UnderFrequencyRule:
        s = self.settings
        return UnderFrequencyRule(
            threshold_hz=s.frequency_rule_threshold_hz,
            hold_s=s.frequency_rule_hold_s,
            discharge_kw=s.frequency_discharge_kw,
            duration_s=s.frequency_duration_s,
            min_soc=s.frequency_min_soc,
            stop_soc=s.frequency_min_soc,
        )

    async def grid_frequency(self, hz: float, at: datetime) -> dict[str, list[dict[str, Any]]]:
        """Feed one frequency sample to each connected vehicle's under-frequency rule. When it
        fires, send that vehicle a discharge TxProfile lasting the rule's duration (the station
        falls back to the plan by itself afterwards); when the rule stops early (SoC down to
        its stop level) clear that profile at once. Returns {"fired": [...], "restored": [...]}.

        The rule state is shared by every node (the database row of UNDER_FREQUENCY_RULE): the
        node that answers a sample decides, under the row lock, what it changes, and alone
        sends the commands for it.
        """
        if not 40.0 <= hz <= 70.0:
            raise InvalidRequest("hz must be between 40 and 70")
        async with self._frequency_lock:
            contexts = await self._plugged()
            step = _FrequencyStep()
            if contexts:
                now = self._clock()
                step = await self._db.write(
                    lambda conn: self._frequency_step(conn, contexts, hz, at, now)
                )
            if step.error is not None:
                raise InvalidRequest(step.error)
            by_id = {ctx.vehicle.id: ctx for ctx in contexts}
            fired = [by_id[vid] for vid in step.fired]
            ended = [by_id[vid] for vid in step.ended]
            restored = list(await asyncio.gather(*(self._clear_frequency(c) for c in ended)))
            # 2.1 CentralFrequency stations follow their curve with this sample
            central = await self.central_frequency(contexts, hz, at) if contexts else []
            extra = {"central": central} if central else {}  # only where a station follows
            if not fired:
                return {"fired": [], "restored": restored, **extra}
            s = self.settings
            duration_s = round(s.frequency_duration_s)
            results = await asyncio.gather(
                *(
                    self._send_power(
                        ctx,
                        -s.frequency_discharge_kw * 1000.0,
                        duration_s,
                        FREQUENCY_PROFILE_ID,
                        FREQUENCY_STACK_LEVEL,
                        at,
                        frequency=True,  # CentralFrequency on a 2.1 station that offers it
                    )
                    for ctx in fired
                )
            )
            per_vehicle = {
                ctx.vehicle.id: result for ctx, result in zip(fired, results, strict=True)
            }
            requested = -s.frequency_discharge_kw * len(fired)
            held = sum(r["kw"] for r in results)  # within each station's envelope share
            await self._record_dispatch("frequency", at, duration_s, requested, held, per_vehicle)
            return {
                "fired": [dict(r, vehicle_id=v) for v, r in per_vehicle.items()],
                "restored": restored,
                **extra,
            }

    async def frequency_envelope_changed(
        self, site_id: str, station_ids: Sequence[str]
    ) -> list[dict[str, Any]]:
        """The site's envelope changed during a frequency response (issue 18): what its
        stations were sent is held to the new share. An under-frequency event still running is
        sent again for the time it has left (same profile id: it replaces the old one, cut to
        the new share); a CentralFrequency profile has its setpoint and bounds moved
        (`central_envelope_changed`). One result per message sent."""
        wanted = set(station_ids)
        now = self._clock()
        contexts = [c for c in await self._plugged() if c.vehicle.station_id in wanted]
        if not contexts:
            return []
        async with self._db.read() as conn:
            stored = await vrepo.get_rule_state(conn, UNDER_FREQUENCY_RULE) or {}
        s = self.settings
        resent = []
        for ctx in contexts:
            try:
                snapshot = EventSnapshot.from_dict(stored.get(ctx.vehicle.id) or {})
            except ValueError:
                continue
            left_s = snapshot.until - now.timestamp()
            if snapshot.state is EventState.ACTIVE and left_s >= 1:
                result = await self._send_power(
                    ctx,
                    -s.frequency_discharge_kw * 1000.0,
                    round(left_s),
                    FREQUENCY_PROFILE_ID,
                    FREQUENCY_STACK_LEVEL,
                    now,
                    frequency=True,
                )
                resent.append({**result, "vehicle_id": ctx.vehicle.id, "site_id": site_id})
        central = await self.central_envelope_changed(contexts, now)
        return resent + [{**r, "site_id": site_id} for r in central]

    async def _frequency_step(
        self,
        conn: AsyncConnection,
        contexts: list[Plugged],
        hz: float,
        at: datetime,
        now: datetime,
    ) -> _FrequencyStep:
        """Inside one write transaction: read the rule state under its row lock, feed the
        sample to each connected vehicle's event, write the state back. Depends on nothing but
        the database and its arguments (the writer may run it again after a rollback)."""
        stored = await vrepo.lock_rule_state(conn, UNDER_FREQUENCY_RULE, now)
        rule = self._rule()
        t = at.timestamp()
        events: dict[str, UnderFrequencyEvent] = {}
        for vid, data in stored.items():
            try:
                events[vid] = UnderFrequencyEvent(rule, EventSnapshot.from_dict(data))
            except ValueError:
                log.warning("dropping unreadable under-frequency state of %s: %r", vid, data)
        for ctx in contexts:
            last_t = events[ctx.vehicle.id].last_t if ctx.vehicle.id in events else None
            if last_t is not None and t < last_t:
                return _FrequencyStep(error=f"samples must come in time order ({t} after {last_t})")
        fired: list[str] = []
        ended: list[str] = []
        for ctx in contexts:
            vid = ctx.vehicle.id
            event = events.setdefault(vid, UnderFrequencyEvent(rule))
            started = event.events_started
            until = event.active_until
            event.feed(t, hz, ctx.soc)
            if event.events_started > started:
                fired.append(vid)
            elif until is not None and event.state is not EventState.ACTIVE and t < until:
                ended.append(vid)  # stopped before its duration: SoC reached stop_soc
        connected = {ctx.vehicle.id for ctx in contexts}
        state = {
            vid: event.snapshot().as_dict()
            for vid, event in sorted(events.items())
            # an idle vehicle that is not plugged in has nothing to remember
            if vid in connected or event.state is not EventState.IDLE
        }
        await vrepo.save_rule_state(conn, UNDER_FREQUENCY_RULE, state, now)
        return _FrequencyStep(tuple(fired), tuple(ended))

    async def _clear_frequency(self, ctx: Plugged) -> dict[str, Any]:
        station_id = ctx.vehicle.station_id
        assert station_id is not None
        result: dict[str, Any] = {"vehicle_id": ctx.vehicle.id, "station_id": station_id}
        try:
            answer = await self._commands.send(
                station_id, "ClearChargingProfile", {"chargingProfileId": FREQUENCY_PROFILE_ID}
            )
            result["status"] = str(answer.get("status"))
        except CsmsError as exc:
            result["status"], result["error"] = "failed", str(exc)
        return result

    async def set_frequency_response(
        self, station_id: str, curve: list[list[float]] | None, enabled: bool
    ) -> dict[str, Any]:
        """A 2.1 station offering LocalFrequency gets it natively (a LocalFrequency TxProfile
        with the curve as v2xFreqWattCurve, `_local_frequency`); otherwise SetVariables
        V2XCtrlr.FreqWattCurve (JSON [[Hz, W], ...]) and FreqWattEnabled (the agent's 2.0.1
        variables). The setting is stored when the station accepts."""
        if curve is not None:
            try:
                FreqWattCurve(tuple((float(p[0]), float(p[1])) for p in curve))
            except (ValueError, IndexError, TypeError) as exc:
                raise InvalidRequest(f"curve: {exc}") from exc
            if not 2 <= len(curve) <= 20 or any(not 40 <= p[0] <= 70 for p in curve):
                raise InvalidRequest("curve: 2 to 20 points, Hz between 40 and 70")
        if await self.is_v21(station_id):
            caps = await self.capabilities(station_id)
            if caps.frequency_mode() is OperationMode.LOCAL_FREQUENCY:
                return await self._local_frequency(station_id, curve, enabled)
            if caps.frequency_mode() is OperationMode.CENTRAL_FREQUENCY:
                return await self._central_setting(station_id, curve, enabled)
        data: list[dict[str, Any]] = []
        if curve is not None:
            data.append(
                {
                    "component": {"name": "V2XCtrlr"},
                    "variable": {"name": "FreqWattCurve"},
                    "attributeValue": json.dumps([[float(h), float(w)] for h, w in curve]),
                }
            )
        data.append(
            {
                "component": {"name": "V2XCtrlr"},
                "variable": {"name": "FreqWattEnabled"},
                "attributeValue": "true" if enabled else "false",
            }
        )
        answer = await self._commands.send(station_id, "SetVariables", {"setVariableData": data})
        results = answer.get("setVariableResult", [])
        accepted = bool(results) and all(r.get("attributeStatus") == "Accepted" for r in results)
        if accepted:
            now = self._clock()
            async with self._db.read() as conn:
                current = await vrepo.get_station_settings(conn, station_id)
            updated = replace(
                current,
                freq_watt_enabled=enabled,
                freq_watt_curve=curve if curve is not None else current.freq_watt_curve,
            )
            await self._db.write(lambda c: vrepo.save_station_settings(c, updated, now))
        return {"accepted": accepted, "results": results, "mode": "variables"}

    async def _central_setting(
        self, station_id: str, curve: list[list[float]] | None, enabled: bool
    ) -> dict[str, Any]:
        """2.1 CentralFrequency: the CSMS follows the curve with each frequency sample
        (central_frequency.py); switching it off clears the station's Dynamic profile."""
        async with self._db.read() as conn:
            current = await vrepo.get_station_settings(conn, station_id)
        points = curve if curve is not None else current.freq_watt_curve
        if enabled and not points:
            raise InvalidRequest("curve: give one (the station has none stored)")
        results = [] if enabled else [await self.stop_central_frequency(station_id)]
        # Unknown: there was no profile to clear, which is what switching off wants
        accepted = all(r.get("status") in ("Accepted", "Unknown") for r in results)
        if accepted:
            now = self._clock()
            updated = replace(current, freq_watt_enabled=enabled, freq_watt_curve=points)
            await self._db.write(lambda c: vrepo.save_station_settings(c, updated, now))
        return {"accepted": accepted, "results": results, "mode": "CentralFrequency"}

    async def _local_frequency(
        self, station_id: str, curve: list[list[float]] | None, enabled: bool
    ) -> dict[str, Any]:
        """2.1 LocalFrequency: enabled -> a TxProfile above the plan (FREQUENCY_STACK_LEVEL, no
        duration) whose one period follows the curve around a 0 W baseline within the EV's
        bounds; disabled -> that profile cleared, the plan resumes."""
        async with self._db.read() as conn:
            current = await vrepo.get_station_settings(conn, station_id)
        points = curve if curve is not None else current.freq_watt_curve
        results: list[dict[str, Any]] = []
        if enabled:
            if not points:
                raise InvalidRequest("curve: give one (the station has none stored)")
            record = await self._station_vehicle(station_id, None)
            ctx = await self.session_context(record, self._clock())
            tx = ctx.transaction
            if tx is None or tx.evse_id is None:
                raise InvalidRequest(f"station {station_id!r} has no active transaction")
            now = self._clock()
            # the station's envelope share in force now (an envelope change re-sends it)
            bounds, _ = held_bounds(
                await self.power_bounds(ctx),
                await self.power_caps(station_id, now),
                now,
                now + timedelta(seconds=1),
            )
            try:
                period = frequency_period([(float(h), float(w)) for h, w in points], bounds)
                profile = v21_profile(
                    [period],
                    profile_id=FREQUENCY_PROFILE_ID,
                    stack_level=FREQUENCY_STACK_LEVEL,
                    start_schedule=ocpp_datetime(self._clock()),
                    duration_s=None,
                    transaction_id=tx.transaction_id,
                )
            except ValueError as exc:
                raise InvalidRequest(f"curve: {exc}") from exc
            answer = await self._commands.send(
                station_id,
                "SetChargingProfile",
                {"evseId": tx.evse_id, "chargingProfile": profile},
            )
            if answer.get("status") == "Accepted":  # an envelope change sends it again
                armed = ArmedService(
                    ArmedKind.LOCAL_FREQUENCY,
                    tx.transaction_id,
                    tx.evse_id,
                    None,
                    bounds,
                    tuple(
                        (float(h), max(-MAX_POWER_W, min(MAX_POWER_W, float(w)))) for h, w in points
                    ),
                )
                await self.remember_armed(station_id, ArmedKind.LOCAL_FREQUENCY, armed)
        else:
            answer = await self._commands.send(
                station_id, "ClearChargingProfile", {"chargingProfileId": FREQUENCY_PROFILE_ID}
            )
            if answer.get("status") in ("Accepted", "Unknown"):
                await self.remember_armed(station_id, ArmedKind.LOCAL_FREQUENCY, None)
        results.append(answer)
        # ClearChargingProfile answers Unknown when nothing was set: nothing to undo, fine.
        accepted = answer.get("status") in (("Accepted",) if enabled else ("Accepted", "Unknown"))
        if accepted:
            now = self._clock()
            updated = replace(
                current,
                freq_watt_enabled=enabled,
                freq_watt_curve=points if points is not None else current.freq_watt_curve,
            )
            await self._db.write(lambda c: vrepo.save_station_settings(c, updated, now))
        return {"accepted": accepted, "results": results, "mode": "LocalFrequency"}
