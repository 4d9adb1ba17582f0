"""Local V2X behaviour of the agent, between the composite schedule and the hardware:

- Frequency-watt response (V2XCtrlr.FreqWattEnabled / FreqWattCurve): the curve
  (`csms.v2g.frequency.freq_watt`, pure) is applied to the measured grid frequency
  (`EvseStatus.grid_frequency_hz`). Outside the curve's dead band its answer takes over when it
  asks for more grid support than the schedule: under-frequency discharges at least the curve's
  power, over-frequency charges at least the curve's power (and never discharges). The safety
  supervisor still clamps the result (EV and EVSE limits, SoC window, no export without grid).
- Emergency backup (DataTransfer vendorId "org.openv2g.v2x", messageId "EmergencyBackup",
  data '{"enabled": true|false}' from the CSMS): while on, the battery is kept for the house:
  no discharge to the grid from the schedule or the frequency response.

Wiring: `local_v2x_for(smart)` gives the one LocalV2x of a SmartCharging (built on first use
from its `config` and `wake`); SmartCharging.publish_now passes every setpoint through its
`adjust()` before `set_setpoint`, and the DataTransfer handler asks its `data_transfer()`.
While the response is enabled `adjust` asks for a new evaluation every `poll_s` (frequency
moves without the schedule changing); when disabled it costs one configuration read.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

from chargepoint_firmware.interfaces import EvseSetpoint, EvseStatus
from v2g_shared.freq_watt import FreqWattCurve, freq_watt

log = logging.getLogger(__name__)

BACKUP_VENDOR_ID = "org.openv2g.v2x"
BACKUP_MESSAGE_ID = "EmergencyBackup"


class ConfigSource(Protocol):
    def raw(self, component: str, variable: str) -> str: ...


def parse_curve(text: str) -> FreqWattCurve | None:
    """V2XCtrlr.FreqWattCurve JSON ([[Hz, W], ...]) as a curve; None when unreadable."""
    try:
        points = json.loads(text)
        return FreqWattCurve(tuple((float(hz), float(w)) for hz, w in points))
    except (ValueError, TypeError):
        return None


def frequency_adjusted(
    setpoint: EvseSetpoint,
    curve: FreqWattCurve,
    status: EvseStatus,
    nominal_voltage_v: float,
    discharge_allowed: bool,
) -> EvseSetpoint:
    """The setpoint after the frequency-watt response (pure)."""
    hz = status.grid_frequency_hz
    if hz is None or not status.grid_present:
        return setpoint
    watts = freq_watt(curve, hz)
    if watts == 0.0:
        return setpoint
    if setpoint.unit == "A":
        volts = status.voltage_v if status.voltage_v > 0 else nominal_voltage_v
        response = watts / volts
    else:
        response = watts
    limit = setpoint.limit
    if response < 0:
        if not discharge_allowed:
            return setpoint
        new = response if limit is None else min(limit, response)
    else:
        new = response if limit is None or limit < 0 else max(limit, response)
    if new == limit:
        return setpoint
    return replace(setpoint, limit=new, source="freq_watt")


def backup_held(setpoint: EvseSetpoint) -> EvseSetpoint:
    """Emergency backup: keep the battery for the house (no discharge to the grid)."""
    if setpoint.limit is not None and setpoint.limit < 0:
        return replace(setpoint, limit=0.0, source="emergency_backup")
    return setpoint


class LocalV2x:
    def __init__(
        self,
        config: ConfigSource,
        *,
        wake: Callable[[], None] | None = None,
        poll_s: float = 0.2,
    ) -> None:
        self.config = config
        self.wake = wake
        self.poll_s = poll_s
        self.emergency_backup = False
        self._curve_text: str | None = None
        self._curve: FreqWattCurve | None = None
        self._rewake: asyncio.TimerHandle | None = None
        # A changed V2XCtrlr variable (SetVariables from the CSMS) takes effect at once.
        subscribe = getattr(getattr(config, "source", None), "on_change", None)
        if wake is not None and callable(subscribe):
            try:
                subscribe(self._on_config_change)
            except (NotImplementedError, TypeError):
                log.debug("device model without change listeners: V2XCtrlr changes wait")

    def _on_config_change(self, component: str, _variable: str) -> None:
        if component == "V2XCtrlr" and self.wake is not None:
            self.wake()

    def _read(self, component: str, variable: str) -> str | None:
        try:
            return self.config.raw(component, variable)
        except (KeyError, LookupError, ValueError):
            return None

    def enabled(self) -> bool:
        return (self._read("V2XCtrlr", "FreqWattEnabled") or "").strip().lower() == "true"

    def curve(self) -> FreqWattCurve | None:
        text = self._read("V2XCtrlr", "FreqWattCurve")
        if text != self._curve_text:
            self._curve_text, self._curve = text, parse_curve(text) if text else None
            if text and self._curve is None:
                log.warning("V2XCtrlr.FreqWattCurve unreadable: %r", text)
        return self._curve

    def discharge_allowed(self) -> bool:
        value = self._read("V2XCtrlr", "NegativeLimitIsDischarge")
        return value is None or value.strip().lower() == "true"

    def adjust(
        self, setpoint: EvseSetpoint, status: EvseStatus, nominal_voltage_v: float
    ) -> EvseSetpoint:
        """The setpoint to publish: schedule, then frequency response, then backup hold."""
        out = setpoint
        if self.enabled():
            curve = self.curve()
            if curve is not None and not self.emergency_backup:
                out = frequency_adjusted(
                    out, curve, status, nominal_voltage_v, self.discharge_allowed()
                )
            self._schedule_rewake()
        if self.emergency_backup:
            out = backup_held(out)
        return out

    def poll_again(self) -> None:
        """Evaluate again in `poll_s` (a measured input such as the frequency moves)."""
        self._schedule_rewake()

    def _schedule_rewake(self) -> None:
        if self.wake is None or (self._rewake is not None and not self._rewake.cancelled()):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._rewake = loop.call_later(self.poll_s, self._fire)

    def _fire(self) -> None:
        self._rewake = None
        if self.wake is not None:
            self.wake()

    def close(self) -> None:
        if self._rewake is not None:
            self._rewake.cancel()
            self._rewake = None

    # -- emergency backup over DataTransfer -----------------------------------------------------
    def data_transfer(
        self, vendor_id: str, message_id: str | None, data: Any
    ) -> tuple[str, dict[str, Any] | None]:
        """(status, statusInfo) for a DataTransfer; switches emergency backup when it is ours."""
        if vendor_id != BACKUP_VENDOR_ID:
            return "UnknownVendorId", {"reasonCode": "UnknownVendor"}
        if message_id != BACKUP_MESSAGE_ID:
            return "UnknownMessageId", {"reasonCode": "UnknownMessageId"}
        try:
            parsed = json.loads(data) if isinstance(data, str) else data
            enabled = parsed["enabled"]
        except (ValueError, TypeError, KeyError):
            return "Rejected", {"reasonCode": "InvalidValue"}
        if not isinstance(enabled, bool):
            return "Rejected", {"reasonCode": "InvalidValue"}
        self.emergency_backup = enabled
        if self.wake is not None:
            self.wake()
        return "Accepted", None


class _HasConfigAndWake(Protocol):
    config: Any

    def wake(self) -> None: ...


def local_v2x_for(smart: _HasConfigAndWake) -> LocalV2x:
    """The LocalV2x of this SmartCharging, made on first use and kept on it."""
    found: LocalV2x | None = getattr(smart, "_local_v2x", None)
    if found is None:
        found = LocalV2x(smart.config, wake=smart.wake)
        smart._local_v2x = found  # type: ignore[attr-defined]
    return found
