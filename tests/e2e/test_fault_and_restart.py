"""End to end: a vehicle fault mid-discharge (bus timing + the event through the API), and a CSMS
restart in the middle of a session that loses no meter value."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chargepoint_firmware.simulate import Car
from tests.support.chademo_sim import BusRecorder
from tests.support.e2e_stack import running_stack, until, until_true

FAULT_TO_SAFE_S = 0.5
SAFE_CURRENT_A = 5


def frames(bus: BusRecorder, can_id: int, since: float = 0.0) -> list[tuple[float, Any]]:
    return bus.decoded(can_id, since)


async def test_vehicle_fault_mid_discharge_drops_current_within_half_a_second_and_reports(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        station = await stack.add_station(
            "E2E-FLT", car=Car("Leaf", 24.0, 85.0), speed=10.0, meter_interval_s=10
        )
        bus = stack.sniff(station)
        station.plug_in()
        tx = await stack.remote_start(station)
        response = await stack.set_tx_profile("E2E-FLT", tx, -5000.0)
        assert response.json()["status"] == "Accepted", response.text
        await until_true(
            lambda: any(f.discharge_current_a >= 10 for _, f in frames(bus, 0x208)),
            within_s=20,
            what="discharge of at least 10 A",
        )

        station.sim.vehicle.inject_fault("fault_battery_overvoltage")
        await until_true(
            lambda: any(f.fault_battery_overvoltage for _, f in frames(bus, 0x102)),
            within_s=2,
            what="the fault flag on 0x102",
        )
        raised_at = next(at for at, f in frames(bus, 0x102) if f.fault_battery_overvoltage)
        await until_true(
            lambda: any(
                f.discharge_current_a <= SAFE_CURRENT_A for _, f in frames(bus, 0x208, raised_at)
            ),
            within_s=2,
            what="discharge current <= 5 A after the fault",
        )
        safe_at = next(
            at for at, f in frames(bus, 0x208, raised_at) if f.discharge_current_a <= SAFE_CURRENT_A
        )
        assert safe_at - raised_at <= FAULT_TO_SAFE_S, f"{safe_at - raised_at:.3f} s"
        latched = " ".join(station.status().latched_faults)
        assert "overvoltage" in latched, station.status()

        async def reported() -> list[dict[str, Any]] | None:
            found = [
                e
                for e in await stack.events("E2E-FLT")
                if e["kind"] in ("NotifyEvent", "SecurityEventNotification")
                and "overvoltage" in str(e["payload"])
            ]
            return found or None

        events = await until(reported, within_s=10, what="the fault in /events")
        kinds = {e["kind"] for e in events}
        assert kinds & {"NotifyEvent", "SecurityEventNotification"}

        async def ended() -> dict[str, Any] | None:
            body = (await stack.api.get(f"/stations/E2E-FLT/transactions/{tx}")).json()
            transaction: dict[str, Any] = body["transaction"]
            return transaction if transaction["state"] == "Ended" else None

        transaction = await until(ended, within_s=10, what="the transaction ended by the fault")
        assert transaction["stopped_reason"] not in (None, "Local", "Remote", "Other")


def _ms(text: str) -> str:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]


def _key(timestamp: str, measurand: str, value: float) -> tuple[str, str, float]:
    return (_ms(timestamp), measurand, round(float(value), 2))


async def test_csms_restart_mid_session_loses_and_duplicates_no_meter_value(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        station = await stack.add_station(
            "E2E-RST", car=Car("Leaf", 40.0, 40.0), speed=10.0, meter_interval_s=5
        )
        produced: list[tuple[str, str, float]] = []
        outbox = station.agent.outbox
        original_put = outbox.put

        def recording_put(action: str, payload: dict[str, Any]) -> str:
            for meter_value in payload.get("meter_value") or []:
                for sampled in meter_value["sampled_value"]:
                    produced.append(
                        _key(
                            meter_value["timestamp"],
                            sampled.get("measurand", "Energy.Active.Import.Register"),
                            sampled["value"],
                        )
                    )
            return original_put(action, payload)

        outbox.put = recording_put  # type: ignore[method-assign]
        station.plug_in()
        tx = await stack.remote_start(station)
        response = await stack.set_tx_profile("E2E-RST", tx, 4000.0)
        assert response.json()["status"] == "Accepted", response.text
        await asyncio.sleep(1.5)

        await stack.stop_csms()
        await until_true(lambda: not station.online, within_s=5, what="the agent offline")
        await until_true(lambda: len(outbox) >= 3, within_s=10, what="meter values queued")
        queued_while_down = len(outbox)

        await stack.start_csms()
        await station.wait_online(within_s=10)
        await until_true(lambda: len(outbox) == 0, within_s=15, what="the queue delivered")
        snapshot = list(produced)  # everything produced so far has been answered by the CSMS
        assert queued_while_down >= 3

        stored = [
            _key(m["timestamp"], m["measurand"], m["value"])
            for m in await stack.meter_values("E2E-RST", tx)
        ]
        counts = Counter(stored)
        duplicates = {k: n for k, n in counts.items() if n > 1}
        assert not duplicates, f"stored more than once: {list(duplicates)[:5]}"
        missing = [k for k in snapshot if counts[k] != 1]
        assert not missing, f"{len(missing)} of {len(snapshot)} values not stored: {missing[:5]}"
        assert len(snapshot) >= 20
