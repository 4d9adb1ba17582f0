"""Issue 18 on OCPP 2.1, end to end on loopback: the real CSMS (csms.app.start) -> OCPP 2.1 ->
our agent -> composite + safety supervisor -> ChademoEvse -> python-can virtual bus ->
simulated Leaf, observed on the bus as a third party would (0x208 byte 1, discharge current).

A car discharges at 5 kW (a CentralSetpoint TxProfile). The site's export envelope (2 kW)
arrives as the envelope profile and as SetDERControl LimitMaxDischarge (R04): 0x208 falls
within 2 kW, and the agent's supervisor holds the control as a local limit. A tighter
LimitMaxDischarge under the same controlId (half the percentage, the profile still saying
2 kW) brings 0x208 within it: the DER control itself bounds the current. The CSMS
stops: the bound still holds offline. The agent restarts with the CSMS still down: the control
is restored from its storage and is again the supervisor's local limit."""

from __future__ import annotations

import asyncio
import math
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from chargepoint_firmware.chademo.frames import ChargerDischargeStatus
from chargepoint_firmware.simulate import Car, SimStation
from csms.domain.envelope_der import control_id
from csms.domain.envelopes import DEFAULT_RATED_W
from tests.e2e.test_chain_v21 import v21_setpoint_profile
from tests.support.chademo_sim import BusRecorder
from tests.support.e2e_stack import running_stack, until, until_true

STATION = "DER-21"
SITE = "home-der"
EXPORT_W = 2000.0
RATED_W = 6000.0  # chargepoint_firmware.simulate.SIM_EVSE max_discharge_power_w
SLACK_A = 1.0  # 0x208 byte 1 is whole amps, and the power stage settles within a cycle


def discharge_since(bus: BusRecorder, since: float) -> list[int]:
    return [
        f.discharge_current_a
        for _, f in bus.decoded(0x208, since)
        if isinstance(f, ChargerDischargeStatus)
    ]


def bound_a(station: SimStation, watts: float) -> float:
    return watts / station.status().voltage_v + SLACK_A


async def within_for(bus: BusRecorder, station: SimStation, watts: float, seconds: float) -> None:
    """Once the latest 0x208 frame is within `watts` (a 100 ms cycle after the setpoint
    moved), every frame of the next `seconds` too; the car still discharging."""
    await until_true(
        lambda: discharge_since(bus, 0.0)[-1] <= bound_a(station, watts),
        within_s=5,
        what=f"0x208 within {watts:.0f} W",
    )
    since = time.monotonic()
    await asyncio.sleep(seconds)
    seen = discharge_since(bus, since)
    assert seen, "no 0x208 frames"
    assert max(seen) <= bound_a(station, watts), (max(seen), bound_a(station, watts))
    assert seen[-1] >= 1, "the limit bounds export, it does not stop it"


async def test_r04_envelope_limit_max_discharge_bounds_0x208_online_offline_and_restored(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        station = await stack.add_station(
            STATION, car=Car("Leaf", 24.0, 80.0), ocpp_versions=["2.1"]
        )
        # The site, and the station's rating known to the CSMS (its device-model report), before
        # the session: building the full report stalls the simulation's event loop a moment.
        created = await stack.api.post(
            "/sites", json={"id": SITE, "name": "Home", "station_ids": [STATION]}
        )
        assert created.status_code == 201, created.text
        report = await stack.api.post(
            f"/stations/{STATION}/ocpp/GetBaseReport",
            json={"requestId": 7, "reportBase": "FullInventory"},
        )
        assert report.status_code == 200, report.text
        assert stack.csms is not None
        envelopes = stack.csms.services.envelopes

        async def rating() -> float | None:
            (_, discharge), *_ = await envelopes._ratings([STATION])
            return discharge if discharge != DEFAULT_RATED_W else None

        csms_rated_w = await until(rating, within_s=10, what="the rating from NotifyReport")

        bus = stack.sniff(station)
        station.plug_in()
        tx = await stack.remote_start(station)
        response = await stack.api.post(
            f"/stations/{STATION}/charging-profiles",
            json={"evse_id": 1, "charging_profile": v21_setpoint_profile(tx, -5000.0, -6000.0)},
        )
        assert response.json()["status"] == "Accepted", response.text
        await until_true(
            lambda: any(a >= 10 for a in discharge_since(bus, 0.0)),
            within_s=20,
            what="discharging at 5 kW on 0x208",
        )

        # The envelope: 2 kW export for an hour, as the profile and as LimitMaxDischarge.
        now = datetime.now(UTC)
        envelope = {
            "start": (now - timedelta(minutes=1)).isoformat(),
            "end": (now + timedelta(hours=1)).isoformat(),
            "export_limit_w": EXPORT_W,
        }
        put = await stack.api.put(
            f"/sites/{SITE}/envelopes/operator", json={"envelopes": [envelope]}
        )
        assert put.status_code == 200, put.text
        assert put.json()["stations"][0]["status"] == "Accepted"

        async def der_accepted() -> dict[str, Any] | None:
            events = await stack.events(STATION, "EnvelopeDerControl")
            return events[0] if events and events[0]["payload"]["status"] == "Accepted" else None

        event = await until(der_accepted, within_s=10, what="LimitMaxDischarge accepted")
        sent = event["payload"]["request"]
        assert sent["controlId"] == control_id(SITE)
        pct = sent["limitMaxDischarge"]["pctMaxDischargePower"]
        assert pct == math.floor(min(EXPORT_W, csms_rated_w) / csms_rated_w * 10_000) / 100
        # At the agent: that share of its own rated discharge power (never above the share
        # when the CSMS's rating is the charge rating, as here: the safe side).
        der_w = pct / 100 * RATED_W
        await until_true(
            lambda: station.sim.evse._setpoint.der_max_discharge_w == der_w,
            within_s=5,
            what="the control as the supervisor's local limit",
        )
        await within_for(bus, station, min(EXPORT_W, der_w), 2.0)

        # The same control, tighter than the profile: the DER control bounds the current.
        tight_pct = math.floor(pct * 50) / 100
        tight_w = tight_pct / 100 * RATED_W
        settings = dict(sent["limitMaxDischarge"], pctMaxDischargePower=tight_pct)
        answer = await stack.api.post(
            f"/stations/{STATION}/der/controls", json=dict(sent, limitMaxDischarge=settings)
        )
        assert answer.status_code == 200 and answer.json()["status"] == "Accepted", answer.text
        await until_true(
            lambda: station.sim.evse._setpoint.der_max_discharge_w == tight_w,
            within_s=5,
            what="the tighter control as the supervisor's local limit",
        )
        await within_for(bus, station, tight_w, 1.5)

        # Offline: the control holds.
        await stack.stop_csms()
        await until_true(lambda: not station.online, within_s=10, what="agent offline")
        await within_for(bus, station, tight_w, 2.0)

        # Restart with the CSMS still down: restored from the agent's storage.
        await station.stop(drain_s=0.5)
        stack.stations.remove(station)
        again = SimStation(station.settings, car=Car("Leaf", 24.0, 80.0))
        stack.stations.append(again)
        restored = again.agent.smart
        assert restored is not station.agent.smart
        later = datetime.now(UTC)
        control = restored.der.active("LimitMaxDischarge", later)
        assert control is not None and control.control_id == control_id(SITE)
        assert restored.der.evse_limit(later, restored.evses[1], 400.0)[0] == tight_w
        await again.start()
        await until_true(
            lambda: again.sim.evse._setpoint.der_max_discharge_w == tight_w,
            within_s=5,
            what="the restored control as the supervisor's local limit, offline",
        )
