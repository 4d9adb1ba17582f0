"""V2G and Home Assistant settings are fields of the one Settings object (env and flags)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from csms.cli import build_parser, load_settings
from csms.integrations.home_assistant import HomeAssistantSettings
from csms.services.common import utcnow
from csms.services.v2g import V2gSettings, v2g_service_for
from csms.settings import Settings


def test_v2g_settings_read_once_from_env_and_passed_to_the_service(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CSMS_V2G_REPLAN_INTERVAL_S", "60")
    monkeypatch.setenv("CSMS_V2G_FREQUENCY_RULE_THRESHOLD_HZ", "49.85")
    monkeypatch.setenv("CSMS_MQTT_URL", "mqtt://127.0.0.1:1883")
    settings = Settings()
    assert V2gSettings.from_settings(settings).frequency_rule_threshold_hz == 49.85
    assert HomeAssistantSettings.from_settings(settings).mqtt_url == "mqtt://127.0.0.1:1883"
    services = SimpleNamespace(db=None, commands=None, clock=utcnow, settings=settings)
    service = v2g_service_for(services)
    assert service.settings.replan_interval_s == 60.0
    assert v2g_service_for(services) is service  # one per container


def test_v2g_settings_by_flag_and_validated() -> None:
    args = build_parser().parse_args(["serve", "--v2g-replan-interval-s", "30"])
    assert load_settings(args).v2g_replan_interval_s == 30.0
    with pytest.raises(ValueError, match="v2g_default_target_soc"):
        Settings(v2g_default_target_soc=1.5)
