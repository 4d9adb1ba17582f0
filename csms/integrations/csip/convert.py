"""2030.5 documents <-> the project's values (pure). Every number from the server is bounded
before use: a value the project cannot act on makes the control invalid (CsipValueError), it is
never clipped into something else.

- controls: DERControl / DefaultDERControl -> CsipControl / CsipDefaultControl (value x
  10^multiplier, W >= 0 and <= MAX_ENVELOPE_W; setGradW in hundredths of % per second;
  rampTms in hundredths of a second, clamped to MAX_RAMP_TIME_S, a negative one refused);
- poll rates: the server's pollRate bounded to [min, max] of the settings;
- what the client reports: DERCapability, DERSettings, DERStatus from the site's ratings and
  live state, ConnectionPoint from the NMI, the EndDevice to register.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from envoy_schema.server.schema.csip_aus.connection_point import ConnectionPointRequest
from envoy_schema.server.schema.sep2.der import (
    ConnectStatusTypeValue,
    DefaultDERControl,
    DERCapability,
    DERControlBase,
    DERControlResponse,
    DERControlType,
    DERSettings,
    DERStatus,
    DERType,
    DOESupportedMode,
    OperationalModeStatusType,
    OperationalModeStatusTypeValue,
    StorageModeStatusType,
    StorageModeStatusTypeValue,
)
from envoy_schema.server.schema.sep2.der_control_types import ActivePower
from envoy_schema.server.schema.sep2.end_device import EndDeviceRequest

from csms.domain.csip_controls import CsipControl, CsipDefaultControl, DerLimits
from csms.domain.envelopes import MAX_ENVELOPE_W, MAX_RAMP_PCT_PER_S, MAX_RAMP_TIME_S

MAX_MULTIPLIER = 9  # |power of ten| accepted on a value
MAX_DURATION_S = 7 * 86_400  # a control longer than a week is not one we act on
MAX_RANDOMIZE_S = 3_600  # 2030.5 OneHourRangeType
MAX_TIME = 2**32  # seconds since the epoch: 2030.5 TimeType is an Int64, 2106 is far enough
MAX_PRIMACY = 255
MAX_MRID_CHARS = 32  # HexBinary128

# The DOE modes this client enforces (all four, CSIP-AUS doeModesSupported) and the 2030.5
# control modes: connect, energize, max W, charge and discharge (a bidirectional charger).
DOE_MODES = (
    DOESupportedMode.OP_MOD_EXPORT_LIMIT_W
    | DOESupportedMode.OP_MOD_IMPORT_LIMIT_W
    | DOESupportedMode.OP_MOD_GENERATION_LIMIT_W
    | DOESupportedMode.OP_MOD_LOAD_LIMIT_W
)
CONTROL_MODES = (
    DERControlType.CHARGE_MODE
    | DERControlType.DISCHARGE_MODE
    | DERControlType.OP_MOD_CONNECT
    | DERControlType.OP_MOD_ENERGIZE
    | DERControlType.OP_MOD_MAX_LIM_W
)


class CsipValueError(ValueError):
    """A value from the server outside what the client accepts."""


def _int(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise CsipValueError(f"{name} = {value!r} outside {low}..{high}")
    return value


def watts(name: str, power: ActivePower | None) -> float | None:
    """A 2030.5 ActivePower as W (>= 0, <= MAX_ENVELOPE_W), None when absent."""
    if power is None:
        return None
    multiplier = _int(f"{name}.multiplier", power.multiplier, -MAX_MULTIPLIER, MAX_MULTIPLIER)
    value = _int(f"{name}.value", power.value, -(2**31), 2**31)
    result = value * 10.0**multiplier
    if not (math.isfinite(result) and 0 <= result <= MAX_ENVELOPE_W):
        raise CsipValueError(f"{name} = {result:g} W outside 0..{MAX_ENVELOPE_W:g}")
    return result


def ramp_pct_per_s(set_grad_w: int | None) -> float | None:
    """setGradW (hundredths of % of rated power per second; 0 = no limit) as %/s."""
    if set_grad_w is None or set_grad_w == 0:
        return None
    value = _int("setGradW", set_grad_w, 1, int(MAX_RAMP_PCT_PER_S * 100)) / 100.0
    return value


def ramp_time_s(ramp_tms: int | None) -> float | None:
    """DERControlBase.rampTms (hundredths of a second; absent or 0: no ramp of its own) as
    seconds, a longer one clamped to MAX_RAMP_TIME_S. A negative or non-integer value is passed
    on as it is, so the control is rejected (253: csip_controls.control_error)."""
    if ramp_tms is None or ramp_tms == 0:
        return None
    if isinstance(ramp_tms, bool) or not isinstance(ramp_tms, int) or ramp_tms < 0:
        return -1.0
    return min(ramp_tms / 100.0, MAX_RAMP_TIME_S)


def limits_of(base: DERControlBase, set_grad_w: int | None = None) -> DerLimits:
    return DerLimits(
        export_limit_w=watts("opModExpLimW", base.opModExpLimW),
        import_limit_w=watts("opModImpLimW", base.opModImpLimW),
        generation_limit_w=watts("opModGenLimW", base.opModGenLimW),
        load_limit_w=watts("opModLoadLimW", base.opModLoadLimW),
        energize=base.opModEnergize,
        connect=base.opModConnect,
        ramp_rate_pct_per_s=ramp_pct_per_s(set_grad_w),
    )


def _time(name: str, value: int) -> datetime:
    return datetime.fromtimestamp(_int(name, value, 0, MAX_TIME), UTC)


def _mrid(value: str) -> str:
    if not value or len(value) > MAX_MRID_CHARS:
        raise CsipValueError(f"mRID of {len(value)} characters")
    return value.upper()


# DERControlBase modes the client cannot act on: a control with only these is rejected (252).
UNSUPPORTED_MODES = (
    "opModFixedPFAbsorbW",
    "opModFixedPFInjectW",
    "opModFixedVar",
    "opModFixedW",
    "opModFreqDroop",
    "opModFreqWatt",
    "opModMaxLimW",
    "opModTargetVar",
    "opModTargetW",
    "opModVoltVar",
    "opModVoltWatt",
    "opModWattPF",
    "opModWattVar",
)


def control_of(doc: DERControlResponse, program_href: str, primacy: int) -> CsipControl:
    """A DERControl as the life cycle's CsipControl (CsipValueError when out of bounds)."""
    interval = doc.interval
    base = doc.DERControlBase_
    return CsipControl(
        mrid=_mrid(doc.mRID),
        href=doc.href or program_href,
        program_href=program_href,
        primacy=_int("primacy", primacy, 0, MAX_PRIMACY),
        creation_time=_time("creationTime", doc.creationTime),
        start=_time("interval.start", interval.start),
        duration_s=_int("interval.duration", interval.duration, 0, MAX_DURATION_S),
        randomize_start_s=_int(
            "randomizeStart", doc.randomizeStart or 0, -MAX_RANDOMIZE_S, MAX_RANDOMIZE_S
        ),
        randomize_duration_s=_int(
            "randomizeDuration", doc.randomizeDuration or 0, -MAX_RANDOMIZE_S, MAX_RANDOMIZE_S
        ),
        current_status=_int("EventStatus.currentStatus", doc.EventStatus_.currentStatus, 0, 4),
        reply_to=doc.replyTo,
        response_required=int(str(doc.responseRequired or "0"), 16) & 0xFF,
        limits=limits_of(base),
        unsupported_modes=frozenset(m for m in UNSUPPORTED_MODES if getattr(base, m) is not None),
        ramp_time_s=ramp_time_s(base.rampTms),
    )


