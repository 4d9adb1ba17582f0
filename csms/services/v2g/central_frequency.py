"""OCPP 2.1 CentralFrequency: the CSMS follows the grid frequency for a 2.1 station that offers
CentralFrequency but not LocalFrequency (LocalFrequency stations follow it themselves).

Each frequency sample gives the station's configured frequency-watt curve a setpoint; the
station holds a Dynamic CentralFrequency TxProfile (CENTRAL_FREQUENCY_PROFILE_ID, above the
plan) whose setpoint moves with UpdateDynamicSchedule when it changes by at least
MIN_SETPOINT_STEP_W, and which is cleared when the curve asks for 0 W again (the plan resumes).
Which stations hold such a profile, with the last setpoint, is shared by every node (the
`central_frequency` row of v2g_rule_states, changed under its row lock).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from csms.domain.errors import CsmsError
from csms.domain.models import DynamicScheduleUpdate
from csms.persistence.repositories import ocpp21 as r21
from csms.persistence.repositories import v2g as vrepo
from csms.persistence.repositories import v2x as xrepo
from csms.services.common import ocpp_datetime
from csms.services.v2g.armed import ArmedPart
from csms.services.v2g.fleet import Plugged
from csms.services.v2g.profiles import CENTRAL_FREQUENCY_PROFILE_ID
from csms.v2g.envelope_caps import held_bounds
from csms.v2g.v2x import (
    OperationMode,
    PowerBounds,
    central_frequency_period,
    schedule_update,
    v21_profile,
)
from v2g_shared.freq_watt import FreqWattCurve, freq_watt

log = logging.getLogger(__name__)

CENTRAL_FREQUENCY_RULE = "central_frequency"  # {station id: last setpoint W}
CENTRAL_FREQUENCY_STACK_LEVEL = 4  # above the plan, dispatch and the under-frequency event
MIN_SETPOINT_STEP_W = 100.0  # smaller changes are not worth a message


@dataclass(frozen=True)
class _Target:
    ctx: Plugged
    bounds: PowerBounds  # the vehicle's, narrowed to the station's envelope share
    setpoint_w: float
    limited: bool = False  # the envelope cut the setpoint the curve asked for


class CentralFrequencyPart(ArmedPart):
    async def _held_target(self, ctx: Plugged, asked_w: float, at: datetime) -> _Target:
        """The target for `asked_w`, within the vehicle's bounds and the station's envelope
        share in force at `at` (issue 18; the profile is Dynamic, without an end: an envelope
        change moves it again, `central_envelope_changed`)."""
        v = ctx.vehicle
        vehicle = PowerBounds(v.max_charge_kw * 1000.0, v.max_discharge_kw * 1000.0)
        caps = await self.power_caps(v.station_id, at)
        bounds, _ = held_bounds(vehicle, caps, at, at + timedelta(seconds=1))
        setpoint = round(bounds.clamp(asked_w), 1)
        return _Target(ctx, bounds, setpoint, setpoint != round(vehicle.clamp(asked_w), 1))

    async def _central_targets(
        self, contexts: list[Plugged], hz: float, at: datetime
    ) -> list[_Target]:
        async with self._db.read() as conn:
            curves = await xrepo.stations_with_freq_watt(conn)
        if not curves:
            return []
        out = []
        for ctx in contexts:
            station_id = ctx.vehicle.station_id
            if station_id not in curves or not await self.is_v21(station_id):
                continue
            caps = await self.capabilities(station_id)
            if caps.frequency_mode() is not OperationMode.CENTRAL_FREQUENCY:
                continue
            try:
                curve = FreqWattCurve(tuple((float(h), float(w)) for h, w in curves[station_id]))
            except (ValueError, TypeError, IndexError):
                continue
            out.append(await self._held_target(ctx, freq_watt(curve, hz), at))
        return out

    async def central_frequency(
        self, contexts: list[Plugged], hz: float, at: datetime
    ) -> list[dict[str, Any]]:
        """One frequency sample for the CentralFrequency stations: set, move or clear each
        one's Dynamic profile; one result per message sent."""
        targets = await self._central_targets(contexts, hz, at)
        if not targets:
            return []
        now = self._clock()
        actions = await self._db.write(lambda conn: self._central_step(conn, targets, now))
        return list(await asyncio.gather(*(self._central_send(t, a, at) for t, a in actions)))

    @staticmethod
    async def _central_step(
        conn: AsyncConnection, targets: list[_Target], now: datetime
    ) -> list[tuple[_Target, str]]:
        """Under the row lock: what each station needs (set / update / clear) and the new
        shared state. Depends on nothing but the database and its arguments."""
        state = await vrepo.lock_rule_state(conn, CENTRAL_FREQUENCY_RULE, now)
        actions: list[tuple[_Target, str]] = []
        for target in targets:
            station_id = target.ctx.vehicle.station_id
            assert station_id is not None
            last = state.get(station_id)
            if last is None and target.setpoint_w != 0:
                actions.append((target, "set"))
                state[station_id] = target.setpoint_w
            elif last is not None and target.setpoint_w == 0:
                actions.append((target, "clear"))
                del state[station_id]
            elif last is not None and abs(target.setpoint_w - last) >= MIN_SETPOINT_STEP_W:
                actions.append((target, "update"))
                state[station_id] = target.setpoint_w
        await vrepo.save_rule_state(conn, CENTRAL_FREQUENCY_RULE, state, now)
        return actions

    async def _central_send(self, target: _Target, action: str, at: datetime) -> dict[str, Any]:
        ctx = target.ctx
        station_id = ctx.vehicle.station_id
        assert station_id is not None
        result: dict[str, Any] = {
            "station_id": station_id,
            "action": action,
            "setpoint_w": target.setpoint_w,
        }
        if target.limited:
            result["limited_by"] = "envelope"
        try:
            if action == "set":
                update = schedule_update(target.setpoint_w, target.bounds)
                held = DynamicScheduleUpdate(
                    station_id, CENTRAL_FREQUENCY_PROFILE_ID, update, self._clock()
                )
                await self._db.write(lambda c: r21.upsert_schedule_update(c, held))
                profile = v21_profile(
                    [central_frequency_period(target.setpoint_w, target.bounds)],
                    profile_id=CENTRAL_FREQUENCY_PROFILE_ID,
                    stack_level=CENTRAL_FREQUENCY_STACK_LEVEL,
                    start_schedule=ocpp_datetime(at),
                    duration_s=None,
                    transaction_id=ctx.transaction.transaction_id,
                    kind="Dynamic",
                )
                answer = await self._commands.send(
                    station_id,
                    "SetChargingProfile",
                    {"evseId": ctx.transaction.evse_id, "chargingProfile": profile},
                )
            elif action == "update":
                sent = await self.update_setpoint(
                    station_id,
                    CENTRAL_FREQUENCY_PROFILE_ID,
                    target.setpoint_w,
                    max_charge_w=target.bounds.max_charge_w,
                    max_discharge_w=target.bounds.max_discharge_w,
                )
                answer = sent["answer"]
            else:
                answer = await self._commands.send(
                    station_id,
                    "ClearChargingProfile",
                    {"chargingProfileId": CENTRAL_FREQUENCY_PROFILE_ID},
                )
            result["status"] = str(answer.get("status"))
        except CsmsError as exc:
            result["status"], result["error"] = "failed", str(exc)
        return result

    async def central_envelope_changed(
        self, contexts: list[Plugged], now: datetime
    ) -> list[dict[str, Any]]:
        """The envelope of these vehicles' stations changed: each station holding a
        CentralFrequency profile gets its setpoint and bounds moved into the new share
        (UpdateDynamicSchedule); the next frequency sample moves it on from there."""
        async with self._db.read() as conn:
            held = await vrepo.get_rule_state(conn, CENTRAL_FREQUENCY_RULE) or {}
        targets = [
            await self._held_target(ctx, float(held[ctx.vehicle.station_id]), now)
            for ctx in contexts
            if ctx.vehicle.station_id in held
        ]
        if not targets:
            return []

        async def remember(conn: AsyncConnection) -> None:
            state = await vrepo.lock_rule_state(conn, CENTRAL_FREQUENCY_RULE, now)
            for target in targets:
                if target.ctx.vehicle.station_id in state:
                    state[target.ctx.vehicle.station_id] = target.setpoint_w
            await vrepo.save_rule_state(conn, CENTRAL_FREQUENCY_RULE, state, now)

        await self._db.write(remember)
        return list(await asyncio.gather(*(self._central_send(t, "update", now) for t in targets)))

    async def stop_central_frequency(self, station_id: str) -> dict[str, Any]:
        """The response is switched off: clear the station's Dynamic profile (Unknown when it
        had none) and forget it in the shared state."""
        now = self._clock()

        async def forget(conn: AsyncConnection) -> None:
            state = await vrepo.lock_rule_state(conn, CENTRAL_FREQUENCY_RULE, now)
            state.pop(station_id, None)
            await vrepo.save_rule_state(conn, CENTRAL_FREQUENCY_RULE, state, now)

        await self._db.write(forget)
        return await self._commands.send(
            station_id, "ClearChargingProfile", {"chargingProfileId": CENTRAL_FREQUENCY_PROFILE_ID}
        )
