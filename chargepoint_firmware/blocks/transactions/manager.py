"""The TransactionEvent lifecycle of each EVSE (OCPP 2.0.1 block E), durable.

State per EVSE (plugged, authorized token, the transaction and its next seqNo, availability,
faults) lives in `EvseState` and is persisted in the same SQLite commit as the TransactionEvent
it produced, so a kill -9 at any moment never loses an event nor reuses a seqNo.

Start and stop follow TxCtrlr.TxStartPoint / TxStopPoint: a transaction starts when any start
point is reached, and ends when a stop point that had been reached during the transaction is no
longer true (e.g. "Authorized" ends it when a RequestStopTransaction deauthorizes, "EVConnected"
when the cable is pulled). Everything here is synchronous: hardware callbacks and OCPP handlers
run on the event loop, so each state change is atomic with respect to the others.

Over 600 lines because it is one state machine: every step (plug, authorize, fault, stop point,
sample, Ended) reads and writes the same `EvseState` and must persist it with the event it
emits in one commit; split across modules, that invariant would have no single home.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from chargepoint_firmware.blocks.transactions.meter import meter_value
from chargepoint_firmware.interfaces import EvseHardware, SessionState
from chargepoint_firmware.ocpp_edge.outbox import Outbox
from chargepoint_firmware.ocpp_edge.timefmt import iso_ms
from chargepoint_firmware.station.clock import Clock
from chargepoint_firmware.station.config import ConfigView
from chargepoint_firmware.storage import AgentStorage
from v2g_shared.schedule import ChargingProfile, profile_to_ocpp

log = logging.getLogger(__name__)

# Hardware fault causes (HardwareEvent.detail prefixes) -> OCPP StoppedReasonEnumType.
_FAULT_REASONS = {
    "emergency_stop": "EmergencyStop",
    "grid_loss": "PowerLoss",
    "overcurrent": "OvercurrentFault",
    "ground_fault": "GroundFault",
    "insulation": "GroundFault",
    "ev_stop_request": "StoppedByEV",
    "vehicle_fault": "StoppedByEV",
    "can_silence": "Timeout",
    "soc_limit": "SOCLimitReached",
}


# Bound on the TxEndedInterval samples one Ended event carries (a week at 10 minutes).
MAX_ENDED_SAMPLES = 1000


def stopped_reason_for_fault(cause: str) -> str:
    for prefix, reason in _FAULT_REASONS.items():
        if cause.startswith(prefix):
            return reason
    return "Other"


@dataclass
class EvseState:
    evse_id: int
    plugged: bool = False
    energy_transfer: bool = False
    faulted: bool = False
    fault_cause: str = ""
    operative: bool = True
    # ChangeAvailability received during a transaction: applied when it ends.
    pending_operative: bool | None = None
    id_token: dict[str, Any] | None = None  # IdTokenType (snake_case) that authorized energy
    remote_start_id: int | None = None
    tx_id: str | None = None
    tx_started_at: str | None = None
    seq_no: int = 0
    charging_state: str | None = None
    reached: list[str] = field(default_factory=list)  # stop points reached in this tx
    last_meter: dict[str, Any] | None = None
    # TxProfile of a RequestStartTransaction, installed once the transaction exists (stored
    # as its OCPP JSON; a restart drops it with the authorization).
    pending_profile: ChargingProfile | None = None
    # groupIdToken of the authorizing token's IdTokenInfo: a token of the same group may stop.
    group_id_token: dict[str, Any] | None = None
    # Set when the CSMS invalidated the token of a running transaction and
    # TxCtrlr.StopTxOnInvalidId is false: energy is allowed until the import register reaches
    # this value (MaxEnergyOnInvalidId delivered in the transaction), then suspended.
    invalid_energy_cap_wh: float | None = None
    tx_start_import_wh: float | None = None  # import register when the transaction started
    running_cost: float | None = None  # the CSMS's latest CostUpdated (I02), for a display
    # TxEndedMeasurands sampled during the transaction (Transaction.Begin, then every
    # SampledDataCtrlr.TxEndedInterval s), sent in the Ended event's meterValue list.
    ended_samples: list[dict[str, Any]] = field(default_factory=list)
    # The reservation this authorization used (H03): sent with the token's TransactionEvent.
    reservation_id: int | None = None

    def conditions(self) -> dict[str, bool]:
        authorized = self.id_token is not None
        return {
            "EVConnected": self.plugged,
            "ParkingBayOccupancy": self.plugged,
            "Authorized": authorized,
            "PowerPathClosed": self.plugged and authorized,
            "EnergyTransfer": self.energy_transfer,
        }


# Called after each change: (evse_id, what, transaction_id); what is "started", "ended" or
# "changed".
ChangeListener = Callable[[int, str, str | None], None]


class TransactionManager:
    def __init__(
        self,
        *,
        storage: AgentStorage,
        clock: Clock,
        hardware: Mapping[int, EvseHardware],
        config: ConfigView,
        outbox: Outbox,
        is_online: Callable[[], bool],
        new_transaction_id: Callable[[], str],
    ) -> None:
        self.storage = storage
        self.clock = clock
        self.hardware = hardware
        self.config = config
        self.outbox = outbox
        self.is_online = is_online
        self.new_transaction_id = new_transaction_id
        self.listeners: list[ChangeListener] = []
        self.evses: dict[int, EvseState] = {}
        self._energy_allowed: dict[int, bool] = {}

    # -- start-up -----------------------------------------------------------------------------
    def restore(self) -> None:
        """Load persisted state; a transaction left open by a crash or restart is ended."""
        clean = bool(self.storage.get("clean_shutdown", False))
        for evse_id in sorted(self.hardware):
            raw = self.storage.get(f"evse:{evse_id}")
            st = EvseState(**dict(raw, pending_profile=None)) if raw else EvseState(evse_id)
            # What we knew about the car and the authorization is not valid after a restart.
            status = self.hardware[evse_id].status()
            st.plugged = status.plugged
            st.energy_transfer = False
            st.faulted = bool(status.latched_faults)
            self.evses[evse_id] = st
            if st.tx_id is not None:
                self._emit(
                    st,
                    "Ended",
                    "AbnormalCondition",
                    stopped_reason="Reboot" if clean else "PowerLoss",
                    meter_context="Transaction.End",
                    recovered_meter=True,
                )
            st.id_token = None
            st.group_id_token = None
            st.remote_start_id = None
            st.pending_profile = None
            st.invalid_energy_cap_wh = None
            st.reservation_id = None
            self._persist(st)
            self._gate(st)
        with self.storage.atomic():
            self.storage.put("clean_shutdown", False)

    def shutdown(self) -> None:
        """Orderly stop: end running transactions (reason Reboot) and mark the stop clean."""
        for st in self.evses.values():
            if st.tx_id is not None:
                st.id_token = None
                self._emit(
                    st,
                    "Ended",
                    "AbnormalCondition",
                    stopped_reason="Reboot",
                    meter_context="Transaction.End",
                )
        self.storage.put("clean_shutdown", True)

    # -- queries ------------------------------------------------------------------------------
    def active_transactions(self) -> dict[int, tuple[str, str]]:
        """evse id -> (transaction id, start time ISO)."""
        return {
            e: (st.tx_id, st.tx_started_at or "")
            for e, st in self.evses.items()
            if st.tx_id is not None
        }

    def find(self, transaction_id: str) -> EvseState | None:
        return next((st for st in self.evses.values() if st.tx_id == transaction_id), None)

    def any_transaction(self) -> bool:
        return any(st.tx_id is not None for st in self.evses.values())

    def connector_status(self, evse_id: int) -> str:
        st = self.evses[evse_id]
        if st.faulted:
            return "Faulted"
        if not st.operative:
            return "Unavailable"
        if st.plugged:
            return "Occupied"
        return "Available"

    # -- inputs from the hardware -------------------------------------------------------------
    def set_plugged(self, evse_id: int, plugged: bool) -> None:
        st = self.evses[evse_id]
        if st.plugged == plugged:
            return
        st.plugged = plugged
        if plugged:
            self._evaluate(st, "CablePluggedIn")
        else:
            st.energy_transfer = False
            self._evaluate(st, "EVCommunicationLost", stopped_reason="EVDisconnected")

    def set_energy_transfer(self, evse_id: int, active: bool) -> None:
        st = self.evses[evse_id]
        st.energy_transfer = active
        self._evaluate(st, "ChargingStateChanged", stopped_reason="StoppedByEV")

    def charging_state_may_have_changed(self, evse_id: int) -> None:
        self._evaluate(self.evses[evse_id], "ChargingStateChanged")

    def set_fault(self, evse_id: int, cause: str) -> None:
        st = self.evses[evse_id]
        st.faulted = True
        st.fault_cause = cause
        if st.tx_id is not None:
            st.id_token = None
            self._emit(
                st,
                "Ended",
                "AbnormalCondition",
                stopped_reason=stopped_reason_for_fault(cause),
                meter_context="Transaction.End",
            )
        self._after_change(st, "changed")

    def clear_fault(self, evse_id: int) -> None:
        st = self.evses[evse_id]
        st.faulted = False
        st.fault_cause = ""
        self._evaluate(st, None)

    # -- inputs from the CSMS -----------------------------------------------------------------
    def can_authorize(self, evse_id: int | None) -> bool:
        """Whether a RequestStartTransaction could be accepted on evse_id (None = any)."""
        candidates = self.evses.values() if evse_id is None else [self.evses[evse_id]]
        return any(st.operative and not st.faulted and st.id_token is None for st in candidates)

    def remote_start(
        self,
        evse_id: int | None,
        id_token: dict[str, Any],
        remote_start_id: int,
        profile: ChargingProfile | None,
        reservation_id: int | None = None,
    ) -> tuple[bool, str | None]:
        """RequestStartTransaction: (accepted, id of a transaction already running there)."""
        if evse_id is None:
            free = [
                st
                for st in self.evses.values()
                if st.operative and not st.faulted and st.id_token is None
            ]
            free.sort(key=lambda st: (not st.plugged, st.evse_id))
            if not free:
                return False, None
            st = free[0]
        else:
            found = self.evses.get(evse_id)
            if found is None:
                return False, None
            st = found
        if not st.operative or st.faulted or st.id_token is not None:
            return False, None
        previous = st.tx_id
        st.id_token = dict(id_token)
        st.remote_start_id = remote_start_id
        st.pending_profile = profile
        st.reservation_id = reservation_id
        self._evaluate(st, "RemoteStart", update=True, include_token=True)
        return True, previous

    def authorize_local(
        self,
        evse_id: int,
        id_token: dict[str, Any],
        group_id_token: dict[str, Any] | None = None,
        reservation_id: int | None = None,
    ) -> bool:
        """A token presented at the station was authorized (C01/C10/C12/C13/C15).

        Starts the transaction when TxStartPoint says so (the Started event carries the token),
        or reports the authorization in an Updated event when a transaction already runs (E03).
        False when the EVSE cannot take it (inoperative, faulted, already authorized).
        """
        st = self.evses[evse_id]
        if not st.operative or st.faulted or st.id_token is not None:
            return False
        st.id_token = dict(id_token)
        st.group_id_token = dict(group_id_token) if group_id_token else None
        st.remote_start_id = None
        st.invalid_energy_cap_wh = None
        st.reservation_id = reservation_id
        self._evaluate(st, "Authorized", update=True, include_token=True)
        return True

    def stop_local(self, evse_id: int) -> None:
        """The authorizing token (or one of its group) was presented again: deauthorize (E07).

        With Authorized among the TxStopPoints the transaction ends (trigger StopAuthorized,
        stoppedReason Local); otherwise energy stops and the transaction ends at the next stop
        point. Before any transaction, the pending authorization is simply withdrawn.
        """
        st = self.evses[evse_id]
        st.id_token = None
        st.group_id_token = None
        if st.tx_id is None:
            st.reservation_id = None
            self._after_change(st, "changed")
            return
        self._evaluate(st, "StopAuthorized", stopped_reason="Local", update=True)

    def token_invalidated(self, transaction_id: str, status: str) -> bool:
        """The CSMS answered a TransactionEvent with a non-Accepted idTokenInfo (E05, C15).

        TxCtrlr.StopTxOnInvalidId: end the transaction (Deauthorized / DeAuthorized). Otherwise
        keep it, allowing at most TxCtrlr.MaxEnergyOnInvalidId more Wh, then suspend energy.
        """
        st = self.find(transaction_id)
        if st is None or st.id_token is None:
            return False
        if st.remote_start_id is not None and status == "Unknown":
            # The CSMS chose this token itself in RequestStartTransaction: "Unknown" only says
            # it keeps no record of it, not that it was refused (Blocked/Invalid/... still stop).
            return False
        log.info("transaction %s: token %s by the CSMS", transaction_id, status)
        if self.config.boolean("TxCtrlr", "StopTxOnInvalidId"):
            st.id_token = None
            st.group_id_token = None
            if "Authorized" not in self.config.members("TxCtrlr", "TxStopPoint"):
                # Authorized is not a stop point here, yet the spec wants the transaction ended.
                self._emit(
                    st,
                    "Ended",
                    "Deauthorized",
                    stopped_reason="DeAuthorized",
                    meter_context="Transaction.End",
                )
                self._after_change(st, "ended")
            else:
                self._evaluate(st, "Deauthorized", stopped_reason="DeAuthorized", update=True)
            return True
        # Counted from the transaction's start: energy already delivered (e.g. offline) counts.
        start = st.tx_start_import_wh
        if start is None:
            start = self.hardware[st.evse_id].status().energy_import_wh
        st.invalid_energy_cap_wh = start + max(
            0, self.config.integer("TxCtrlr", "MaxEnergyOnInvalidId")
        )
        self.check_energy_cap(st.evse_id)
        self._after_change(st, "changed")
        return True

    def check_energy_cap(self, evse_id: int) -> None:
        """Suspend energy once MaxEnergyOnInvalidId has been delivered (called on events)."""
        st = self.evses[evse_id]
        if st.invalid_energy_cap_wh is None or st.tx_id is None:
            return
        if self._energy_allowed.get(evse_id) and not self._within_energy_cap(st):
            self._after_change(st, "changed")  # closes the energy gate

    def connection_timeout(self, evse_id: int, remote_start_id: int | None) -> bool:
        """TxCtrlr.EVConnectionTimeOut passed after an authorization without a plugged EV:
        the authorization lapses (E03: trigger EVConnectTimeout, stoppedReason Timeout)."""
        st = self.evses[evse_id]
        if st.plugged or st.id_token is None or st.remote_start_id != remote_start_id:
            return False
        st.id_token = None
        if st.tx_id is None:
            st.remote_start_id = None
            st.pending_profile = None
            self._after_change(st, "changed")
        else:
            self._evaluate(st, "EVConnectTimeout", stopped_reason="Timeout", update=True)
        return True

    def set_running_cost(self, transaction_id: str, total_cost: float) -> bool:
        """CostUpdated (I02): False when the transaction is not running here (ignored)."""
        st = self.find(transaction_id)
        if st is None:
            return False
        st.running_cost = total_cost
        self._persist(st)
        return True

    def remote_stop(self, transaction_id: str) -> bool:
        st = self.find(transaction_id)
        if st is None:
            return False
        st.id_token = None
        self._evaluate(st, "RemoteStop", stopped_reason="Remote", update=True)
        return True

    def end_transactions(
        self, evse_ids: list[int] | None, trigger: str, stopped_reason: str
    ) -> None:
        for st in self.evses.values():
            if (evse_ids is None or st.evse_id in evse_ids) and st.tx_id is not None:
                st.id_token = None
                self._emit(
                    st,
                    "Ended",
                    trigger,
                    stopped_reason=stopped_reason,
                    meter_context="Transaction.End",
                )
                self._after_change(st, "ended")

    def set_operative(self, evse_id: int, operative: bool) -> str:
        """ChangeAvailability for one EVSE: Accepted, or Scheduled while a tx runs."""
        st = self.evses[evse_id]
        if st.tx_id is not None and not operative:
            st.pending_operative = operative
            self._persist(st)
            return "Scheduled"
        st.operative = operative
        st.pending_operative = None
        self._evaluate(st, None)
        return "Accepted"

    # -- periodic / triggered meter values ----------------------------------------------------
    def sample(
        self, evse_id: int, trigger: str = "MeterValuePeriodic", context: str = "Sample.Periodic"
    ) -> bool:
        st = self.evses[evse_id]
        if st.tx_id is None:
            return False
        self.check_energy_cap(evse_id)
        self._emit(st, "Updated", trigger, meter_context=context)
        return True

    def record_ended_sample(self, evse_id: int) -> bool:
        """A TxEndedInterval sample (Sample.Periodic) for the Ended event, kept durably."""
        st = self.evses[evse_id]
        if st.tx_id is None:
            return False
        kept = self._keep_ended_sample(st, "Sample.Periodic")
        self._persist(st)
        return kept

    def _keep_ended_sample(self, st: EvseState, context: str) -> bool:
        status = self.hardware[st.evse_id].status()
        mv = meter_value(
            status,
            self.config.members("SampledDataCtrlr", "TxEndedMeasurands"),
            context,
            self.clock.now(),
        )
        if mv is None:
            return False
        if len(st.ended_samples) >= MAX_ENDED_SAMPLES:
            # Keep the begin value and the most recent ones: the Ended event must stay sendable.
            del st.ended_samples[1]
        st.ended_samples.append(mv)
        return True

    def meter_values_message(self, evse_id: int, context: str) -> dict[str, Any] | None:
        """A MeterValues payload (outside transactions) with the aligned measurands."""
        status = self.hardware[evse_id].status()
        mv = meter_value(
            status, self.config.members("AlignedDataCtrlr", "Measurands"), context, self.clock.now()
        )
        return None if mv is None else {"evse_id": evse_id, "meter_value": [mv]}

    # -- internals ----------------------------------------------------------------------------
    def _charging_state(self, st: EvseState) -> str:
        if not st.plugged:
            return "Idle"
        status = self.hardware[st.evse_id].status()
        if status.state is SessionState.SUSPENDED:
            return "SuspendedEV" if self._energy_allowed.get(st.evse_id) else "SuspendedEVSE"
        # The transfer event may arrive before the status snapshot shows it: trust either.
        if st.energy_transfer or status.state in (
            SessionState.CHARGING,
            SessionState.DISCHARGING,
        ):
            return "Charging"
        return "EVConnected"

    def _evaluate(
        self,
        st: EvseState,
        trigger: str | None,
        *,
        stopped_reason: str = "Other",
        update: bool = False,
        include_token: bool = False,
    ) -> None:
        cond = st.conditions()
        start_points = self.config.members("TxCtrlr", "TxStartPoint")
        stop_points = self.config.members("TxCtrlr", "TxStopPoint")
        what = "changed"
        if st.tx_id is None:
            can_run = st.operative and not st.faulted
            if can_run and any(cond.get(p, False) for p in start_points):
                st.tx_id = self.new_transaction_id()
                st.tx_started_at = iso_ms(self.clock.now())
                st.seq_no = 0
                st.reached = [p for p in stop_points if cond.get(p, False)]
                st.charging_state = self._charging_state(st)
                st.ended_samples = []
                st.tx_start_import_wh = self.hardware[st.evse_id].status().energy_import_wh
                if self.config.integer("SampledDataCtrlr", "TxEndedInterval") > 0:
                    self._keep_ended_sample(st, "Transaction.Begin")
                self._emit(
                    st,
                    "Started",
                    trigger or "Trigger",
                    meter_context="Transaction.Begin",
                    include_token=st.id_token is not None,
                )
                what = "started"
        else:
            for p in stop_points:
                if cond.get(p, False) and p not in st.reached:
                    st.reached.append(p)
            if any(p in st.reached and not cond.get(p, False) for p in stop_points):
                self._emit(
                    st,
                    "Ended",
                    trigger or "Trigger",
                    stopped_reason=stopped_reason,
                    meter_context="Transaction.End",
                )
                what = "ended"
            else:
                state = self._charging_state(st)
                if state != st.charging_state:
                    st.charging_state = state
                    self._emit(st, "Updated", "ChargingStateChanged")
                elif update and trigger is not None:
                    self._emit(st, "Updated", trigger, include_token=include_token)
        self._after_change(st, what)

    def _after_change(self, st: EvseState, what: str) -> None:
        if st.tx_id is None and st.pending_operative is not None:
            st.operative = st.pending_operative
            st.pending_operative = None
        self._gate(st)
        # The charging state follows the energy gate (SuspendedEVSE vs EVConnected).
        if st.tx_id is not None:
            state = self._charging_state(st)
            if state != st.charging_state:
                st.charging_state = state
                self._emit(st, "Updated", "ChargingStateChanged")
        self._persist(st)
        for listener in self.listeners:
            listener(st.evse_id, what, st.tx_id)

    def _within_energy_cap(self, st: EvseState) -> bool:
        if st.invalid_energy_cap_wh is None:
            return True
        imported = self.hardware[st.evse_id].status().energy_import_wh
        return imported < st.invalid_energy_cap_wh

    def _gate(self, st: EvseState) -> None:
        allowed = (
            st.tx_id is not None
            and st.id_token is not None
            and st.plugged
            and st.operative
            and not st.faulted
            and self._within_energy_cap(st)
        )
        if self._energy_allowed.get(st.evse_id) != allowed:
            self._energy_allowed[st.evse_id] = allowed
            self.hardware[st.evse_id].allow_energy_transfer(allowed)

    def _persist(self, st: EvseState) -> None:
        data = asdict(replace(st, pending_profile=None))
        if st.pending_profile is not None:
            data["pending_profile"] = profile_to_ocpp(st.pending_profile)
        self.storage.put(f"evse:{st.evse_id}", data)

    def _emit(
        self,
        st: EvseState,
        event_type: str,
        trigger: str,
        *,
        stopped_reason: str | None = None,
        meter_context: str | None = None,
        include_token: bool = False,
        recovered_meter: bool = False,
    ) -> None:
        assert st.tx_id is not None
        now = self.clock.now()
        info: dict[str, Any] = {"transaction_id": st.tx_id}
        if st.charging_state is not None:
            info["charging_state"] = st.charging_state
        if event_type == "Ended":
            info["charging_state"] = "EVConnected" if st.plugged else "Idle"
            info["stopped_reason"] = stopped_reason or "Other"
        if st.remote_start_id is not None and (event_type == "Started" or trigger == "RemoteStart"):
            info["remote_start_id"] = st.remote_start_id
        payload: dict[str, Any] = {
            "event_type": event_type,
            "timestamp": iso_ms(now),
            "trigger_reason": trigger,
            "seq_no": st.seq_no,
            "transaction_info": info,
            "evse": {"id": st.evse_id, "connector_id": 1},
        }
        if not self.is_online():
            payload["offline"] = True
        if include_token and st.id_token is not None:
            payload["id_token"] = st.id_token
            if st.reservation_id is not None:
                payload["reservation_id"] = st.reservation_id
        if meter_context is not None:
            mv = self._meter(st, event_type, meter_context, recovered_meter)
            values = list(st.ended_samples) if event_type == "Ended" else []
            if mv is not None:
                values.append(mv)
            if values:
                payload["meter_value"] = values
        with self.storage.atomic():
            st.seq_no += 1
            if event_type == "Ended":
                st.tx_id = None
                st.tx_started_at = None
                st.seq_no = 0
                st.charging_state = None
                st.reached = []
                st.remote_start_id = None
                st.pending_profile = None
                st.last_meter = None
                st.invalid_energy_cap_wh = None
                st.ended_samples = []
                st.reservation_id = None
                st.tx_start_import_wh = None
                st.running_cost = None
                # The authorization is consumed by the transaction it started.
                st.id_token = None
                st.group_id_token = None
            self._persist(st)
            self.outbox.put("TransactionEvent", payload)

    def _meter(
        self, st: EvseState, event_type: str, context: str, recovered: bool
    ) -> dict[str, Any] | None:
        if recovered:
            # After a crash the hardware restarted: report the last reading we persisted.
            if st.last_meter is None:
                return None
            values = [dict(v, context=context) for v in st.last_meter["sampled_value"]]
            return {"timestamp": st.last_meter["timestamp"], "sampled_value": values}
        variable = {
            "Started": "TxStartedMeasurands",
            "Ended": "TxEndedMeasurands",
        }.get(event_type, "TxUpdatedMeasurands")
        status = self.hardware[st.evse_id].status()
        mv = meter_value(
            status, self.config.members("SampledDataCtrlr", variable), context, self.clock.now()
        )
        if mv is not None and event_type != "Ended":
            st.last_meter = mv
        return mv
