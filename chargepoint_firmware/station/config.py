"""Typed reads of the configuration variables the agent acts on.

The device model (chargepoint_firmware/device_model/) is the source of truth when present;
`ConfigView` reads through it and falls back to the OCPP defaults below, so that the agent works
(and its tests run) with any device model that answers `value(component, variable)`.
"""

from __future__ import annotations

from typing import Any, Protocol

DEFAULTS: dict[tuple[str, str], str] = {
    ("OCPPCommCtrlr", "HeartbeatInterval"): "300",
    ("TxCtrlr", "TxStartPoint"): "PowerPathClosed",
    ("TxCtrlr", "TxStopPoint"): "EVConnected,Authorized",
    ("TxCtrlr", "StopTxOnEVSideDisconnect"): "true",
    ("TxCtrlr", "EVConnectionTimeOut"): "120",
    ("SampledDataCtrlr", "TxUpdatedInterval"): "60",
    ("SampledDataCtrlr", "TxStartedMeasurands"): "Energy.Active.Import.Register,"
    "Energy.Active.Export.Register,SoC",
    ("SampledDataCtrlr", "TxUpdatedMeasurands"): "Energy.Active.Import.Register,"
    "Energy.Active.Export.Register,Power.Active.Import,Power.Active.Export,Current.Import,"
    "Current.Export,Voltage,SoC",
    ("SampledDataCtrlr", "TxEndedMeasurands"): "Energy.Active.Import.Register,"
    "Energy.Active.Export.Register,SoC",
    ("AlignedDataCtrlr", "Interval"): "900",
    ("AlignedDataCtrlr", "Measurands"): "Energy.Active.Import.Register,"
    "Energy.Active.Export.Register,Power.Active.Import,Power.Active.Export,Voltage,SoC",
    ("AlignedDataCtrlr", "SendDuringIdle"): "false",
    ("AuthCtrlr", "AuthorizeRemoteStart"): "false",
    ("AuthCtrlr", "LocalAuthorizeOffline"): "true",
    ("AuthCtrlr", "LocalPreAuthorize"): "false",
    ("AuthCtrlr", "OfflineTxForUnknownIdEnabled"): "false",
    ("TxCtrlr", "StopTxOnInvalidId"): "true",
    ("TxCtrlr", "MaxEnergyOnInvalidId"): "0",
    ("OCPPCommCtrlr", "MessageAttempts"): "3",
    ("OCPPCommCtrlr", "MessageAttemptInterval"): "60",
    ("OCPPCommCtrlr", "RetryBackOffWaitMinimum"): "3",
    ("OCPPCommCtrlr", "RetryBackOffRandomRange"): "10",
    ("OCPPCommCtrlr", "RetryBackOffRepeatTimes"): "5",
    ("SampledDataCtrlr", "TxEndedInterval"): "0",
    ("AuthCacheCtrlr", "Enabled"): "true",
    ("AuthCacheCtrlr", "LifeTime"): "86400",
    ("AuthCacheCtrlr", "Policy"): "LRU",
    ("AuthCacheCtrlr", "DisablePostAuthorize"): "false",
    ("AuthCacheCtrlr", "Storage"): "0",
    ("LocalAuthListCtrlr", "Enabled"): "true",
    ("LocalAuthListCtrlr", "Entries"): "1000",
    ("SmartChargingCtrlr", "ProfileStackLevel"): "8",
    ("SmartChargingCtrlr", "PeriodsPerSchedule"): "1024",
    ("SmartChargingCtrlr", "Entries"): "100",
    ("SmartChargingCtrlr", "RateUnit"): "A,W",
    ("V2XCtrlr", "NegativeLimitIsDischarge"): "true",
    ("DeviceDataCtrlr", "ItemsPerMessageGetReport"): "50",
    ("ReservationCtrlr", "Enabled"): "true",
    ("ReservationCtrlr", "NonEvseSpecific"): "true",
}


class ValueSource(Protocol):
    def value(self, component: str, variable: str) -> Any: ...


class ConfigView:
    def __init__(self, source: ValueSource | None = None) -> None:
        self.source = source

    def raw(self, component: str, variable: str) -> str:
        if self.source is not None:
            try:
                value = self.source.value(component, variable)
            except (KeyError, LookupError, ValueError):
                value = None
            if value is not None:
                if isinstance(value, bool):
                    return "true" if value else "false"
                return str(value)
        return DEFAULTS[(component, variable)]

    def integer(self, component: str, variable: str) -> int:
        return int(float(self.raw(component, variable)))

    def boolean(self, component: str, variable: str) -> bool:
        return self.raw(component, variable).strip().lower() == "true"

    def members(self, component: str, variable: str) -> list[str]:
        return [m.strip() for m in self.raw(component, variable).split(",") if m.strip()]
