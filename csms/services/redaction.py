"""Secrets out of the message log, the API, logs and CLI output.

What OCPP 2.0.1 carries that is a secret (searched in the OCA schemas):
- the value of a device-model variable holding a secret (SecurityCtrlr.BasicAuthPassword) in
  SetVariables (`attributeValue`), GetVariables results and NotifyReport `variableAttribute`s;
- SetNetworkProfile `connectionData.vpn.password`, `vpn.key` (the VPN shared secret),
  `apn.apnPassword` and `apn.simPin`;
- any `password`-like key a vendor puts in DataTransfer.
URLs in settings (database, broker, MQTT) may hold a password in their user info.

What the message log shows of a frame (`redact_logged`) also hides, besides the secrets above:
- certificates, certificate chains, CSRs and ISO 15118 EXI blobs (`certificate`,
  `certificateChain`, `csr`, `exiRequest`, `exiResponse`): "*** (N characters)";
- id tokens (`idToken` strings: RFID UIDs, contract ids, which name a driver): "***" and their
  last 4 characters, enough to tell two apart.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import orjson

REDACTED = "***"
# Device-model variables whose values are secrets.
SECRET_VARIABLES = frozenset({"BasicAuthPassword"})
# Keys whose string values are secrets wherever they appear.
SECRET_KEYS = frozenset({"password", "apnPassword", "simPin", "basicAuthPassword", "secret"})
# Keys that are secrets only inside the named object (vpn.key; "key" is common elsewhere).
SECRET_KEYS_IN = {"vpn": frozenset({"key", "password"})}
# Actions whose payloads can carry one of the above (others are stored untouched: the walk
# costs time on every logged frame).
SECRET_ACTIONS = frozenset(
    {"SetVariables", "GetVariables", "NotifyReport", "SetNetworkProfile", "DataTransfer"}
)
# Blobs and personal ids hidden from the message log as read (see the module doc).
BLOB_KEYS = frozenset({"certificate", "certificateChain", "csr", "exiRequest", "exiResponse"})
ID_TOKEN_KEY = "idToken"
# Actions (either direction) whose payloads or answers can carry one of those.
LOGGED_ACTIONS = SECRET_ACTIONS | frozenset(
    {
        "Authorize",
        "TransactionEvent",
        "SignCertificate",
        "Get15118EVCertificate",
        "CertificateSigned",
        "InstallCertificate",
        "RequestStartTransaction",
        "ReserveNow",
        "SendLocalList",
        "GetLocalListVersion",
    }
)
# Secrets sit a few levels deep; nothing below this is looked at (nor copied).
MAX_DEPTH = 32
# Any of these in a raw frame means it may hold a secret (cheap test before parsing).
_FRAME_MARKERS = ("assword", "simPin", '"vpn"', "secret")


def _redact_attributes(attributes: Any) -> Any:
    if not isinstance(attributes, list):
        return attributes
    return [
        {**a, "value": REDACTED} if isinstance(a, dict) and "value" in a else a for a in attributes
    ]


def redact(value: Any, *, parent: str | None = None, depth: int = 0) -> Any:
    """`value` with secrets replaced by REDACTED; the same object when it holds none."""
    if depth > MAX_DEPTH:
        return value
    if isinstance(value, list):
        items = [redact(item, parent=parent, depth=depth + 1) for item in value]
        if all(new is old for new, old in zip(items, value, strict=True)):
            return value
        return items
    if not isinstance(value, dict):
        return value
    variable = value.get("variable")
    secret_variable = isinstance(variable, dict) and variable.get("name") in SECRET_VARIABLES
    local_keys = SECRET_KEYS_IN.get(parent or "", frozenset())
    out: dict[str, Any] = {}
    changed = False
    for key, item in value.items():
        secret_key = key in SECRET_KEYS or key in local_keys
        if (secret_key and isinstance(item, str | int | float)) or (
            secret_variable and key == "attributeValue"
        ):
            new = REDACTED
        elif secret_variable and key == "variableAttribute":
            new = _redact_attributes(item)
        else:
            new = redact(item, parent=key, depth=depth + 1)
        changed = changed or new is not item
        out[key] = new
    return out if changed else value


def redact_payload(action: str | None, payload: Any) -> Any:
    """A message-log payload without secrets (only actions that can carry one are walked)."""
    if action not in SECRET_ACTIONS:
        return payload
    return redact(payload)


_HIDDEN_BLOB = re.compile(re.escape(REDACTED) + r" \(\d+ characters\)")
_HIDDEN_TOKEN = re.compile(re.escape(REDACTED) + r".{0,4}", re.DOTALL)


def _mask_token(token: str) -> str:
    """The last 4 characters of a long enough token: two drivers' tokens can be told apart."""
    return REDACTED + token[-4:] if len(token) > 8 else REDACTED


def _hide_blobs_and_tokens(value: Any, depth: int = 0) -> Any:
    if depth > MAX_DEPTH:
        return value
    if isinstance(value, list):
        items = [_hide_blobs_and_tokens(item, depth + 1) for item in value]
        if all(new is old for new, old in zip(items, value, strict=True)):
            return value
        return items
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    changed = False
    for key, item in value.items():
        if key in BLOB_KEYS and isinstance(item, str):
            # Hidden when stored: read back as it is.
            new: Any = (
                item if _HIDDEN_BLOB.fullmatch(item) else f"{REDACTED} ({len(item)} characters)"
            )
        elif key == ID_TOKEN_KEY and isinstance(item, str):
            new = item if _HIDDEN_TOKEN.fullmatch(item) else _mask_token(item)
        else:
            new = _hide_blobs_and_tokens(item, depth + 1)
        changed = changed or new is not item
        out[key] = new
    return out if changed else value


def redact_logged(action: str | None, payload: Any) -> Any:
    """A message-log payload as shown (API) or stored for a station's own message: secrets,
    certificates, CSRs, EXI blobs and id tokens hidden (only actions that can carry one are
    walked)."""
    if action not in LOGGED_ACTIONS:
        return payload
    return _hide_blobs_and_tokens(redact_payload(action, payload))


def redact_frame(raw: str | bytes) -> str | bytes:
    """A raw OCPP-J frame for a log line, secrets replaced."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    if not any(marker in text for marker in _FRAME_MARKERS):
        return raw
    try:
        frame: Any = orjson.loads(text)
    except orjson.JSONDecodeError:
        return f"<unparsable frame of {len(text)} characters that may hold a secret>"
    return orjson.dumps(redact(frame)).decode()


_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^/@:\s]*:)[^/@\s]*(?=@)")


def redact_url(text: str) -> str:
    """scheme://user:password@host -> scheme://user:***@host (anywhere in `text`)."""
    return _URL_PASSWORD.sub(lambda m: m.group("head") + REDACTED, text)


class RedactFramesFilter(logging.Filter):
    """On the frame logger: the logged frame (the last argument) goes through redact_frame."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and args and isinstance(args[-1], str | bytes):
            record.args = (*args[:-1], redact_frame(args[-1]))
        return True


def install_frame_redaction(logger_name: str = "csms.ocpp.frames") -> None:
    """Idempotent: the frame logger redacts what it logs."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, RedactFramesFilter) for f in logger.filters):
        logger.addFilter(RedactFramesFilter())
