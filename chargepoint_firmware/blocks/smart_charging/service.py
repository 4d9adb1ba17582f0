"""Smart charging on the station (block K): installed profiles and the setpoint of each EVSE.

Profiles are validated with the K01 rules (v2g_shared.schedule), persisted in the state
directory and turned into one `EvseSetpoint` per EVSE with `limit_at`. One task sleeps until the
earliest `next_change` of all EVSEs, or until profiles / transactions change (`wake()`): the
setpoint changes exactly at period boundaries, with no polling.

Bidirectional (project convention on OCPP 2.0.1, V2XCtrlr.NegativeLimitIsDischarge): when true, a
negative limit is a discharge setpoint; when false, a profile with a negative limit is rejected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from ocpp.v21 import call as call_v21

from chargepoint_firmware.blocks.smart_charging.der import DerControls
from chargepoint_firmware.blocks.smart_charging.der_notify import GridAlarms, der_notices
from chargepoint_firmware.blocks.smart_charging.envelope import (
    envelope_in_force,
    envelope_next_change,
    keeps_offline,
)
from chargepoint_firmware.blocks.smart_charging.ev_needs import charging_needs
from chargepoint_firmware.blocks.smart_charging.soc_limit import soc_limit_from, soc_limited
from chargepoint_firmware.blocks.smart_charging.v2x_local import LocalV2x, frequency_adjusted
from chargepoint_firmware.blocks.smart_charging.v2x_modes import V2xInputs, bound, v2x_target
from chargepoint_firmware.blocks.transactions.manager import TransactionManager
from chargepoint_firmware.interfaces import EvseHardware, EvseSetpoint, EvseStatus
from chargepoint_firmware.settings import EvseConfig
from chargepoint_firmware.station.clock import Clock
from chargepoint_firmware.station.config import ConfigView
from chargepoint_firmware.storage import AgentStorage
from v2g_shared.schedule import (
    ChargingProfile,
    ChargingProfileKind,
    ChargingProfilePurpose,
    ChargingRateUnit,
    InstalledProfile,
    OperationMode,
    ProfileFormatError,
    ProfileStore,
    Transaction,
    ValidationContext,
    Violation,
    apply_schedule_update,
    composite_schedule,
    composite_to_ocpp,
    format_datetime,
    limit_at,
    next_breakpoint,
    parse_datetime,
    profile_from_ocpp,
    profile_to_ocpp,
    schedule_update_from_ocpp,
    v2x_at,
    validate_profile,
)
from v2g_shared.schedule.model import SCHEDULE_UPDATE_FIELDS

log = logging.getLogger(__name__)

# Durations a CSMS sends are bounded before date arithmetic (no overflow, no "forever + 1").
_TEN_YEARS_S = 10 * 365 * 86400


class SmartCharging:
    def __init__(
        self,
        *,
        storage: AgentStorage,
        clock: Clock,
        hardware: Mapping[int, EvseHardware],
        evses: Mapping[int, EvseConfig],
        config: ConfigView,
        transactions: TransactionManager,
    ) -> None:
        self.storage = storage
        self.clock = clock
        self.hardware = hardware
        self.evses = evses
        self.config = config
        self.transactions = transactions
        self.store = ProfileStore()
        self._wake = asyncio.Event()
        self._pull_wake = asyncio.Event()
        # Dynamic profile id -> when its current interval started (install or last pull).
        self._dyn_since: dict[int, datetime] = {}
        self._published: dict[int, EvseSetpoint] = {}
        # Frequency-watt response and emergency-backup hold, applied after the schedule.
        self.local_v2x = LocalV2x(config, wake=self.wake)
        # Called with the number of installed profiles after every change.
        self.on_count: Callable[[int], None] = lambda _count: None
        # OCPP 2.1 (set per connection by the agent): 2.1 profile fields accepted, V2X modes.
        self.ocpp_2_1 = False
        self.der = DerControls(storage)
        self.grid_alarms = GridAlarms()
        self.afrr_signal: int | None = None
        # transactionId -> the energy transfer modes the CSMS allows (NotifyAllowedEnergyTransfer)
        self.allowed_transfer: dict[str, tuple[str, ...]] = {}
        # PullDynamicScheduleUpdate sender (the CSMS link's send_call), set by the composition root
        self.send_call: Callable[[Any], Any] | None = None
        # Fire-and-forget sender (the link's send_soon) and the transactions whose charging
        # needs were sent (NotifyEVChargingNeeds once per transaction, over 2.1).
        self.send_soon: Callable[[Any], None] | None = None
        self._needs_sent: set[str] = set()
        # Since when the station is offline (None = online); the agent sets it (maxOfflineDuration).
        self.offline_since: datetime | None = None
        transactions.listeners.append(self._on_transaction_change)

    # -- profiles -----------------------------------------------------------------------------
    def load(self) -> None:
        store = ProfileStore()
        for evse_id, payload in self.storage.load_profiles():
            try:
                store = store.set(evse_id, profile_from_ocpp(payload))
            except ProfileFormatError as exc:
                log.error("ignoring unreadable stored profile: %s", exc)
        # TxProfiles of transactions that no longer run (e.g. ended by a restart) are gone.
        running = {tx for tx, _ in self.transactions.active_transactions().values()}
        for installed in store.profiles:
            p = installed.profile
            if p.purpose is ChargingProfilePurpose.TX_PROFILE and p.transaction_id not in running:
                store, _ = store.clear(profile_id=p.id)
                self.storage.delete_profile(p.id)
        self.store = store
        self.on_count(len(store))

    def evse_ids(self) -> list[int]:
        return list(self.hardware)

    def rate_units(self) -> list[str]:
        """SmartChargingCtrlr.RateUnit: the units a GetCompositeSchedule may ask for."""
        return self.config.members("SmartChargingCtrlr", "RateUnit")

    def discharge_enabled(self) -> bool:
        return self.config.boolean("V2XCtrlr", "NegativeLimitIsDischarge")

    def _context(self) -> ValidationContext:
        units = frozenset(
            ChargingRateUnit(u)
            for u in self.config.members("SmartChargingCtrlr", "RateUnit")
            if u in ("A", "W")
        )
        return ValidationContext(
            evse_ids=frozenset(self.evses),
            dc_evse_ids=frozenset(self.evses),
            active_transactions={
                e: tx for e, (tx, _) in self.transactions.active_transactions().items()
            },
            stored=self.store.profiles,
            supported_rate_units=units,
            max_stack_level=self.config.integer("SmartChargingCtrlr", "ProfileStackLevel"),
            max_periods_per_schedule=self.config.integer(
                "SmartChargingCtrlr", "PeriodsPerSchedule"
            ),
            max_entries=self.config.integer("SmartChargingCtrlr", "Entries"),
            negative_limit_is_discharge=self.discharge_enabled(),
            ocpp_2_1=self.ocpp_2_1,
        )

    def set_profile(self, evse_id: int, profile: ChargingProfile) -> list[Violation]:
        """SetChargingProfile (the profile as parsed from the CALL): violations, empty when
        installed. Stored as its OCPP JSON (the form `load` reads back)."""
        violations = validate_profile(profile, self._context(), evse_id=evse_id)
        if violations:
            return violations
        with self.storage.atomic():
            self.storage.save_profile(profile.id, evse_id, profile_to_ocpp(profile))
        self.store = self.store.set(evse_id, profile)
        self._dyn_since[profile.id] = self.clock.now()
        self.wake()
        return []

    def clear(
        self,
        profile_id: int | None,
        evse_id: int | None,
        purpose: str | None,
        stack_level: int | None,
    ) -> bool:
        store, removed = self.store.clear(
            profile_id=profile_id,
            evse_id=evse_id,
            purpose=ChargingProfilePurpose(purpose) if purpose else None,
            stack_level=stack_level,
        )
        if not removed:
            return False
        with self.storage.atomic():
            for installed in removed:
                self.storage.delete_profile(installed.profile.id)
        self.store = store
        self.wake()
        return True

    def select(
        self,
        evse_id: int | None,
        purpose: str | None,
        stack_level: int | None,
        profile_ids: list[int] | None,
    ) -> dict[int, list[dict[str, Any]]]:
        """GetChargingProfiles: evse id -> profiles (camelCase JSON)."""
        found = self.store.select(
            evse_id=evse_id,
            purpose=ChargingProfilePurpose(purpose) if purpose else None,
            stack_level=stack_level,
            profile_ids=profile_ids,
        )
        out: dict[int, list[dict[str, Any]]] = {}
        for installed in found:
            out.setdefault(installed.evse_id, []).append(profile_to_ocpp(installed.profile))
        return out

    def _transactions(self) -> dict[int, Transaction]:
        return {
            e: Transaction(tx, parse_datetime(started))
            for e, (tx, started) in self.transactions.active_transactions().items()
        }

    def _nominal_voltage(self, evse_id: int) -> float:
        if evse_id == 0:
            return sum(e.nominal_voltage_v for e in self.evses.values()) / len(self.evses)
        return self.evses[evse_id].nominal_voltage_v

    def composite(self, evse_id: int, duration: int, unit: str | None) -> dict[str, Any]:
        """GetCompositeSchedule: a CompositeScheduleType (camelCase)."""
        rate = ChargingRateUnit(unit) if unit else self._unit_for(evse_id)
        start = self.clock.now()
        periods = composite_schedule(
            self.store.profiles,
            self._transactions(),
            list(self.evses),
            evse_id=evse_id,
            start=start,
            duration=duration,
            unit=rate,
            nominal_voltage_v=self._nominal_voltage(evse_id),
            discharge_enabled=self.discharge_enabled(),
        )
        chosen = list(self.evses.values()) if evse_id == 0 else [self.evses[evse_id]]
        if rate is ChargingRateUnit.W:
            unlimited = sum(e.max_charge_power_w for e in chosen)
        else:
            unlimited = sum(e.max_charge_current_a for e in chosen)
        return composite_to_ocpp(
            periods, evse_id=evse_id, start=start, duration=duration, unit=rate, unlimited=unlimited
        )

    def _unit_for(self, evse_id: int) -> ChargingRateUnit:
        """A when every profile that can apply to the EVSE is in A (no conversion), else W."""
        units = {
            i.profile.schedule.charging_rate_unit
            for i in self.store.profiles
            if i.evse_id in (0, evse_id)
        }
        return ChargingRateUnit.A if units == {ChargingRateUnit.A} else ChargingRateUnit.W

    # -- transactions -------------------------------------------------------------------------
    def _on_transaction_change(self, evse_id: int, what: str, transaction_id: str | None) -> None:
        if what == "started":
            st = self.transactions.evses[evse_id]
            if st.pending_profile is not None and transaction_id is not None:
                profile = replace(st.pending_profile, transaction_id=transaction_id)
                st.pending_profile = None
                violations = self.set_profile(evse_id, profile)
                if violations:
                    log.warning("TxProfile of RequestStartTransaction rejected: %s", violations)
        if what == "ended":
            self._drop_ended_tx_profiles()
        if what == "started":
            self.notify_ev_needs(evse_id)
        self.wake()

    def _drop_ended_tx_profiles(self) -> None:
        running = {tx for tx, _ in self.transactions.active_transactions().values()}
        for installed in self.store.profiles:
            p = installed.profile
            if p.purpose is ChargingProfilePurpose.TX_PROFILE and p.transaction_id not in running:
                self.store = self.store.end_transaction(p.transaction_id or "")
                self.storage.delete_profile(p.id)

    # -- the setpoint task --------------------------------------------------------------------
    def wake(self) -> None:
        self.on_count(len(self.store))
        self._wake.set()
        self._pull_wake.set()

    def set_online(self, online: bool) -> None:
        """The CSMS link came up or went down: maxOfflineDuration counts from going offline."""
        self.offline_since = None if online else self.clock.now()
        self.wake()

    def _valid_offline(self, now: datetime) -> tuple[tuple[InstalledProfile, ...], datetime | None]:
        """The profiles valid now given maxOfflineDuration (2.1), and when the next one lapses.

        Offline longer than its maxOfflineDuration, a profile does not apply (the stack falls
        back to lower levels) until the station is online again; with
        invalidAfterOfflineDuration it is removed for good."""
        since = self.offline_since
        if since is None:
            return self.store.profiles, None
        kept: list[InstalledProfile] = []
        lapses: datetime | None = None
        for installed in self.store.profiles:
            limit_s = installed.profile.max_offline_duration
            if limit_s is None or keeps_offline(installed):
                kept.append(installed)
                continue
            ends = since + timedelta(seconds=max(0, min(limit_s, _TEN_YEARS_S)))
            if now < ends:
                kept.append(installed)
                lapses = ends if lapses is None or ends < lapses else lapses
            elif installed.profile.invalid_after_offline_duration:
                self.store, _ = self.store.clear(profile_id=installed.profile.id)
                self.storage.delete_profile(installed.profile.id)
        return tuple(kept), lapses

    def publish_now(self) -> datetime | None:
        """Publish every EVSE's setpoint for now; return the earliest next change."""
        now = self.clock.now()
        profiles, lapses = self._valid_offline(now)
        transactions = self._transactions()
        discharge = self.discharge_enabled()
        earliest: datetime | None = None
        evse_list = list(self.evses)
        for evse_id, hw in self.hardware.items():
            unit = self._unit_for(evse_id)
            volts = self._nominal_voltage(evse_id)
            status = hw.status()
            v2x = v2x_at(
                profiles,
                transactions,
                evse_list,
                evse_id=evse_id,
                now=now,
                unit=unit,
                nominal_voltage_v=volts,
            )
            # A 2.1 V2X period: the composite limit without the 2.0.1 negative-limit switch.
            limit, next_change = limit_at(
                profiles,
                transactions,
                evse_list,
                evse_id=evse_id,
                now=now,
                unit=unit,
                nominal_voltage_v=volts,
                discharge_enabled=discharge or v2x.native,
            )
            inputs = self._v2x_inputs(evse_id, status, now, unit.value, volts, transactions)
            if v2x.native:
                target, source = v2x_target(v2x, limit, inputs)
                setpoint = EvseSetpoint(evse_id, target, unit.value, next_change, source)
                moved = next_breakpoint(profiles, transactions, evse_list, now=now)
                if moved is not None and (next_change is None or moved < next_change):
                    next_change = moved
                if v2x.mode in (OperationMode.LOCAL_FREQUENCY, OperationMode.CENTRAL_FREQUENCY):
                    self.local_v2x.poll_again()
            else:
                setpoint = EvseSetpoint(evse_id, limit, unit.value, valid_until=next_change)
            setpoint = self.local_v2x.adjust(setpoint, status, volts)
            setpoint = self._der_adjusted(setpoint, v2x.mode, status, now, evse_id, inputs)
            setpoint = self._soc_limited(setpoint, v2x.profile_id, profiles, status, volts)
            # Envelope and DER limit reach the supervisor whatever moved the setpoint; both wake us.
            envelope = envelope_in_force(profiles, evse_id, now, volts)
            der_w, der_change = self.der.evse_limit(now, self.evses[evse_id], volts)
            setpoint = replace(setpoint, envelope=envelope, der_max_discharge_w=der_w)
            for moved in (envelope_next_change(profiles, evse_list, evse_id, now), der_change):
                if moved is not None and (next_change is None or moved < next_change):
                    next_change = moved
            if self._published.get(evse_id) != setpoint:
                self._published[evse_id] = setpoint
                hw.set_setpoint(setpoint)
            if next_change is not None and (earliest is None or next_change < earliest):
                earliest = next_change
        if lapses is not None and (earliest is None or lapses < earliest):
            earliest = lapses
        return earliest

    # -- OCPP 2.1: V2X inputs, DER, dynamic schedules --------------------------------------------
    def _max_power(self, evse_id: int, unit: str) -> tuple[float, float]:
        evse = self.evses[evse_id]
        if unit == "A":
            return evse.max_charge_current_a, evse.max_discharge_current_a
        return evse.max_charge_power_w, evse.max_discharge_power_w

    def _v2x_inputs(
        self,
        evse_id: int,
        status: EvseStatus,
        now: datetime,
        unit: str,
        volts: float,
        transactions: Mapping[int, Transaction],
    ) -> V2xInputs:
        tx = transactions.get(evse_id)
        allowed = self.allowed_transfer.get(tx.id) if tx is not None else None
        _charge, max_discharge = self._max_power(evse_id, unit)
        return V2xInputs(
            grid_frequency_hz=status.grid_frequency_hz if status.grid_present else None,
            afrr_signal=self.afrr_signal,
            discharge_allowed=allowed is None or any("BPT" in mode for mode in allowed),
            der_discharge_cap=self.der.discharge_cap(now, max_discharge, status.grid_voltage_pct),
        )

    def _soc_limited(
        self,
        setpoint: EvseSetpoint,
        profile_id: int | None,
        profiles: Sequence[InstalledProfile],
        status: EvseStatus,
        volts: float,
    ) -> EvseSetpoint:
        """limitAtSoC (2.1) of the winning Tx/TxDefault profile's schedule, at the measured
        SoC; re-evaluated every 0.2 s while one is in force below its SoC (the SoC moves)."""
        if profile_id is None:
            return setpoint
        winner = next((p.profile for p in profiles if p.profile.id == profile_id), None)
        if winner is None:
            return setpoint
        schedule = winner.schedule
        rule = soc_limit_from(schedule.limit_at_soc, schedule.charging_rate_unit.value)
        if rule is None:
            return setpoint
        limited = soc_limited(setpoint.limit, setpoint.unit, rule, status.soc_pct, volts)
        if status.soc_pct is None or status.soc_pct < rule.soc_pct:
            self.local_v2x.poll_again()
        if limited == setpoint.limit:
            return setpoint
        return replace(setpoint, limit=limited, source="limitAtSoC")

    def _der_adjusted(
        self,
        setpoint: EvseSetpoint,
        mode: OperationMode,
        status: EvseStatus,
        now: datetime,
        evse_id: int,
        inputs: V2xInputs,
    ) -> EvseSetpoint:
        """DER controls on top of the schedule: the FreqWatt response (unless the profile's own
        LocalFrequency curve drives the EVSE), then the discharge caps."""
        if not self.der.controls:
            return setpoint
        max_charge, max_discharge = self._max_power(evse_id, setpoint.unit)
        curve = self.der.freq_watt_curve(now, max_charge, max_discharge)
        if curve is not None and mode is not OperationMode.LOCAL_FREQUENCY:
            setpoint = frequency_adjusted(
                setpoint, curve, status, self._nominal_voltage(evse_id), inputs.discharge_allowed
            )
            self.local_v2x.poll_again()
        if self.der.active("VoltWatt", now) is not None:
            self.local_v2x.poll_again()  # the measured AC voltage moves the cap
        if setpoint.limit is not None and setpoint.limit < 0:
            bounded = bound(setpoint.limit, None, None, inputs)
            if bounded != setpoint.limit:
                setpoint = replace(setpoint, limit=bounded, source="der")
        return setpoint

    def notify_ev_needs(self, evse_id: int) -> bool:
        """NotifyEVChargingNeeds with the car's V2X parameters, once per transaction, over 2.1
        only and once the car has sent its limits. True when it was queued for sending."""
        if not self.ocpp_2_1 or self.send_soon is None or evse_id not in self.hardware:
            return False
        running = self.transactions.active_transactions()
        if evse_id not in running:
            return False
        tx_id = running[evse_id][0]
        self._needs_sent &= {tx for tx, _ in running.values()}  # bounded by the EVSE count
        if tx_id in self._needs_sent:
            return False
        needs = charging_needs(self.hardware[evse_id].status())
        if needs is None:
            return False
        self._needs_sent.add(tx_id)
        self.send_soon(
            call_v21.NotifyEVChargingNeeds(
                evse_id=evse_id, charging_needs=needs, timestamp=format_datetime(self.clock.now())
            )
        )
        return True

    DER_CHECK_S = 1.0

    def der_notices(self, now: datetime) -> list[Any]:
        """The 2.1 DER notices due now (der_notify.der_notices)."""
        status = next((hw.status() for hw in self.hardware.values()), None)
        return der_notices(self.der, self.storage, self.grid_alarms, status, now)

    async def run_der_monitor(self) -> None:
        """Every DER_CHECK_S over 2.1: send the DER notices that are due."""
        while True:
            if self.ocpp_2_1 and self.send_soon is not None:
                for notice in self.der_notices(self.clock.now()):
                    self.send_soon(notice)
            await asyncio.sleep(self.DER_CHECK_S)

    def update_dynamic(self, profile_id: int, update: Mapping[str, Any]) -> str | None:
        """UpdateDynamicSchedule (K28): None when applied, else the reason it is Rejected."""
        installed = self.store.installed(profile_id)
        if installed is None:
            return "UnknownProfile"
        if installed.profile.kind is not ChargingProfileKind.DYNAMIC:
            return "NotDynamic"
        try:
            values = schedule_update_from_ocpp(update)
            profile = apply_schedule_update(installed.profile, values, self.clock.now())
        except ProfileFormatError:
            return "InvalidValue"
        context = replace(self._context(), stored=())
        if validate_profile(profile, context, evse_id=installed.evse_id):
            return "InvalidValue"
        with self.storage.atomic():
            self.storage.save_profile(profile.id, installed.evse_id, profile_to_ocpp(profile))
        self.store = self.store.set(installed.evse_id, profile)
        self.wake()
        return None

    def pulls_due(self, now: datetime) -> tuple[list[int], datetime | None]:
        """Dynamic profiles whose dynUpdateInterval has passed since their last update, and the
        next moment one falls due. The interval is bounded below (1 s) against a CSMS's 0/1."""
        due: list[int] = []
        earliest: datetime | None = None
        for installed in self.store.profiles:
            p = installed.profile
            if p.kind is not ChargingProfileKind.DYNAMIC or not p.dyn_update_interval:
                continue
            since = self._dyn_since.setdefault(p.id, now)
            last = max(since, p.dyn_update_time) if p.dyn_update_time else since
            at = last + timedelta(seconds=max(1, min(p.dyn_update_interval, 86400)))
            if at <= now:
                due.append(p.id)
            elif earliest is None or at < earliest:
                earliest = at
        return due, earliest

    async def run_dynamic_pulls(self) -> None:
        """PullDynamicScheduleUpdate for every Dynamic profile per its dynUpdateInterval."""
        while True:
            now = self.clock.now()
            due, earliest = self.pulls_due(now)
            for profile_id in due:
                await self._pull(profile_id, now)
            if due:
                continue
            self._pull_wake.clear()
            waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._pull_wake.wait())]
            if earliest is not None:
                waits.append(asyncio.ensure_future(self.clock.sleep_until(earliest)))
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiting in waits:
                    waiting.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await waiting

    async def _pull(self, profile_id: int, now: datetime) -> None:
        installed = self.store.installed(profile_id)
        if installed is None:
            return
        response: Any = None
        if self.send_call is not None and self.ocpp_2_1:
            try:
                response = await self.send_call(
                    call_v21.PullDynamicScheduleUpdate(charging_profile_id=profile_id)
                )
            except Exception as exc:  # offline, timeout, CALLERROR: try at the next interval
                log.warning("PullDynamicScheduleUpdate %s failed: %s", profile_id, exc)
        update = getattr(response, "schedule_update", None)
        if getattr(response, "status", None) == "Accepted" and isinstance(update, dict):
            camel = {key: update[name] for name, key in SCHEDULE_UPDATE_FIELDS if name in update}
            if self.update_dynamic(profile_id, camel) is None:
                return
        # Not updated: start the next interval from now (no tight retry loop).
        self._dyn_since[profile_id] = now

    async def run_setpoints(self) -> None:
        while True:
            self._wake.clear()
            next_change = self.publish_now()
            waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._wake.wait())]
            if next_change is not None:
                waits.append(asyncio.ensure_future(self.clock.sleep_until(next_change)))
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiting in waits:
                    waiting.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await waiting
