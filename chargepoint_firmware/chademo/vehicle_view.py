"""What the charger knows of the vehicle: the latest of each vehicle frame (0x100, 0x101, 0x102,
0x200, 0x201) and when frames arrived, with the values the controller and the supervisor read
from them (pure)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final

from chargepoint_firmware.chademo.frames import (
    Frame,
    VehicleChargeLimits,
    VehicleChargeTime,
    VehicleDischargeEstimate,
    VehicleDischargeLimits,
    VehicleStatus,
)

__all__ = ["NORMAL_STOP_FLAG", "VehicleView"]

# Vehicle flags that force an error stop; the normal stop request is handled as a normal stop.
NORMAL_STOP_FLAG: Final = "normal_stop_request"


@dataclass(frozen=True, slots=True)
class VehicleView:
    """The latest of each vehicle frame, and when frames arrived (monotonic seconds)."""

    charge_limits: VehicleChargeLimits | None = None
    charge_time: VehicleChargeTime | None = None
    status: VehicleStatus | None = None
    discharge_limits: VehicleDischargeLimits | None = None
    discharge_estimate: VehicleDischargeEstimate | None = None
    last_frame_at: float | None = None
    # First 0x200 limit if it was non-zero: pre-guideline-1.1 cars send garbage there first.
    masked_discharge_limit_a: int | None = None

    def with_frame(self, frame: Frame, now: float) -> VehicleView:
        """This view updated with one received vehicle frame (charger frames are ignored)."""
        if isinstance(frame, VehicleChargeLimits):
            return replace(self, charge_limits=frame, last_frame_at=now)
        if isinstance(frame, VehicleChargeTime):
            return replace(self, charge_time=frame, last_frame_at=now)
        if isinstance(frame, VehicleStatus):
            return replace(self, status=frame, last_frame_at=now)
        if isinstance(frame, VehicleDischargeLimits):
            masked = self.masked_discharge_limit_a
            if self.discharge_limits is None and frame.max_discharge_current_a > 0:
                masked = frame.max_discharge_current_a
            elif masked is not None and frame.max_discharge_current_a != masked:
                masked = None  # the value moved: it is live now
            return replace(
                self, discharge_limits=frame, last_frame_at=now, masked_discharge_limit_a=masked
            )
        if isinstance(frame, VehicleDischargeEstimate):
            return replace(
                self, discharge_estimate=frame, last_frame_at=now, masked_discharge_limit_a=None
            )
        return self

    @property
    def charge_request_a(self) -> float:
        return float(self.status.charging_current_request_a) if self.status else 0.0

    @property
    def max_discharge_current_a(self) -> float:
        if self.discharge_limits is None or self.masked_discharge_limit_a is not None:
            return 0.0
        return float(self.discharge_limits.max_discharge_current_a)

    @property
    def discharge_compatible(self) -> bool:
        return bool(self.status and self.status.discharge_compatible and self.discharge_limits)

    @property
    def soc_pct(self) -> float | None:
        # 0x102 byte 6 is a charged rate against 0x100 byte 6: unknown until 0x100 arrives.
        if self.status is None or self.charge_limits is None:
            return None
        return self.status.soc_pct(self.charge_limits.charged_rate_reference)

    @property
    def max_voltage_v(self) -> float | None:
        limits = self.charge_limits
        return float(limits.maximum_battery_voltage_v) if limits else None

    @property
    def min_discharge_voltage_v(self) -> float | None:
        limits = self.discharge_limits
        return float(limits.min_discharge_voltage_v) if limits else None

    def faults(self) -> frozenset[str]:
        """Vehicle flags that demand an error stop (not the normal stop request)."""
        if self.status is None:
            return frozenset()
        return self.status.faults() - {NORMAL_STOP_FLAG}