def default_of(doc: DefaultDERControl, program_href: str, primacy: int) -> CsipDefaultControl:
    return CsipDefaultControl(
        mrid=_mrid(doc.mRID),
        href=doc.href or program_href,
        program_href=program_href,
        primacy=_int("primacy", primacy, 0, MAX_PRIMACY),
        limits=limits_of(doc.DERControlBase_, doc.setGradW),
    )


def bounded_poll_rate(server_rate: int | None, low: int, high: int, default: int = 900) -> int:
    """The server's pollRate (seconds; 2030.5's default 900 when absent) within [low, high]."""
    rate = default if server_rate is None or isinstance(server_rate, bool) else server_rate
    return max(low, min(high, int(rate)))


# ---- what the client reports -------------------------------------------------------------


@dataclass(frozen=True)
class SiteRatings:
    """The site's chargers together, W (>= 0)."""

    max_charge_w: float
    max_discharge_w: float


@dataclass(frozen=True)
class SiteLiveState:
    connected: bool  # a charger of the site is connected to the grid (online)
    operating: bool  # one is charging or discharging
    discharging: bool = False
    charging: bool = False


def _power(watts_value: float) -> ActivePower:
    """W as an ActivePower with the multiplier that keeps the value within an Int16's range."""
    value = max(0.0, float(watts_value))
    multiplier = 0
    while value >= 32_767 and multiplier < MAX_MULTIPLIER:
        value /= 10
        multiplier += 1
    return ActivePower(value=round(value), multiplier=multiplier)


