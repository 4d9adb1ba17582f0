"""The OCPP versions this platform speaks, by their websocket subprotocol names (OCPP-J 2.1
Part 4, 3.1): one definition for both products, so the CSMS and the agent cannot drift."""

from __future__ import annotations

import enum


class OcppVersion(enum.StrEnum):
    """A websocket subprotocol name; the value is what goes in Sec-WebSocket-Protocol."""

    V201 = "ocpp2.0.1"
    V21 = "ocpp2.1"

    @property
    def label(self) -> str:
        """The version as people write it ("2.0.1", "2.1")."""
        return self.value.removeprefix("ocpp")


def parse_ocpp_version(text: str) -> OcppVersion:
    """Accept "ocpp2.1" or "2.1" (any case); ValueError names the versions on offer."""
    wanted = text.strip().lower()
    for version in OcppVersion:
        if wanted in (version.value, version.label):
            return version
    offered = ", ".join(v.label for v in OcppVersion)
    raise ValueError(f"unknown OCPP version {text!r}: this platform speaks {offered}")
