"""Valid OCPP 2.0.1 CS -> CSMS request payloads (camelCase, as on the wire)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

TS = "2026-01-02T03:04:05.000Z"

PROFILE = {
    "id": 7,
    "stackLevel": 0,
    "chargingProfilePurpose": "TxDefaultProfile",
    "chargingProfileKind": "Absolute",
    "chargingSchedule": [
        {
            "id": 1,
            "startSchedule": TS,
            "chargingRateUnit": "W",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 7000.0}],
        }
    ],
}

VALID: dict[str, dict[str, Any]] = {
    "Authorize": {"idToken": {"idToken": "TOK1", "type": "ISO14443"}},
    "BootNotification": {
        "chargingStation": {"vendorName": "V2GCo", "model": "Bidi-1", "firmwareVersion": "1.0"},
        "reason": "PowerUp",
    },
    "ClearedChargingLimit": {"chargingLimitSource": "EMS", "evseId": 1},
    "DataTransfer": {"vendorId": "com.example.unknown", "messageId": "x", "data": {"a": 1}},
    "FirmwareStatusNotification": {"status": "Downloaded", "requestId": 1},
    "Get15118EVCertificate": {
        "iso15118SchemaVersion": "urn:iso:15118:2:2013:MsgDef",
        "action": "Install",
        "exiRequest": "AAAA",
    },
    "GetCertificateStatus": {
        "ocspRequestData": {
            "hashAlgorithm": "SHA256",
            "issuerNameHash": "aa",
            "issuerKeyHash": "bb",
            "serialNumber": "01",
            "responderURL": "http://ocsp.example",
        }
    },
    "Heartbeat": {},
    "LogStatusNotification": {"status": "Uploaded", "requestId": 1},
    "MeterValues": {
        "evseId": 1,
        "meterValue": [
            {
                "timestamp": TS,
                "sampledValue": [
                    {"value": 1234.5},
                    {
                        "value": -3.2,
                        "measurand": "Power.Active.Import",
                        "unitOfMeasure": {"unit": "kW"},
                    },
                ],
            }
        ],
    },
    "NotifyChargingLimit": {"chargingLimit": {"chargingLimitSource": "SO"}, "evseId": 1},
    "NotifyCustomerInformation": {"data": "none", "seqNo": 0, "generatedAt": TS, "requestId": 1},
    "NotifyDisplayMessages": {"requestId": 1},
    "NotifyEVChargingNeeds": {
        "evseId": 1,
        "chargingNeeds": {
            "requestedEnergyTransfer": "DC",
            "dcChargingParameters": {"evMaxCurrent": 125, "evMaxVoltage": 400},
        },
    },
    "NotifyEVChargingSchedule": {
        "timeBase": TS,
        "evseId": 1,
        "chargingSchedule": {
            "id": 1,
            "chargingRateUnit": "W",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 5000}],
        },
    },
    "NotifyEvent": {
        "generatedAt": TS,
        "seqNo": 0,
        "eventData": [
            {
                "eventId": 1,
                "timestamp": TS,
                "trigger": "Alerting",
                "actualValue": "true",
                "eventNotificationType": "HardWiredNotification",
                "component": {"name": "EVSE", "evse": {"id": 1}},
                "variable": {"name": "Problem"},
            }
        ],
    },
    "NotifyMonitoringReport": {"requestId": 1, "seqNo": 0, "generatedAt": TS},
    "NotifyReport": {
        "requestId": 1,
        "generatedAt": TS,
        "seqNo": 0,
        "reportData": [
            {
                "component": {"name": "DeviceDataCtrlr"},
                "variable": {"name": "ItemsPerMessage", "instance": "GetVariables"},
                "variableAttribute": [{"type": "Actual", "value": "2", "mutability": "ReadOnly"}],
                "variableCharacteristics": {"dataType": "integer", "supportsMonitoring": False},
            }
        ],
    },
    "PublishFirmwareStatusNotification": {
        "status": "Published",
        "location": ["http://fw.example/1"],
        "requestId": 1,
    },
    "ReportChargingProfiles": {
        "requestId": 1,
        "chargingLimitSource": "CSO",
        "evseId": 1,
        "chargingProfile": [PROFILE],
    },
    "ReservationStatusUpdate": {"reservationId": 1, "reservationUpdateStatus": "Expired"},
    "SecurityEventNotification": {"type": "StartupOfTheDevice", "timestamp": TS},
    "SignCertificate": {
        "csr": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----"
    },
    "StatusNotification": {
        "timestamp": TS,
        "connectorStatus": "Available",
        "evseId": 1,
        "connectorId": 1,
    },
    "TransactionEvent": {
        "eventType": "Started",
        "timestamp": TS,
        "triggerReason": "Authorized",
        "seqNo": 0,
        "transactionInfo": {"transactionId": "TX1"},
        "evse": {"id": 1, "connectorId": 1},
    },
}


def tx_event(
    event_type: str,
    seq_no: int,
    *,
    tx_id: str = "TX1",
    offline: bool = False,
    energy_wh: float | None = None,
    timestamp: str | None = None,
    id_token: str | None = None,
    stopped_reason: str | None = None,
) -> dict[str, Any]:
    """A TransactionEvent at `timestamp` (TS by default). Its energy sample is taken then, or
    by default seqNo seconds after TS: distinct samples of a transaction have distinct
    timestamps (a repeated sample is stored once)."""
    after = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC) + timedelta(seconds=seq_no % 10**6)
    sampled_at = timestamp or after.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    payload: dict[str, Any] = {
        "eventType": event_type,
        "timestamp": timestamp or TS,
        "triggerReason": "MeterValuePeriodic" if event_type == "Updated" else "Authorized",
        "seqNo": seq_no,
        "transactionInfo": {"transactionId": tx_id},
        "evse": {"id": 1, "connectorId": 1},
    }
    if event_type == "Ended":
        payload["triggerReason"] = "StopAuthorized"
        payload["transactionInfo"]["stoppedReason"] = stopped_reason or "Local"
    if offline:
        payload["offline"] = True
    if energy_wh is not None:
        payload["meterValue"] = [{"timestamp": sampled_at, "sampledValue": [{"value": energy_wh}]}]
    if id_token is not None:
        payload["idToken"] = {"idToken": id_token, "type": "ISO14443"}
    return payload