def der_capability(ratings: SiteRatings) -> DERCapability:
    return DERCapability(
        modesSupported=f"{int(CONTROL_MODES):08X}",
        rtgMaxW=_power(max(ratings.max_charge_w, ratings.max_discharge_w)),
        rtgMaxChargeRateW=_power(ratings.max_charge_w),
        rtgMaxDischargeRateW=_power(ratings.max_discharge_w),
        type_=DERType.ELECTRIC_VEHICLE,
        doeModesSupported=f"{int(DOE_MODES):02X}",
    )


def der_settings(ratings: SiteRatings, now: datetime, set_grad_w: int = 0) -> DERSettings:
    """`set_grad_w`: the ramp rate the site follows (the server's default setGradW, in
    hundredths of a percent per second); 0 = no ramp limit of our own."""
    return DERSettings(
        modesEnabled=f"{int(CONTROL_MODES):08X}",
        setGradW=max(0, min(10_000, int(set_grad_w))),
        setMaxW=_power(max(ratings.max_charge_w, ratings.max_discharge_w)),
        setMaxChargeRateW=_power(ratings.max_charge_w),
        setMaxDischargeRateW=_power(ratings.max_discharge_w),
        updatedTime=int(now.timestamp()),
        doeModesEnabled=f"{int(DOE_MODES):02X}",
    )


def der_status(state: SiteLiveState, now: datetime) -> DERStatus:
    """genConnectStatus bits: 0 connected, 1 available, 2 operating; operationalModeStatus
    2 operational, 1 off (not producing or consuming)."""
    t = int(now.timestamp())
    bits = (1 | 2) if state.connected else 0
    if state.connected and state.operating:
        bits |= 4
    storage = (
        StorageModeStatusType.STORAGE_DISCHARGING
        if state.discharging
        else StorageModeStatusType.STORAGE_CHARGING
        if state.charging
        else StorageModeStatusType.STORAGE_HOLDING
    )
    return DERStatus(
        readingTime=t,
        genConnectStatus=ConnectStatusTypeValue(dateTime=t, value=f"{bits:02X}"),
        operationalModeStatus=OperationalModeStatusTypeValue(
            dateTime=t,
            value=OperationalModeStatusType.OPERATIONAL_MODEL
            if state.operating
            else OperationalModeStatusType.OFF,
        ),
        storageModeStatus=StorageModeStatusTypeValue(dateTime=t, value=storage),
    )


def connection_point(nmi: str) -> ConnectionPointRequest:
    return ConnectionPointRequest(id=nmi)


def end_device(lfdi: str, sfdi: int, now: datetime, post_rate_s: int = 60) -> EndDeviceRequest:
    return EndDeviceRequest(
        lFDI=lfdi.upper(), sFDI=sfdi, changedTime=int(now.timestamp()), postRate=post_rate_s
    )
