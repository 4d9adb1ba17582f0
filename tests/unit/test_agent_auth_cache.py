"""AuthCache (blocks/authorization/auth_cache.py) over real AgentStorage and the project device
model.

C10 store/lapse/evict, C11 clear, persistence across a restart (C10.FR.02) and the
AuthCacheCtrlr variables: mutability, characteristics and SetVariables validation.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from chargepoint_firmware.blocks.authorization.auth_cache import AuthCache
from chargepoint_firmware.blocks.authorization.auth_cache_policy import entry_size
from chargepoint_firmware.blocks.provisioning.device_model_adapter import (
    BuiltinDeviceModel,
    ProjectDeviceModel,
)
from chargepoint_firmware.device_model import DeviceModel
from chargepoint_firmware.device_model.store import InMemoryStore
from chargepoint_firmware.ocpp_edge.timefmt import iso_ms
from chargepoint_firmware.settings import load_settings
from chargepoint_firmware.station.config import ConfigView
from chargepoint_firmware.storage import AgentStorage
from tests.support.agent_fakes import ManualClock

ACCEPTED = {"status": "Accepted"}
ONE = entry_size("T0", "ISO14443", ACCEPTED)  # every "T<digit>" Accepted entry has this size


def tok(name: str, kind: str = "ISO14443") -> dict[str, str]:
    return {"id_token": name, "type": kind}


class Rig:
    def __init__(self, path: Path, capacity: int = 100_000, clock: ManualClock | None = None):
        self.path = path
        self.clock = clock or ManualClock()
        self.model = DeviceModel([1], InMemoryStore(), auth_cache_storage_bytes=capacity)
        self.dm = ProjectDeviceModel(self.model)
        self.reported: list[int] = []
        self.open()

    def open(self) -> None:
        self.storage = AgentStorage(self.path / "agent.sqlite3")
        self.cache = AuthCache(
            self.storage,
            ConfigView(self.dm),
            self.clock,
            capacity=lambda: int(self.dm.max_limit("AuthCacheCtrlr", "Storage") or 0),
            on_size=self._size,
        )

    def _size(self, size: int) -> None:
        self.reported.append(size)
        self.dm.set_value("AuthCacheCtrlr", "Storage", str(size))

    def restart(self) -> None:
        self.storage.close()
        self.open()

    def set_var(self, variable: str, value: str) -> dict[str, Any]:
        result: dict[str, Any] = self.model.set_variables(
            [
                {
                    "component": {"name": "AuthCacheCtrlr"},
                    "variable": {"name": variable},
                    "attributeValue": value,
                }
            ]
        )[0]
        return result

    def keys(self) -> set[str]:
        return {r.token for r in self.storage.cache_rows()}


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path)


def test_c10_fr_01_any_status_is_stored_and_read_back(rig: Rig) -> None:
    assert rig.cache.store(tok("A"), {"status": "Blocked", "group_id_token": tok("G", "Central")})
    assert rig.cache.lookup(tok("A")) == {
        "status": "Blocked",
        "group_id_token": {"id_token": "G", "type": "Central"},
    }
    assert rig.cache.lookup(tok("A", "Local")) is None  # idToken and type make the key


def test_c10_fr_04_a_newer_answer_replaces_the_entry(rig: Rig) -> None:
    rig.cache.store(tok("A"), ACCEPTED)
    rig.cache.store(tok("A"), {"status": "Expired"})
    assert rig.cache.lookup(tok("A")) == {"status": "Expired"}
    assert len(rig.storage.cache_rows()) == 1


def test_disabled_cache_neither_stores_nor_answers(rig: Rig) -> None:
    rig.cache.store(tok("A"), ACCEPTED)
    assert rig.set_var("Enabled", "false")["attributeStatus"] == "Accepted"
    assert rig.cache.store(tok("B"), ACCEPTED) is False
    assert rig.cache.lookup(tok("A")) is None
    assert rig.keys() == {"A"}  # kept, just not used while disabled


def test_c02_no_authorization_tokens_are_never_cached(rig: Rig) -> None:
    assert rig.cache.store(tok("", "NoAuthorization"), ACCEPTED) is False
    assert rig.storage.cache_rows() == []


def test_c10_fr_08_entry_lapses_after_life_time_without_use(rig: Rig) -> None:
    rig.set_var("LifeTime", "100")
    rig.cache.store(tok("A"), ACCEPTED)
    rig.clock.advance(90)
    assert rig.cache.lookup(tok("A")) == ACCEPTED  # a use renews the lifetime
    rig.clock.advance(90)
    assert rig.cache.lookup(tok("A")) == ACCEPTED
    rig.clock.advance(100)
    assert rig.cache.lookup(tok("A")) is None
    assert rig.keys() == set()  # removed, not just hidden
    assert rig.model.value("AuthCacheCtrlr", "Storage") == "0"


def test_life_time_zero_means_no_age_limit(rig: Rig) -> None:
    rig.set_var("LifeTime", "0")
    rig.cache.store(tok("A"), ACCEPTED)
    rig.clock.advance(10 * 365 * 86400)
    assert rig.cache.lookup(tok("A")) == ACCEPTED


def test_c10_fr_13_cache_expiry_date_time_removes_the_entry(rig: Rig) -> None:
    expiry = iso_ms(rig.clock.now() + timedelta(seconds=60))
    info = {"status": "Accepted", "cache_expiry_date_time": expiry}
    rig.cache.store(tok("A"), info)
    rig.clock.advance(59)
    assert rig.cache.lookup(tok("A")) == info
    rig.clock.advance(1)
    assert rig.cache.lookup(tok("A")) is None
    assert rig.keys() == set()


def test_c10_fr_13_expiry_in_the_past_is_not_stored_and_drops_the_old_entry(rig: Rig) -> None:
    rig.cache.store(tok("A"), ACCEPTED)
    past = iso_ms(rig.clock.now() - timedelta(seconds=1))
    assert rig.cache.store(tok("A"), {"status": "Accepted", "cache_expiry_date_time": past}) is (
        False
    )
    assert rig.keys() == set()


def test_storage_reports_bytes_in_use(rig: Rig) -> None:
    assert rig.model.value("AuthCacheCtrlr", "Storage") == "0"
    rig.cache.store(tok("A1"), ACCEPTED)
    rig.cache.store(tok("B22"), {"status": "Blocked"})
    expected = entry_size("A1", "ISO14443", ACCEPTED) + entry_size(
        "B22", "ISO14443", {"status": "Blocked"}
    )
    assert rig.cache.used_bytes() == expected
    assert rig.model.value("AuthCacheCtrlr", "Storage") == str(expected)


def _fill(rig: Rig) -> None:
    for name in ("T1", "T2", "T3"):
        rig.clock.advance(1)
        rig.cache.store(tok(name), ACCEPTED)


@pytest.mark.parametrize(
    ("policy", "victim"),
    [("LRU", "T2"), ("FIFO", "T1"), ("LFU", "T3"), ("CUSTOM", "T2")],
)
def test_cache_full_evicts_per_policy(tmp_path: Path, policy: str, victim: str) -> None:
    rig = Rig(tmp_path, capacity=3 * ONE)
    assert rig.set_var("Policy", policy)["attributeStatus"] == "Accepted"
    _fill(rig)
    # Stored T1, T2, T3; then used T2, T2, T3, T1. Uses: T1 2, T2 3, T3 2. Least recently
    # used: T2; first stored: T1; least frequently used: T3 (tie with T1, used less recently).
    for name in ("T2", "T2", "T3", "T1"):
        assert rig.cache.lookup(tok(name)) == ACCEPTED
    rig.cache.store(tok("T4"), ACCEPTED)
    assert rig.keys() == {"T1", "T2", "T3", "T4"} - {victim}
    assert rig.cache.used_bytes() <= 3 * ONE
    assert int(rig.model.value("AuthCacheCtrlr", "Storage") or 0) == 3 * ONE


def test_custom_policy_evicts_a_refused_token_before_accepted_ones(tmp_path: Path) -> None:
    rig = Rig(tmp_path, capacity=3 * ONE + 10)
    rig.set_var("Policy", "CUSTOM")
    rig.cache.store(tok("T1"), ACCEPTED)
    rig.cache.store(tok("T2"), {"status": "Invalid"})
    rig.cache.store(tok("T3"), ACCEPTED)
    rig.cache.lookup(tok("T2"))  # recently used, still the first to go
    rig.cache.store(tok("T4"), ACCEPTED)
    assert rig.keys() == {"T1", "T3", "T4"}


def test_lapsed_entries_go_before_any_live_entry(tmp_path: Path) -> None:
    rig = Rig(tmp_path, capacity=3 * ONE)
    rig.set_var("Policy", "FIFO")
    rig.set_var("LifeTime", "1000")
    _fill(rig)
    rig.clock.advance(500)
    rig.cache.lookup(tok("T1"))
    rig.cache.lookup(tok("T3"))
    rig.clock.advance(600)  # T2 unused for 1101 s: lapsed
    rig.cache.store(tok("T4"), ACCEPTED)
    assert rig.keys() == {"T1", "T3", "T4"}  # FIFO alone would have dropped T1


def test_an_entry_larger_than_the_cache_is_not_stored(tmp_path: Path) -> None:
    rig = Rig(tmp_path, capacity=ONE + 5)
    rig.cache.store(tok("T1"), ACCEPTED)
    big = {"status": "Accepted", "personal_message": {"format": "UTF8", "content": "x" * 100}}
    assert rig.cache.store(tok("T2"), big) is False
    assert rig.keys() == {"T1"}  # nothing evicted for an entry that can never fit


def test_c11_fr_03_clear_accepted_and_c11_fr_04_rejected_when_disabled(rig: Rig) -> None:
    rig.cache.store(tok("A"), ACCEPTED)
    rig.set_var("Enabled", "false")
    assert rig.cache.clear() is False
    assert rig.keys() == {"A"}
    rig.set_var("Enabled", "true")
    assert rig.cache.clear() is True
    assert rig.keys() == set()
    assert rig.model.value("AuthCacheCtrlr", "Storage") == "0"


def test_c10_fr_02_cache_and_its_order_survive_a_restart(tmp_path: Path) -> None:
    rig = Rig(tmp_path, capacity=3 * ONE)
    _fill(rig)
    rig.cache.lookup(tok("T1"))
    rig.restart()
    assert rig.cache.lookup(tok("T3")) == ACCEPTED
    rig.cache.store(tok("T4"), ACCEPTED)  # LRU after the restart: T2 is the oldest use
    assert rig.keys() == {"T1", "T3", "T4"}


def test_entries_from_an_older_state_file_still_count_and_evict(tmp_path: Path) -> None:
    rig = Rig(tmp_path, capacity=2 * ONE)
    rig.storage.cache_put("T1", "ISO14443", ACCEPTED)  # no bookkeeping row, as before
    rig.storage.cache_touch("T1", "ISO14443", iso_ms(rig.clock.now()))
    assert rig.cache.used_bytes() == ONE
    rig.cache.store(tok("T2"), ACCEPTED)
    rig.cache.store(tok("T3"), ACCEPTED)
    assert rig.keys() == {"T2", "T3"}


def test_trim_brings_an_oversized_cache_down_to_capacity_by_policy(tmp_path: Path) -> None:
    big = Rig(tmp_path, capacity=10 * ONE)
    big.set_var("LifeTime", "0")
    _fill(big)
    big.cache.lookup(tok("T1"))
    big.storage.close()
    small = Rig(tmp_path, capacity=2 * ONE, clock=big.clock)  # same state file, smaller cache
    small.set_var("LifeTime", "0")
    assert small.cache.trim() == 1
    assert small.keys() == {"T1", "T3"}  # LRU: T2 went
    assert small.model.value("AuthCacheCtrlr", "Storage") == str(2 * ONE)


def test_trim_drops_lapsed_entries(rig: Rig) -> None:
    rig.set_var("LifeTime", "10")
    rig.cache.store(tok("T1"), ACCEPTED)
    rig.clock.advance(11)
    assert rig.cache.trim() == 1
    assert rig.keys() == set()


# -- AuthCacheCtrlr variables --------------------------------------------------------------


def _report(model: DeviceModel) -> dict[str, dict[str, Any]]:
    return {
        e["variable"]["name"]: e
        for e in model.report("FullInventory")
        if e["component"]["name"] == "AuthCacheCtrlr"
    }


def test_auth_cache_ctrlr_variables_in_the_base_report(tmp_path: Path) -> None:
    rig = Rig(tmp_path, capacity=4096)
    report = _report(rig.model)
    assert set(report) == {
        "Enabled",
        "Available",
        "LifeTime",
        "Policy",
        "Storage",
        "DisablePostAuthorize",
    }
    mutability = {k: v["variableAttribute"][0]["mutability"] for k, v in report.items()}
    assert mutability == {
        "Enabled": "ReadWrite",
        "Available": "ReadOnly",
        "LifeTime": "ReadWrite",
        "Policy": "ReadWrite",
        "Storage": "ReadOnly",
        "DisablePostAuthorize": "ReadWrite",
    }
    storage = report["Storage"]["variableCharacteristics"]
    assert storage["unit"] == "B" and storage["dataType"] == "integer"
    assert storage["maxLimit"] == 4096
    policy = report["Policy"]["variableCharacteristics"]
    assert policy["dataType"] == "OptionList"
    assert policy["valuesList"] == "LRU,LFU,FIFO,CUSTOM"
    assert report["LifeTime"]["variableCharacteristics"]["unit"] == "s"
    assert report["DisablePostAuthorize"]["variableAttribute"][0]["value"] == "false"
    configuration = {
        e["variable"]["name"]
        for e in rig.model.report("ConfigurationInventory")
        if e["component"]["name"] == "AuthCacheCtrlr"
    }
    assert configuration == {"Enabled", "LifeTime", "Policy", "DisablePostAuthorize"}


@pytest.mark.parametrize(
    ("variable", "value", "status"),
    [
        ("Policy", "LFU", "Accepted"),
        ("Policy", "CUSTOM", "Accepted"),
        ("Policy", "RANDOM", "Rejected"),
        ("Policy", "lru", "Rejected"),
        ("LifeTime", "0", "Accepted"),
        ("LifeTime", "-1", "Rejected"),
        ("LifeTime", "1.5", "Rejected"),
        ("DisablePostAuthorize", "true", "Accepted"),
        ("DisablePostAuthorize", "yes", "Rejected"),
        ("Enabled", "maybe", "Rejected"),
        ("Storage", "10", "Rejected"),
        ("Available", "false", "Rejected"),
    ],
)
def test_set_variables_validates_auth_cache_ctrlr(
    rig: Rig, variable: str, value: str, status: str
) -> None:
    before = rig.model.value("AuthCacheCtrlr", variable)
    result = rig.set_var(variable, value)
    assert result["attributeStatus"] == status
    after = rig.model.value("AuthCacheCtrlr", variable)
    assert after == (value if status == "Accepted" else before)


def test_builtin_model_knows_the_variables_and_rejects_bad_values(tmp_path: Path) -> None:
    settings = load_settings(None, station_id="CP", csms_url="ws://x", state_dir=tmp_path)
    dm = BuiltinDeviceModel([1], settings)

    def set_one(variable: str, value: str) -> str:
        result = dm.set_variables(
            [
                {
                    "component": {"name": "AuthCacheCtrlr"},
                    "variable": {"name": variable},
                    "attribute_value": value,
                }
            ]
        )
        return str(result[0]["attribute_status"])

    assert set_one("Policy", "FIFO") == "Accepted"
    assert set_one("Policy", "RANDOM") == "Rejected"
    assert set_one("Storage", "5") == "Rejected"
    assert set_one("DisablePostAuthorize", "nope") == "Rejected"
    assert dm.max_limit("AuthCacheCtrlr", "Storage") == 131_072
