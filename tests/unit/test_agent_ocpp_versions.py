"""The agent's OCPP version setting and subprotocol negotiation (OCPP-J Part 4, 3.1)."""

from __future__ import annotations

import pytest

from chargepoint_firmware.ocpp_edge.connection import (
    handshake_diagnosis,
    negotiated_version,
    offered_subprotocols,
)
from chargepoint_firmware.settings import ConfigError, load_settings
from v2g_shared.ocpp_versions import OcppVersion

BASE = {"station_id": "CS1", "csms_url": "ws://127.0.0.1:1/ocpp"}


def test_default_offer_is_201_only() -> None:
    settings = load_settings(None, **BASE)
    assert settings.ocpp_versions == [OcppVersion.V201]
    assert offered_subprotocols(settings) == ["ocpp2.0.1"]


def test_versions_from_the_environment_keep_their_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHARGEPOINT_OCPP_VERSIONS", "2.1, ocpp2.0.1")
    settings = load_settings(None, **BASE)
    assert offered_subprotocols(settings) == ["ocpp2.1", "ocpp2.0.1"]


@pytest.mark.parametrize("bad", [["2.1", "ocpp2.1"], ["1.6"], []])
def test_bad_version_lists_are_configuration_errors(bad: list[str]) -> None:
    with pytest.raises(ConfigError, match="ocpp_versions"):
        load_settings(None, ocpp_versions=bad, **BASE)


def test_only_an_offered_subprotocol_counts_as_negotiated() -> None:
    settings = load_settings(None, ocpp_versions=["2.1", "2.0.1"], **BASE)
    assert negotiated_version(settings, "ocpp2.1") is OcppVersion.V21
    assert negotiated_version(settings, "ocpp2.0.1") is OcppVersion.V201
    assert negotiated_version(settings, None) is None
    only_201 = load_settings(None, **BASE)
    assert negotiated_version(only_201, "ocpp2.1") is None
    diagnosis = handshake_diagnosis(settings, 400)
    assert diagnosis is not None and "ocpp2.1, ocpp2.0.1" in diagnosis
