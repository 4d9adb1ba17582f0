"""Authorization Cache of the agent against the test CSMS over a real websocket (C10, C11, C12).

The agent runs with the project device model and a small cache (AuthCacheCtrlr.Storage
maxLimit), so eviction by AuthCacheCtrlr.Policy is reached with a few cards.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from ocpp.v201 import call

from chargepoint_firmware.agent import Agent
from chargepoint_firmware.blocks.authorization.auth_cache_policy import entry_size
from chargepoint_firmware.device_model import DeviceModel
from chargepoint_firmware.device_model.store import InMemoryStore
from chargepoint_firmware.ocpp_edge.timefmt import iso_ms
from chargepoint_firmware.wiring import build_agent
from tests.integration.test_agent_local_auth import go_offline
from tests.integration.test_agent_transactions import set_variable
from tests.support.agent_fakes import FakeEvse
from tests.support.agent_harness import Harness, _online, agent_settings, eventually
from tests.support.agent_test_csms import AgentTestCsms

ACCEPTED = {"status": "Accepted"}
ONE = entry_size("CARD-1", "ISO14443", ACCEPTED)  # every CARD-<digit> Accepted entry


def card(n: int) -> dict[str, str]:
    return {"id_token": f"CARD-{n}", "type": "ISO14443"}


def new_agent(state_dir: Path, url: str, capacity: int) -> tuple[Agent, dict[int, FakeEvse]]:
    settings = agent_settings(state_dir, url, evses=[{"id": 1}])
    evses = {1: FakeEvse(1, None)}
    model = DeviceModel([1], InMemoryStore(), auth_cache_storage_bytes=capacity)
    return build_agent(settings, evses, device_model=model), evses


async def start(
    state_dir: Path, capacity: int = 100_000, csms: AgentTestCsms | None = None
) -> Harness:
    csms = csms or AgentTestCsms()
    url = csms.url if csms.port else await csms.start()
    agent, evses = new_agent(state_dir, url, capacity)
    h = Harness(csms, agent, evses, agent.clock)
    h.start_agent()
    await asyncio.wait_for(_online(agent), 5)
    return h


async def get_variable(h: Harness, variable: str) -> dict[str, Any]:
    result = await h.call(
        call.GetVariables(
            get_variable_data=[
                {"component": {"name": "AuthCacheCtrlr"}, "variable": {"name": variable}}
            ]
        )
    )
    out: dict[str, Any] = result.get_variable_result[0]
    return out


async def set_status(h: Harness, variable: str, value: str) -> str:
    result = await h.call(
        call.SetVariables(
            set_variable_data=[
                {
                    "component": {"name": "AuthCacheCtrlr"},
                    "variable": {"name": variable},
                    "attribute_value": value,
                }
            ]
        )
    )
    return str(result.set_variable_result[0]["attribute_status"])


async def authorize_and_withdraw(h: Harness, token: dict[str, str]) -> None:
    """Present a card twice on the idle EVSE: authorized (online: Authorize), then withdrawn."""
    assert await h.agent.present_id_token(1, token) == "Accepted"
    assert await h.agent.present_id_token(1, token) == "Accepted"


def cached(h: Harness, n: int) -> dict[str, Any] | None:
    return h.agent.storage.cache_get(f"CARD-{n}", "ISO14443")


async def test_auth_cache_ctrlr_variables_reported_and_validated(tmp_path: Path) -> None:
    h = await start(tmp_path, capacity=4096)
    try:
        result = await h.call(call.GetBaseReport(request_id=21, report_base="FullInventory"))
        assert result.status == "Accepted"
        await eventually(
            lambda: any(
                p["requestId"] == 21 and not p.get("tbc") for p in h.csms.actions("NotifyReport")
            )
        )
        data = {
            d["variable"]["name"]: d
            for p in h.csms.actions("NotifyReport")
            if p["requestId"] == 21
            for d in p["reportData"]
            if d["component"]["name"] == "AuthCacheCtrlr"
        }
        assert set(data) == {
            "Enabled",
            "Available",
            "LifeTime",
            "Policy",
            "Storage",
            "DisablePostAuthorize",
        }
        assert data["Storage"]["variableCharacteristics"]["maxLimit"] == 4096
        assert data["Storage"]["variableAttribute"][0]["mutability"] == "ReadOnly"
        assert data["Policy"]["variableCharacteristics"]["valuesList"] == "LRU,LFU,FIFO,CUSTOM"

        assert await set_status(h, "Policy", "RANDOM") == "Rejected"
        assert await set_status(h, "Storage", "1") == "Rejected"
        assert await set_status(h, "LifeTime", "-5") == "Rejected"
        assert await set_status(h, "DisablePostAuthorize", "1") == "Rejected"
        assert await set_status(h, "Policy", "LFU") == "Accepted"
        assert (await get_variable(h, "Policy"))["attribute_value"] == "LFU"
        assert (await get_variable(h, "Storage"))["attribute_value"] == "0"
    finally:
        await h.close()


async def test_c10_fr_04_authorize_response_is_cached_and_storage_counts_it(
    tmp_path: Path,
) -> None:
    h = await start(tmp_path)
    try:
        h.csms.authorize_answers["CARD-1"] = {"status": "Blocked"}
        assert await h.agent.present_id_token(1, card(1)) == "Blocked"
        assert cached(h, 1) == {"status": "Blocked"}  # any status is cached (C10.FR.01)
        storage = await get_variable(h, "Storage")
        assert storage["attribute_value"] == str(
            entry_size("CARD-1", "ISO14443", {"status": "Blocked"})
        )
    finally:
        await h.close()


async def test_c10_fr_05_transaction_event_response_updates_the_cache(tmp_path: Path) -> None:
    h = await start(tmp_path)
    try:
        h.evse.plug_in()
        assert await h.agent.present_id_token(1, card(1)) == "Accepted"
        assert cached(h, 1) == ACCEPTED
        h.csms.tx_token_status["CARD-1"] = "Blocked"
        h.evse.unplug()
        await h.csms.wait_for("TransactionEvent", lambda e: e["eventType"] == "Ended")
        await eventually(lambda: cached(h, 1) == {"status": "Blocked"}, message="not updated")
    finally:
        await h.close()


async def test_c10_fr_03_c12_fr_05_cached_refusal_is_asked_again(tmp_path: Path) -> None:
    h = await start(tmp_path)
    try:
        await set_variable(h, "AuthCtrlr", "LocalPreAuthorize", "true")
        h.csms.authorize_answers["CARD-1"] = {"status": "Blocked"}
        assert await h.agent.present_id_token(1, card(1)) == "Blocked"
        h.csms.authorize_answers["CARD-1"] = ACCEPTED  # unblocked at the CSMS
        h.evse.plug_in()
        assert await h.agent.present_id_token(1, card(1)) == "Accepted"
        assert len(h.csms.actions("Authorize")) == 2
        await h.csms.wait_for("TransactionEvent", lambda e: e["eventType"] == "Started")
        assert cached(h, 1) == ACCEPTED
    finally:
        await h.close()


async def test_c12_fr_05_disable_post_authorize_refuses_as_cached(tmp_path: Path) -> None:
    h = await start(tmp_path)
    try:
        await set_variable(h, "AuthCtrlr", "LocalPreAuthorize", "true")
        assert await set_status(h, "DisablePostAuthorize", "true") == "Accepted"
        h.csms.authorize_answers["CARD-1"] = {"status": "Blocked"}
        assert await h.agent.present_id_token(1, card(1)) == "Blocked"  # not cached yet: asked
        h.csms.authorize_answers["CARD-1"] = ACCEPTED
        h.evse.plug_in()
        assert await h.agent.present_id_token(1, card(1)) == "Blocked"
        assert len(h.csms.actions("Authorize")) == 1  # no post-authorize
        assert h.agent.transactions.evses[1].tx_id is None
        # An Accepted cache entry still starts at once (C12.FR.02).
        await authorize_and_withdraw(h, card(2))
        authorizes = len(h.csms.actions("Authorize"))
        assert await h.agent.present_id_token(1, card(2)) == "Accepted"
        assert len(h.csms.actions("Authorize")) == authorizes
    finally:
        await h.close()


async def test_c12_offline_start_with_cached_id_then_csms_blocks_it_online(
    tmp_path: Path,
) -> None:
    h = await start(tmp_path)
    try:
        await authorize_and_withdraw(h, card(1))
        await go_offline(h)
        h.evse.plug_in()
        await eventually(lambda: h.agent.transactions.evses[1].plugged)
        assert await h.agent.present_id_token(1, card(1)) == "Accepted"  # from the cache
        assert h.agent.transactions.evses[1].tx_id is not None
        h.csms.tx_token_status["CARD-1"] = "Blocked"
        await h.csms.start(port=h.csms.port)
        ended = (
            await h.csms.wait_for(
                "TransactionEvent", lambda e: e["eventType"] == "Ended", within_s=10
            )
        )[0]
        assert ended["transactionInfo"]["stoppedReason"] == "DeAuthorized"  # StopTxOnInvalidId
        first = next(e for e in h.csms.actions("TransactionEvent") if e["eventType"] == "Started")
        assert first["offline"] is True and first["idToken"]["idToken"] == "CARD-1"
        await eventually(lambda: cached(h, 1) == {"status": "Blocked"}, message="cache stale")
    finally:
        await h.close()


async def test_c11_fr_03_clear_cache_accepted_and_c11_fr_04_rejected_when_disabled(
    tmp_path: Path,
) -> None:
    h = await start(tmp_path)
    try:
        await authorize_and_withdraw(h, card(1))
        assert await set_status(h, "Enabled", "false") == "Accepted"
        assert (await h.call(call.ClearCache())).status == "Rejected"
        assert cached(h, 1) == ACCEPTED
        assert await set_status(h, "Enabled", "true") == "Accepted"
        assert (await h.call(call.ClearCache())).status == "Accepted"
        assert cached(h, 1) is None
        assert (await get_variable(h, "Storage"))["attribute_value"] == "0"
        await set_variable(h, "AuthCtrlr", "LocalPreAuthorize", "true")
        before = len(h.csms.actions("Authorize"))
        assert await h.agent.present_id_token(1, card(1)) == "Accepted"
        assert len(h.csms.actions("Authorize")) == before + 1  # no longer answered locally
    finally:
        await h.close()


@pytest.mark.parametrize(("policy", "evicted"), [("LRU", 2), ("FIFO", 1), ("LFU", 2)])
async def test_c10_full_cache_evicts_per_policy(tmp_path: Path, policy: str, evicted: int) -> None:
    h = await start(tmp_path, capacity=2 * ONE)
    try:
        assert await set_status(h, "Policy", policy) == "Accepted"
        await set_variable(h, "AuthCtrlr", "LocalPreAuthorize", "true")
        await authorize_and_withdraw(h, card(1))
        await authorize_and_withdraw(h, card(2))  # cache full
        await authorize_and_withdraw(h, card(1))  # two cache hits, no Authorize
        assert len(h.csms.actions("Authorize")) == 2
        await authorize_and_withdraw(h, card(3))  # one must go
        assert (await get_variable(h, "Storage"))["attribute_value"] == str(2 * ONE)
        await go_offline(h)
        for n in (1, 2, 3):
            expected = "Unknown" if n == evicted else "Accepted"
            assert await h.agent.present_id_token(1, card(n)) == expected, n
            if expected == "Accepted":
                assert await h.agent.present_id_token(1, card(n)) == "Accepted"
    finally:
        await h.close()


async def test_c10_fr_13_expiry_in_the_past_is_not_cached(tmp_path: Path) -> None:
    h = await start(tmp_path)
    try:
        past = iso_ms(datetime.now(UTC) - timedelta(seconds=5))
        h.csms.authorize_answers["CARD-1"] = {"status": "Accepted", "cache_expiry_date_time": past}
        await authorize_and_withdraw(h, card(1))
        assert cached(h, 1) is None
        await go_offline(h)
        assert await h.agent.present_id_token(1, card(1)) == "Unknown"
    finally:
        await h.close()


async def test_c10_fr_02_cache_persists_across_agent_restart(tmp_path: Path) -> None:
    h = await start(tmp_path)
    await authorize_and_withdraw(h, card(1))
    h.csms.authorize_answers["CARD-2"] = {"status": "Blocked"}
    assert await h.agent.present_id_token(1, card(2)) == "Blocked"
    await h.stop_agent()
    h.agent.close()
    await h.csms.stop()  # the station comes back without its CSMS
    agent, evses = new_agent(tmp_path, h.csms.url, 100_000)
    h2 = Harness(h.csms, agent, evses, agent.clock)
    h2.start_agent()
    try:
        await eventually(lambda: 1 in h2.agent.transactions.evses, message="agent not running")
        assert (await h2.agent.present_id_token(1, card(1))) == "Accepted"
        assert (await h2.agent.present_id_token(1, card(1))) == "Accepted"
        assert (await h2.agent.present_id_token(1, card(2))) == "Blocked"
        assert h2.agent.dm.value("AuthCacheCtrlr", "Storage") == str(
            ONE + entry_size("CARD-2", "ISO14443", {"status": "Blocked"})
        )
    finally:
        await h2.close()
