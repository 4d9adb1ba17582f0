"""One schema-valid example request payload for every CSMS-initiated OCPP 2.0.1 action."""

from __future__ import annotations

from typing import Any

JsonDict = dict[str, Any]

COMPONENT_VARIABLE: JsonDict = {
    "component": {"name": "OCPPCommCtrlr"},
    "variable": {"name": "HeartbeatInterval"},
}

DISCHARGE_PROFILE: JsonDict = {
    "id": 7,
    "stackLevel": 1,
    "chargingProfilePurpose": "TxDefaultProfile",
    "chargingProfileKind": "Absolute",
    "chargingSchedule": [
        {
            "id": 1,
            "startSchedule": "2026-01-01T00:00:00Z",
            "chargingRateUnit": "W",
            "chargingSchedulePeriod": [
                {"startPeriod": 0, "limit": 7400.0},
                {"startPeriod": 3600, "limit": -5000.0},
            ],
        }
    ],
}

CERTIFICATE_HASH: JsonDict = {
    "hashAlgorithm": "SHA256",
    "issuerNameHash": "a" * 64,
    "issuerKeyHash": "b" * 64,
    "serialNumber": "01",
}

EXAMPLE_REQUESTS: dict[str, JsonDict] = {
    "RequestStartTransaction": {
        "idToken": {"idToken": "TOKEN-1", "type": "ISO14443"},
        "remoteStartId": 42,
        "evseId": 1,
    },
    "RequestStopTransaction": {"transactionId": "tx-1"},
    "Reset": {"type": "Immediate"},
    "ChangeAvailability": {"operationalStatus": "Inoperative", "evse": {"id": 1}},
    "UnlockConnector": {"evseId": 1, "connectorId": 1},
    "TriggerMessage": {
        "requestedMessage": "StatusNotification",
        "evse": {"id": 1, "connectorId": 1},
    },
    "GetVariables": {"getVariableData": [COMPONENT_VARIABLE]},
    "SetVariables": {"setVariableData": [{**COMPONENT_VARIABLE, "attributeValue": "120"}]},
    "GetBaseReport": {"requestId": 1, "reportBase": "FullInventory"},
    "GetReport": {"requestId": 2, "componentCriteria": ["Active"]},
    "SetChargingProfile": {"evseId": 1, "chargingProfile": DISCHARGE_PROFILE},
    "GetChargingProfiles": {
        "requestId": 3,
        "chargingProfile": {"chargingProfilePurpose": "TxProfile"},
    },
    "ClearChargingProfile": {"chargingProfileId": 7},
    "GetCompositeSchedule": {"duration": 3600, "evseId": 1, "chargingRateUnit": "W"},
    "ClearCache": {},
    "SendLocalList": {
        "versionNumber": 4,
        "updateType": "Full",
        "localAuthorizationList": [
            {
                "idToken": {"idToken": "TOKEN-1", "type": "ISO14443"},
                "idTokenInfo": {"status": "Accepted"},
            }
        ],
    },
    "GetLocalListVersion": {},
    "ReserveNow": {
        "id": 5,
        "expiryDateTime": "2030-01-01T00:00:00Z",
        "idToken": {"idToken": "TOKEN-1", "type": "ISO14443"},
        "evseId": 1,
    },
    "CancelReservation": {"reservationId": 5},
    "UpdateFirmware": {
        "requestId": 6,
        "firmware": {
            "location": "https://firmware.example/fw.bin",
            "retrieveDateTime": "2030-01-01T00:00:00Z",
        },
    },
    "PublishFirmware": {
        "location": "https://firmware.example/fw.bin",
        "checksum": "0" * 32,
        "requestId": 7,
    },
    "UnpublishFirmware": {"checksum": "0" * 32},
    "GetLog": {"logType": "DiagnosticsLog", "requestId": 8, "log": {"remoteLocation": "ftp://x/y"}},
    "SetNetworkProfile": {
        "configurationSlot": 1,
        "connectionData": {
            "ocppVersion": "OCPP20",
            "ocppTransport": "JSON",
            "ocppCsmsUrl": "wss://csms.example/ocpp",
            "messageTimeout": 30,
            "securityProfile": 2,
            "ocppInterface": "Wired0",
        },
    },
    "CertificateSigned": {"certificateChain": "-----BEGIN CERTIFICATE-----\nMIIB\n"},
    "InstallCertificate": {
        "certificateType": "CSMSRootCertificate",
        "certificate": "-----BEGIN CERTIFICATE-----\nMIIB\n",
    },
    "DeleteCertificate": {"certificateHashData": CERTIFICATE_HASH},
    "GetInstalledCertificateIds": {"certificateType": ["CSMSRootCertificate"]},
    "SetDisplayMessage": {
        "message": {
            "id": 1,
            "priority": "NormalCycle",
            "message": {"format": "UTF8", "content": "Discharging to the grid"},
        }
    },
    "GetDisplayMessages": {"requestId": 9},
    "ClearDisplayMessage": {"id": 1},
    "CustomerInformation": {
        "requestId": 10,
        "report": True,
        "clear": False,
        "customerIdentifier": "c1",
    },
    "SetMonitoringBase": {"monitoringBase": "All"},
    "SetMonitoringLevel": {"severity": 5},
    "SetVariableMonitoring": {
        "setMonitoringData": [
            {
                "value": 10.0,
                "type": "Delta",
                "severity": 5,
                "component": {"name": "EVSE", "evse": {"id": 1}},
                "variable": {"name": "Power"},
            }
        ]
    },
    "ClearVariableMonitoring": {"id": [1, 2]},
    "GetMonitoringReport": {"requestId": 11},
    "GetTransactionStatus": {"transactionId": "tx-1"},
    "CostUpdated": {"totalCost": 3.25, "transactionId": "tx-1"},
    "DataTransfer": {"vendorId": "org.example.v2g", "messageId": "ping", "data": "ping"},
}
