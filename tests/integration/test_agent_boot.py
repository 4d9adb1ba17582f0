"""Connection and registration: BootNotification Accepted / Pending / Rejected, heartbeats,
security profile 1, subprotocol, reconnect."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ocpp.v201 import call

from tests.support.agent_harness import eventually, start_harness
from tests.support.agent_test_csms import AgentTestCsms

PASSWORD = "correct-horse-battery"


async def test_b02_pending_sends_nothing_but_boot_and_answers_requests(tmp_path: Path) -> None:
    csms = AgentTestCsms(boot_statuses=["Pending", "Pending", "Accepted"], boot_interval=1)
    h = await start_harness(tmp_path, csms=csms, wait_online=False)
    try:
        await h.csms.wait_for("BootNotification")
        await h.csms.wait_connected("CP-TEST-1")
        # While Pending the CSMS may talk to the station, and it answers.
        result = await h.call(
            call.GetVariables(
                get_variable_data=[
                    {
                        "component": {"name": "OCPPCommCtrlr"},
                        "variable": {"name": "HeartbeatInterval"},
                    }
                ]
            )
        )
        assert result.get_variable_result[0]["attribute_status"] == "Accepted"
        assert h.csms.actions("StatusNotification") == []
        # TriggerMessage(BootNotification) makes the station boot again at once.
        trig = await h.call(call.TriggerMessage(requested_message="BootNotification"))
        assert trig.status == "Accepted"
        await h.csms.wait_for("BootNotification", count=2, within_s=0.9)
        await h.csms.wait_for("BootNotification", count=3, within_s=3)
        await h.csms.wait_for("StatusNotification")
        actions = [r.action for r in h.csms.received]
        first_other = next(i for i, a in enumerate(actions) if a != "BootNotification")
        assert actions[:first_other] == ["BootNotification"] * 3
        # Once accepted, a triggered BootNotification is refused (F06.FR.17).
        again = await h.call(call.TriggerMessage(requested_message="BootNotification"))
        assert again.status == "Rejected"
    finally:
        await h.close()


async def test_b03_rejected_sends_nothing_until_the_interval_passed(tmp_path: Path) -> None:
    csms = AgentTestCsms(boot_statuses=["Rejected", "Accepted"], boot_interval=1)
    h = await start_harness(tmp_path, csms=csms, wait_online=False)
    try:
        await h.csms.wait_for("BootNotification")
        loop = asyncio.get_running_loop()
        first_at = loop.time()
        await h.csms.wait_connected("CP-TEST-1")
        await eventually(lambda: h.agent.registration == "Rejected")
        # A request while Rejected gets no answer at all.
        station = h.csms.stations["CP-TEST-1"]
        station._response_timeout = 0.3
        try:
            await h.call(call.GetLocalListVersion())
            raise AssertionError("the station answered while Rejected")
        except TimeoutError:
            pass
        await h.csms.wait_for("BootNotification", count=2, within_s=3)
        assert loop.time() - first_at >= 0.9
        await h.csms.wait_for("StatusNotification")
        assert [r.action for r in h.csms.received][:2] == ["BootNotification"] * 2
    finally:
        await h.close()


async def test_b01_heartbeat_interval_from_boot_response(tmp_path: Path) -> None:
    csms = AgentTestCsms(boot_interval=1)
    h = await start_harness(tmp_path, csms=csms)
    try:
        await h.csms.wait_for("Heartbeat", count=2, within_s=3.5)
        assert h.agent.config.integer("OCPPCommCtrlr", "HeartbeatInterval") == 1
    finally:
        await h.close()


async def test_a00_security_profile_1_basic_auth(tmp_path: Path) -> None:
    csms = AgentTestCsms(password=PASSWORD)
    h = await start_harness(
        tmp_path, csms=csms, security={"profile": 1, "basic_auth_password": PASSWORD}
    )
    try:
        await h.csms.wait_for("BootNotification")
    finally:
        await h.close()


async def test_a00_wrong_password_is_refused_and_retried(tmp_path: Path) -> None:
    csms = AgentTestCsms(password=PASSWORD)
    h = await start_harness(
        tmp_path,
        csms=csms,
        wait_online=False,
        security={"profile": 1, "basic_auth_password": "x" * 16},
    )
    try:
        await asyncio.sleep(0.5)
        assert h.csms.received == []
        assert h.agent.connections == 0
    finally:
        await h.close()


async def test_reconnects_after_connection_loss_without_new_boot(tmp_path: Path) -> None:
    h = await start_harness(tmp_path)
    try:
        await h.csms.wait_for("StatusNotification")
        for ws in list(h.csms.connections):
            await ws.close()
        await eventually(lambda: h.agent.connections == 2)
        await eventually(lambda: h.agent.online)
        # Reconnected, not rebooted: one BootNotification, statuses reported again.
        await h.csms.wait_for("StatusNotification", count=2)
        assert len(h.csms.actions("BootNotification")) == 1
        assert h.evse.csms_connected_history[-3:] == [True, False, True]
    finally:
        await h.close()


async def test_dead_link_detected_by_websocket_ping_and_reconnected(tmp_path: Path) -> None:
    h = await start_harness(tmp_path, ping_interval_s=0.2, ping_timeout_s=0.3)
    try:
        await h.csms.wait_for("StatusNotification")
        # The CSMS side goes silent (a half-open TCP link): it reads nothing, answers no ping.
        h.csms.connections[0].transport.pause_reading()
        await eventually(lambda: not h.agent.online, within_s=3)
        await eventually(lambda: h.agent.connections == 2, within_s=6)
        await eventually(lambda: h.agent.online, within_s=3)
        h.csms.connections[0].transport.abort()  # drop the stale server side at once
    finally:
        await h.close()


async def test_a01_new_basic_auth_password_reconnects_with_it(tmp_path: Path) -> None:
    csms = AgentTestCsms(password=PASSWORD)
    h = await start_harness(
        tmp_path, csms=csms, security={"profile": 1, "basic_auth_password": PASSWORD}
    )
    try:
        new_password = "a-brand-new-password-42"
        h.csms.password = new_password  # the CSMS expects it from the next connection on
        result = await h.call(
            call.SetVariables(
                set_variable_data=[
                    {
                        "component": {"name": "SecurityCtrlr"},
                        "variable": {"name": "BasicAuthPassword"},
                        "attribute_value": new_password,
                    }
                ]
            )
        )
        assert result.set_variable_result[0]["attribute_status"] == "Accepted"
        await eventually(lambda: h.agent.connections == 2)
        await eventually(lambda: h.agent.online)
        assert len(h.csms.actions("BootNotification")) == 1  # reconnected, not rebooted
        assert h.agent.basic_auth_password() == new_password
    finally:
        await h.close()
