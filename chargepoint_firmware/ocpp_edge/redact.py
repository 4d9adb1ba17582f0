"""Secrets out of the frame log (issue 12 finding 3).

The ocpp library logs every frame at INFO on the "ocpp" logger; a SetVariables of
SecurityCtrlr.BasicAuthPassword (A01) or a SetNetworkProfile with a VPN/APN password would put
the secret in the log in clear. Pure text rewriting; the filter only rewrites its arguments.
"""

from __future__ import annotations

import logging
import re

REDACTED = "***"

# "password"/"apnPassword"/"basicAuthPassword" values anywhere in a frame.
_PASSWORD = re.compile(r'("[A-Za-z]*[Pp]assword"\s*:\s*)"(?:[^"\\]|\\.)*"')
# A SetVariables/GetVariables frame naming BasicAuthPassword: every attributeValue in it.
_ATTRIBUTE_VALUE = re.compile(r'("attributeValue"\s*:\s*)"(?:[^"\\]|\\.)*"')


def redact_frame(text: str) -> str:
    """`text` (an OCPP-J frame or any log text) with password values replaced by `***`."""
    text = _PASSWORD.sub(rf'\1"{REDACTED}"', text)
    if "BasicAuthPassword" in text:
        text = _ATTRIBUTE_VALUE.sub(rf'\1"{REDACTED}"', text)
    return text


class SecretFilter(logging.Filter):
    """Redacts password values in a record's string arguments (never drops a record)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact_frame(arg) if isinstance(arg, str) else arg for arg in record.args
            )
        if isinstance(record.msg, str):
            record.msg = redact_frame(record.msg)
        return True


def install(logger: logging.Logger) -> None:
    """Add the filter to `logger` once."""
    if not any(isinstance(f, SecretFilter) for f in logger.filters):
        logger.addFilter(SecretFilter())
