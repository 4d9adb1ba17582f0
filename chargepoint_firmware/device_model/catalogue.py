"""The standard variables the agent's device model holds: station-wide controllers and the
per-EVSE variables, with their defaults and characteristics (OCPP 2.0.1 Part 2 appendix names)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chargepoint_firmware.device_model.definitions import (
    AttributeDefinition,
    AttributeType,
    DataType,
    Mutability,
    VariableDefinition,
    VariableRef,
)
from chargepoint_firmware.device_model.validation import (
    format_number,
    freq_watt_curve_error,
    no_downgrade,
    not_negative,
)
from v2g_shared.schedule import OperationMode

MEASURANDS = (
    "Current.Export",
    "Current.Import",
    "Current.Offered",
    "Energy.Active.Export.Register",
    "Energy.Active.Import.Register",
    "Energy.Active.Net",
    "Frequency",
    "Power.Active.Export",
    "Power.Active.Import",
    "Power.Offered",
    "SoC",
    "Voltage",
)
TX_POINTS = (
    "ParkingBayOccupancy",
    "EVConnected",
    "Authorized",
    "DataSigned",
    "PowerPathClosed",
    "EnergyTransfer",
)
AVAILABILITY_STATES = ("Available", "Occupied", "Reserved", "Unavailable", "Faulted")
ENERGY_REGISTERS = "Energy.Active.Import.Register,Energy.Active.Export.Register"
V2X_CHARGING_CTRLR = "V2XChargingCtrlr"
SUPPORTED_OPERATION_MODES = tuple(mode.value for mode in OperationMode)

RO, WO, RW = Mutability.READ_ONLY, Mutability.WRITE_ONLY, Mutability.READ_WRITE
T = DataType


def _var(
    component: str,
    variable: str,
    data_type: DataType,
    default: str | None,
    mutability: Mutability = RW,
    *,
    evse_id: int | None = None,
    connector_id: int | None = None,
    instance: str | None = None,
    extra_attributes: Sequence[AttributeDefinition] = (),
    **characteristics: Any,
) -> VariableDefinition:
    ref = VariableRef(component, variable, evse_id, connector_id, None, instance)
    actual = AttributeDefinition(AttributeType.ACTUAL, mutability, default)
    return VariableDefinition(ref, data_type, (actual, *extra_attributes), **characteristics)


DEFAULT_AUTH_CACHE_STORAGE_BYTES = 131_072


def station_variables(
    auth_cache_storage_bytes: int = DEFAULT_AUTH_CACHE_STORAGE_BYTES,
) -> list[VariableDefinition]:
    comm, sec, sc, tx = "OCPPCommCtrlr", "SecurityCtrlr", "SmartChargingCtrlr", "TxCtrlr"
    sd, ad, auth = "SampledDataCtrlr", "AlignedDataCtrlr", "AuthCtrlr"
    cache, lal, ddc, cs, v2x = (
        "AuthCacheCtrlr",
        "LocalAuthListCtrlr",
        "DeviceDataCtrlr",
        "ChargingStation",
        "V2XCtrlr",
    )
    s = "s"
    return [
        _var(comm, "HeartbeatInterval", T.INTEGER, "300", unit=s, min_limit=1, max_limit=86400),
        _var(comm, "MessageTimeout", T.INTEGER, "30", instance="Default", unit=s, min_limit=1,
             max_limit=3600),
        _var(comm, "NetworkProfileConnectionAttempts", T.INTEGER, "3", min_limit=1, max_limit=100),
        _var(comm, "OfflineThreshold", T.INTEGER, "60", unit=s, min_limit=0, max_limit=86400),
        _var(comm, "MessageAttempts", T.INTEGER, "3", instance="TransactionEvent", min_limit=0,
             max_limit=10),
        _var(comm, "MessageAttemptInterval", T.INTEGER, "60", instance="TransactionEvent", unit=s,
             min_limit=0, max_limit=3600),
        _var(comm, "RetryBackOffRandomRange", T.INTEGER, "10", unit=s, min_limit=0, max_limit=600),
        _var(comm, "RetryBackOffRepeatTimes", T.INTEGER, "5", min_limit=0, max_limit=100),
        _var(comm, "RetryBackOffWaitMinimum", T.INTEGER, "3", unit=s, min_limit=0, max_limit=600),
        _var(comm, "WebSocketPingInterval", T.INTEGER, "30", unit=s, min_limit=0, max_limit=3600),
        _var(comm, "ResetRetries", T.INTEGER, "2", min_limit=0, max_limit=10),
        _var(comm, "FileTransferProtocols", T.MEMBER_LIST, "HTTPS", RO, constant=True,
             values_list=("HTTP", "HTTPS", "FTP", "FTPS", "SFTP")),
        _var(sec, "SecurityProfile", T.INTEGER, "1", min_limit=0, max_limit=3,
             reboot_required=True, validator=no_downgrade),
        _var(sec, "BasicAuthPassword", T.STRING, None, WO, min_limit=16, max_limit=40),
        _var(sec, "Identity", T.STRING, "", max_limit=48, reboot_required=True),
        _var(sec, "OrganizationName", T.STRING, "", max_limit=50),
        _var(sec, "CertificateEntries", T.INTEGER, "0", RO, persistent=False),
        _var(sc, "Enabled", T.BOOLEAN, "true"),
        _var(sc, "Available", T.BOOLEAN, "true", RO, persistent=False),
        _var(sc, "ProfileStackLevel", T.INTEGER, "8", RO, constant=True),
        _var(sc, "RateUnit", T.MEMBER_LIST, "A,W", RO, constant=True, values_list=("A", "W")),
        _var(sc, "PeriodsPerSchedule", T.INTEGER, "1024", RO, constant=True),
        _var(sc, "Entries", T.INTEGER, "0", RO, instance="ChargingProfiles", max_limit=100,
             persistent=False),
        _var(sc, "LimitChangeSignificance", T.DECIMAL, "10", unit="Percent", min_limit=0,
             max_limit=100),
        _var(sc, "ExternalControlSignalsEnabled", T.BOOLEAN, "false"),
        _var(tx, "EVConnectionTimeOut", T.INTEGER, "120", unit=s, min_limit=0, max_limit=3600),
        _var(tx, "StopTxOnEVSideDisconnect", T.BOOLEAN, "true"),
        _var(tx, "TxStartPoint", T.MEMBER_LIST, "PowerPathClosed", values_list=TX_POINTS),
        _var(tx, "TxStopPoint", T.MEMBER_LIST, "EVConnected,Authorized", values_list=TX_POINTS),
        _var(tx, "StopTxOnInvalidId", T.BOOLEAN, "true"),
        _var(tx, "MaxEnergyOnInvalidId", T.INTEGER, "0", unit="Wh", min_limit=0),
        _var(sd, "Enabled", T.BOOLEAN, "true"),
        _var(sd, "TxUpdatedInterval", T.INTEGER, "60", unit=s, min_limit=0, max_limit=86400),
        _var(sd, "TxStartedMeasurands", T.MEMBER_LIST, ENERGY_REGISTERS + ",SoC",
             values_list=MEASURANDS),
        _var(sd, "TxUpdatedMeasurands", T.MEMBER_LIST,
             ENERGY_REGISTERS + ",Power.Active.Import,Power.Active.Export,Current.Import,"
             "Current.Export,Voltage,SoC", values_list=MEASURANDS),
        _var(sd, "TxEndedMeasurands", T.MEMBER_LIST, ENERGY_REGISTERS + ",SoC",
             values_list=MEASURANDS),
        _var(sd, "TxEndedInterval", T.INTEGER, "0", unit=s, min_limit=0, max_limit=86400),
        _var(ad, "Enabled", T.BOOLEAN, "true"),
        _var(ad, "Interval", T.INTEGER, "900", unit=s, min_limit=0, max_limit=86400),
        _var(ad, "Measurands", T.MEMBER_LIST, ENERGY_REGISTERS, values_list=MEASURANDS),
        _var(ad, "TxEndedInterval", T.INTEGER, "0", unit=s, min_limit=0, max_limit=86400),
        _var(ad, "TxEndedMeasurands", T.MEMBER_LIST, ENERGY_REGISTERS, values_list=MEASURANDS),
        _var(ad, "SendDuringIdle", T.BOOLEAN, "false"),
        _var(auth, "Enabled", T.BOOLEAN, "true"),
        _var(auth, "AuthorizeRemoteStart", T.BOOLEAN, "false"),
        _var(auth, "LocalAuthorizeOffline", T.BOOLEAN, "true"),
        _var(auth, "LocalPreAuthorize", T.BOOLEAN, "false"),
        _var(auth, "OfflineTxForUnknownIdEnabled", T.BOOLEAN, "false"),
        _var(cache, "Enabled", T.BOOLEAN, "true"),
        _var(cache, "Available", T.BOOLEAN, "true", RO, persistent=False),
        # C10: LifeTime 0 = entries never lapse by age (cacheExpiryDateTime still applies).
        _var(cache, "LifeTime", T.INTEGER, "86400", unit=s, min_limit=0),
        _var(cache, "Policy", T.OPTION_LIST, "LRU", values_list=("LRU", "LFU", "FIFO", "CUSTOM")),
        # Actual = bytes in use, maxLimit = capacity (blocks/authorization/auth_cache_policy.py).
        _var(cache, "Storage", T.INTEGER, "0", RO, unit="B", min_limit=0,
             max_limit=auth_cache_storage_bytes, persistent=False),
        _var(cache, "DisablePostAuthorize", T.BOOLEAN, "false"),
        # H01: reservations (ReserveNow / CancelReservation)
        _var("ReservationCtrlr", "Enabled", T.BOOLEAN, "true"),
        _var("ReservationCtrlr", "Available", T.BOOLEAN, "true", RO, persistent=False),
        _var("ReservationCtrlr", "NonEvseSpecific", T.BOOLEAN, "true"),
        _var(lal, "Enabled", T.BOOLEAN, "true"),
        _var(lal, "Available", T.BOOLEAN, "true", RO, persistent=False),
        _var(lal, "Entries", T.INTEGER, "0", RO, max_limit=1000, persistent=False),
        _var(lal, "ItemsPerMessage", T.INTEGER, "100", RO, constant=True),
        _var(lal, "BytesPerMessage", T.INTEGER, "65536", RO, constant=True),
        *(
            _var(ddc, name, T.INTEGER, default, RO, instance=instance, constant=True)
            for name, default in (("ItemsPerMessage", "50"), ("BytesPerMessage", "65536"))
            for instance in ("GetReport", "GetVariables", "SetVariables")
        ),
        _var(cs, "AvailabilityState", T.OPTION_LIST, "Available", RO,
             values_list=AVAILABILITY_STATES, persistent=False),
        _var(cs, "Available", T.BOOLEAN, "true", RO, persistent=False),
        _var(cs, "Problem", T.BOOLEAN, "false", RO, persistent=False),
        _var(cs, "Model", T.STRING, "V2G-CHAdeMO", RO, constant=True, max_limit=20),
        _var(cs, "VendorName", T.STRING, "OpenV2G", RO, constant=True, max_limit=50),
        _var(cs, "SupplyPhases", T.INTEGER, "1", RO, constant=True, min_limit=0, max_limit=3),
        _var(v2x, "NegativeLimitIsDischarge", T.BOOLEAN, "true"),
        # Positive W = charge: below nominal frequency the vehicle discharges, above it charges.
        _var(v2x, "FreqWattCurve", T.STRING,
             "[[49.0, -7000], [49.85, 0], [50.15, 0], [51.0, 7000]]", max_limit=1000,
             validator=freq_watt_curve_error),
        _var(v2x, "FreqWattEnabled", T.BOOLEAN, "false"),
        _var(v2x, "BackupReserveSoC", T.DECIMAL, "20", unit="Percent", min_limit=0,
             max_limit=100),
        _var(v2x, "DrivingReserveSoC", T.DECIMAL, "30", unit="Percent", min_limit=0,
             max_limit=100),
        _var(v2x, "OfflineSafeLimit", T.DECIMAL, "0", unit="W", min_limit=-1_000_000,
             max_limit=1_000_000),
    ]  # fmt: skip


def evse_variables(evse_id: int, max_power_w: float) -> list[VariableDefinition]:
    power_max = AttributeDefinition(AttributeType.MAX_SET, RW, format_number(max_power_w))
    return [
        _var("EVSE", "AvailabilityState", T.OPTION_LIST, "Available", RO, evse_id=evse_id,
             values_list=AVAILABILITY_STATES, persistent=False),
        _var("EVSE", "Available", T.BOOLEAN, "true", RO, evse_id=evse_id, persistent=False),
        _var("EVSE", "Problem", T.BOOLEAN, "false", RO, evse_id=evse_id, persistent=False),
        # Actual = measured power (signed); MaxSet = a configured cap within the rated maxLimit.
        _var("EVSE", "Power", T.DECIMAL, "0", RO, evse_id=evse_id, unit="W",
             min_limit=-max_power_w, max_limit=max_power_w, persistent=False,
             validator=not_negative, extra_attributes=(power_max,)),
        _var("EVSE", "SupplyPhases", T.INTEGER, "0", RO, evse_id=evse_id, constant=True),
        _var("Connector", "AvailabilityState", T.OPTION_LIST, "Available", RO, evse_id=evse_id,
             connector_id=1, values_list=AVAILABILITY_STATES, persistent=False),
        _var("Connector", "Available", T.BOOLEAN, "true", RO, evse_id=evse_id, connector_id=1,
             persistent=False),
        _var("Connector", "ConnectorType", T.OPTION_LIST, "cCHAdeMO", RO, evse_id=evse_id,
             connector_id=1, constant=True, values_list=("cCHAdeMO",)),
        # When the vehicle on this EVSE leaves and the SoC it needs then: discharge stops where
        # charging at the vehicle's rate could no longer reach it (safety/departure.py). No
        # value = no departure; a departure in the past constrains nothing.
        _var("V2XCtrlr", "DepartureTime", T.DATETIME, None, evse_id=evse_id),
        _var("V2XCtrlr", "DepartureSoC", T.DECIMAL, None, evse_id=evse_id, unit="Percent",
             min_limit=0, max_limit=100),
        # OCPP 2.1 Q: what this EVSE can do, so a 2.1 CSMS picks native V2X modes (every mode
        # is applied by blocks/smart_charging/v2x_modes.py; CHAdeMO discharge is DC_BPT).
        _var(V2X_CHARGING_CTRLR, "Enabled", T.BOOLEAN, "true", RO, evse_id=evse_id,
             constant=True),
        _var(V2X_CHARGING_CTRLR, "SupportedOperationModes", T.MEMBER_LIST,
             ",".join(SUPPORTED_OPERATION_MODES), RO, evse_id=evse_id, constant=True,
             values_list=SUPPORTED_OPERATION_MODES),
        _var(V2X_CHARGING_CTRLR, "SupportedEnergyTransferModes", T.MEMBER_LIST, "DC,DC_BPT", RO,
             evse_id=evse_id, constant=True, values_list=("DC", "DC_BPT")),
    ]  # fmt: skip


# Flattened names seen in other code -> (variable, instance).
ALIASES = {
    f"{name}{instance}": (name, instance)
    for name in ("ItemsPerMessage", "BytesPerMessage")
    for instance in ("GetReport", "GetVariables", "SetVariables")
}
