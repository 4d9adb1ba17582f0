"""Finding 5 (secrets in clear): what the redaction recognises, and what it leaves alone."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from csms.services.redaction import (
    REDACTED,
    RedactFramesFilter,
    redact,
    redact_frame,
    redact_payload,
    redact_url,
)

SECRET = "rotated-secret-0123456789"


def test_finding5_set_variables_basic_auth_password_redacted() -> None:
    payload = {
        "setVariableData": [
            {
                "component": {"name": "SecurityCtrlr"},
                "variable": {"name": "BasicAuthPassword"},
                "attributeValue": SECRET,
            },
            {
                "component": {"name": "OCPPCommCtrlr"},
                "variable": {"name": "HeartbeatInterval"},
                "attributeValue": "300",
            },
        ]
    }
    redacted = redact_payload("SetVariables", payload)
    assert SECRET not in json.dumps(redacted)
    assert redacted["setVariableData"][0]["attributeValue"] == REDACTED
    assert redacted["setVariableData"][1]["attributeValue"] == "300"
    assert payload["setVariableData"][0]["attributeValue"] == SECRET  # input untouched


def test_finding5_notify_report_secret_variable_values_redacted() -> None:
    payload = {
        "requestId": 1,
        "generatedAt": "2026-01-01T00:00:00Z",
        "seqNo": 0,
        "reportData": [
            {
                "component": {"name": "SecurityCtrlr"},
                "variable": {"name": "BasicAuthPassword"},
                "variableAttribute": [{"type": "Actual", "value": SECRET}],
            }
        ],
    }
    assert SECRET not in json.dumps(redact_payload("NotifyReport", payload))


def test_finding5_set_network_profile_vpn_and_apn_secrets_redacted() -> None:
    payload = {
        "configurationSlot": 1,
        "connectionData": {
            "vpn": {
                "server": "vpn",
                "user": "u",
                "password": SECRET,
                "key": "psk-1",
                "type": "IPSec",
            },
            "apn": {"apn": "internet", "apnPassword": "apn-pw", "simPin": 1234},
        },
    }
    redacted = redact_payload("SetNetworkProfile", payload)
    text = json.dumps(redacted)
    assert SECRET not in text and "psk-1" not in text and "apn-pw" not in text
    assert "1234" not in text
    assert redacted["connectionData"]["vpn"]["user"] == "u"


def test_finding5_payload_without_secrets_is_returned_as_is() -> None:
    payload: dict[str, Any] = {"customData": {"vendorId": "x", "key": "not-a-secret"}}
    assert redact(payload) is payload
    heartbeat: dict[str, Any] = {}
    assert redact_payload("Heartbeat", heartbeat) is heartbeat


def test_finding5_deep_nesting_is_bounded() -> None:
    deep: Any = {"password": SECRET}
    for _ in range(5000):
        deep = {"data": deep}
    assert redact_payload("DataTransfer", deep) is deep  # no RecursionError, nothing copied


def test_finding5_frames_redacted_for_the_log() -> None:
    call = json.dumps(
        [
            2,
            "m1",
            "SetVariables",
            {
                "setVariableData": [
                    {
                        "component": {"name": "SecurityCtrlr"},
                        "variable": {"name": "BasicAuthPassword"},
                        "attributeValue": SECRET,
                    }
                ]
            },
        ]
    )
    assert SECRET not in str(redact_frame(call))
    assert SECRET not in str(redact_frame(call[:-3]))  # not even in a truncated frame
    heartbeat = '[2,"m2","Heartbeat",{}]'
    assert redact_frame(heartbeat) is heartbeat


def test_finding5_frame_filter_redacts_the_logged_frame() -> None:
    record = logging.LogRecord(
        "csms.ocpp.frames", logging.DEBUG, __file__, 1, "%s -> %s", ("CS1", SECRET), None
    )
    record.args = ("CS1", json.dumps([2, "m", "DataTransfer", {"password": SECRET}]))
    assert RedactFramesFilter().filter(record)
    assert SECRET not in record.getMessage() and "CS1" in record.getMessage()


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            "postgresql+asyncpg://csms:hunter2@db:5432/csms",
            "postgresql+asyncpg://csms:***@db:5432/csms",
        ),
        ("mqtt://ha:pw@broker:1883", "mqtt://ha:***@broker:1883"),
        ("redis://:pw@r:6379/0", "redis://:***@r:6379/0"),
        ("nats://broker:4222", "nats://broker:4222"),
        ("sqlite+aiosqlite:///./csms.db", "sqlite+aiosqlite:///./csms.db"),
    ],
)
def test_finding5_urls_lose_their_password(text: str, shown: str) -> None:
    assert redact_url(text) == shown
    assert redact_url(f"[got {text!r}]") == f"[got {shown!r}]"
