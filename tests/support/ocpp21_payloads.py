"""Schema-valid OCPP 2.1 payloads for tests: a request for every CSMS-initiated action 2.1
added, and for every CS -> CSMS action (the 2.1 additions and the 2.1 forms of core ones)."""

from __future__ import annotations

from typing import Any

JsonDict = dict[str, Any]
TS = "2025-06-01T12:00:00Z"

TARIFF: JsonDict = {
    "tariffId": "t-1",
    "currency": "AUD",
    "energy": {"prices": [{"priceKwh": 0.30}], "taxRates": [{"type": "GST", "tax": 10.0}]},
}
SCHEDULE_UPDATE: JsonDict = {"setpoint": -3000.0, "limit": 7000.0, "dischargeLimit": -7000.0}
DER_CONTROL: JsonDict = {
    "isDefault": False,
    "controlId": "vw-1",
    "controlType": "VoltWatt",
    "curve": {
        "priority": 1,
        "yUnit": "PctMaxW",
        "curveData": [{"x": 100.0, "y": 100.0}, {"x": 110.0, "y": 20.0}],
    },
}
V2X_PROFILE: JsonDict = {
    "evseId": 1,
    "chargingProfile": {
        "id": 7,
        "stackLevel": 0,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": [
            {
                "id": 1,
                "startSchedule": TS,
                "chargingRateUnit": "W",
                "chargingSchedulePeriod": [
                    {
                        "startPeriod": 0,
                        "operationMode": "CentralSetpoint",
                        "setpoint": -5000.0,
                        "dischargeLimit": -7000.0,
                    },
                    {
                        "startPeriod": 600,
                        "operationMode": "LocalFrequency",
                        "limit": 7000.0,
                        "v2xFreqWattCurve": [
                            {"frequency": 49.8, "power": 7000.0},
                            {"frequency": 50.2, "power": -7000.0},
                        ],
                    },
                ],
            }
        ],
    },
}

CSMS_REQUESTS_21: dict[str, JsonDict] = {
    "SetDERControl": DER_CONTROL,
    "GetDERControl": {"requestId": 1, "controlType": "VoltWatt"},
    "ClearDERControl": {"isDefault": False, "controlId": "vw-1"},
    "AFRRSignal": {"timestamp": TS, "signal": -50},
    "UpdateDynamicSchedule": {"chargingProfileId": 7, "scheduleUpdate": SCHEDULE_UPDATE},
    "NotifyAllowedEnergyTransfer": {
        "transactionId": "tx-1",
        "allowedEnergyTransfer": ["DC", "DC_BPT"],
    },
    "GetPeriodicEventStream": {},
    "AdjustPeriodicEventStream": {"id": 1, "params": {"interval": 1, "values": 10}},
    "UsePriorityCharging": {"transactionId": "tx-1", "activate": True},
    "RequestBatterySwap": {"requestId": 1, "idToken": {"idToken": "TAG-1", "type": "ISO14443"}},
    "NotifyWebPaymentStarted": {"evseId": 1, "timeout": 120},
    "ChangeTransactionTariff": {"transactionId": "tx-1", "tariff": TARIFF},
    "SetDefaultTariff": {"evseId": 0, "tariff": TARIFF},
    "GetTariffs": {"evseId": 0},
    "ClearTariffs": {"tariffIds": ["t-1"]},
}

HASH_DATA: JsonDict = {
    "hashAlgorithm": "SHA256",
    "issuerNameHash": "a" * 64,
    "issuerKeyHash": "b" * 64,
    "serialNumber": "01",
}
STATION_REQUESTS_21: dict[str, JsonDict] = {
    "NotifyDERAlarm": {
        "controlType": "VoltWatt",
        "gridEventFault": "OverVoltage",
        "alarmEnded": False,
        "timestamp": TS,
    },
    "NotifyDERStartStop": {"controlId": "vw-1", "started": True, "timestamp": TS},
    "ReportDERControl": {"requestId": 1, "tbc": False},
    "OpenPeriodicEventStream": {
        "constantStreamData": {
            "id": 3,
            "variableMonitoringId": 11,
            "params": {"interval": 1, "values": 10},
        }
    },
    "ClosePeriodicEventStream": {"id": 3},
    "PullDynamicScheduleUpdate": {"chargingProfileId": 7},
    "NotifySettlement": {
        "pspRef": "psp-1",
        "status": "Settled",
        "settlementAmount": 12.5,
        "settlementTime": TS,
        "transactionId": "tx-1",
    },
    "BatterySwap": {
        "eventType": "BatteryIn",
        "requestId": 1,
        "idToken": {"idToken": "TAG-1", "type": "ISO14443"},
        "batteryData": [{"evseId": 1, "serialNumber": "B-1", "soC": 80.0, "soH": 95.0}],
    },
    "NotifyPriorityCharging": {"transactionId": "tx-1", "activated": True},
    "GetCertificateChainStatus": {
        "certificateStatusRequests": [
            {"certificateHashData": HASH_DATA, "source": "OCSP", "urls": ["http://127.0.0.1/ocsp"]}
        ]
    },
    "VatNumberValidation": {"vatNumber": "AU12345678901"},
}
STREAM_DATA: JsonDict = {
    "id": 3,
    "pending": 0,
    "basetime": TS,
    "data": [{"t": 0.0, "v": "230.1"}, {"t": 0.5, "v": "230.4"}, {"t": 1.0, "v": "229.9"}],
}
