"""The CSIP-AUS chain on loopback, for tests/e2e/test_csip_chain.py and
benchmarks/bench_csip_envelope.py: envoy 1.5.0 (the DNSP's server, tests/support/csip_server.py)
-> the CSMS as the aggregator's CSIP-AUS client (csms.app.start, certificate-header mode on
loopback) -> OCPP -> the charge-point agent -> CHAdeMO on a python-can virtual bus -> a
simulated car, observed on the bus as a third party would (0x208 byte 0: the discharge current).

`csip_home(directory, envoy, path=...)` is a home: a site with one station whose car discharges
5 kW (a TxProfile of -5000 W: the evening peak) and the site registered with envoy by the CSMS.
`path` chooses how a new control reaches the CSMS:
  "poll"          envoy's DERProgram list pollRate 10 s, no subscriptions;
  "notification"  envoy's poll rates 900 s, the CSMS subscribed (csip_notify_base_url = its own
                  API on loopback) and woken by envoy's notifications.
`home.new_export_envelope(watts, duration_s)` adds a control in envoy's admin API and measures
(monotonic seconds from the admin call's start) until the station's envelope profile is
accepted (GET /sites/{id}/envelope) and until the 0x208 discharge current is within the limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from chargepoint_firmware.chademo.frames import ChargerDischargeStatus, ChargerStatus
from chargepoint_firmware.simulate import Car, SimStation
from tests.support.chademo_sim import BusRecorder
from tests.support.csip_admin import Envelope, EnvoyAdmin
from tests.support.csip_server import EnvoyServer, free_port
from tests.support.e2e_stack import E2eStack, running_stack, until

Path_ = Literal["poll", "notification"]
log = logging.getLogger("tests.csip_chain")

SITE_ID = "home"
STATION_ID = "HOME-1"
NMI = "4123456789"
PEAK_EXPORT_W = 5000.0  # the car's discharge into the evening peak (the Leaf allows 15 A)
# 0x208 byte 0 is whole amps (rounded) and the simulated power stage settles within a cycle.
BYTE_SLACK_A = 1.0
POLL_PATH_RATE_S = 10  # envoy's DERProgram list pollRate on the poll path
SLOW_RATE_S = 900  # envoy's poll rates on the notification path: the poll cannot be what acts
# "Within the limit" is the settled current: single 0x208 frames off the steady value occur
# (e.g. while a profile is replaced), so a level counts once it holds this long.
HOLD_S = 2.0


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Reaction:
    """Seconds from the start of the envoy admin call."""

    profile_accepted_s: float
    can_within_limit_s: float
    changed_at: dt.datetime  # wall clock, the admin call's start
    can_at: float  # monotonic, the first 0x208 frame within the limit


@dataclass
class CsipHome:
    stack: E2eStack
    envoy: EnvoyServer
    admin: EnvoyAdmin
    station: SimStation
    bus: BusRecorder
    program: int
    envoy_site: int
    path: Path_
    known_controls: frozenset[object] = frozenset({None})  # control ids already measured

    # -- the bus ------------------------------------------------------------------------------
    def volts(self) -> float:
        """The charger's measured output voltage (0x109), the last one on the bus."""
        frames = self.bus.decoded(0x109)
        for _, frame in reversed(frames):
            if isinstance(frame, ChargerStatus) and frame.output_voltage_v > 0:
                return float(frame.output_voltage_v)
        raise AssertionError("no 0x109 with a voltage on the bus")

    def bound_a(self, watts: float) -> float:
        """The discharge current an export limit allows at the measured voltage (the agent
        converts with max(measured, its minimum voltage): never more than this)."""
        return watts / self.volts() + BYTE_SLACK_A

    def discharge(self, since: float = 0.0) -> list[tuple[float, int]]:
        return [
            (at, f.discharge_current_a)
            for at, f in self.bus.decoded(0x208, since)
            if isinstance(f, ChargerDischargeStatus)
        ]

    def discharge_a(self) -> int:
        frames = self.discharge()
        assert frames, "no 0x208 on the bus"
        return frames[-1][1]

    def held_since(self, low: float, high: float, since: float) -> float | None:
        """The first 0x208 frame after `since` from which the current stays in [low, high]
        for HOLD_S (the frames up to now cover it), else None."""
        frames = self.discharge(since)
        start: float | None = None
        for at, amps in frames:
            inside = low <= amps <= high
            start = (start if start is not None else at) if inside else None
        if start is None or not frames or frames[-1][0] - start < HOLD_S:
            return None
        return start

    async def wait_discharging_at_peak(self, within_s: float = 60.0) -> None:
        """The car back at the peak discharge (the TxProfile's 5 kW, no envelope below it),
        held for HOLD_S."""
        since = time.monotonic()

        async def at_peak() -> bool:
            volts = self.volts()  # 0x109 reads near 0 V until the contactors close
            if volts <= 100:
                return False
            low = PEAK_EXPORT_W / volts - 2 * BYTE_SLACK_A
            return self.held_since(low, 1e6, since) is not None

        await until(at_peak, within_s, f"0x208 discharge back at {PEAK_EXPORT_W:.0f} W")

    # -- the change -----------------------------------------------------------------------------
    async def new_export_envelope(
        self, watts: float, duration_s: int, *, within_s: float = 90.0
    ) -> Reaction:
        """A control (export limit `watts`, from now for `duration_s`) added in envoy's admin;
        waits for the station's accepted envelope profile and the 0x208 current within it."""
        changed_at = utcnow()
        sent = time.monotonic()
        await self.admin.add_envelopes(
            self.program,
            self.envoy_site,
            [
                Envelope(
                    changed_at.replace(microsecond=0),
                    duration_s,
                    export_limit_w=Decimal(int(watts)),
                )
            ],
        )
        profile_at: list[float] = []
        can_at: list[float] = []
        before = self.known_controls

        async def profile_accepted() -> None:
            while True:
                view = (await self.stack.api.get(f"/sites/{SITE_ID}/envelope")).json()
                in_force = view.get("in_force") or {}
                station = next(s for s in view["stations"] if s["station_id"] == STATION_ID)
                new = in_force.get("control_id") not in before
                if new and in_force.get("export_limit_w") == watts and station["enforced"]:
                    profile_at.append(time.monotonic())
                    self.known_controls = before | {in_force.get("control_id")}
                    return
                await asyncio.sleep(0.1)

        async def can_within() -> None:
            while True:
                # Limited, not stopped: at least 1 A still flows.
                start = self.held_since(1, self.bound_a(watts), sent)
                if start is not None:
                    can_at.append(start)
                    return
                await asyncio.sleep(0.05)

        try:
            await asyncio.wait_for(
                asyncio.gather(profile_accepted(), can_within()), timeout=within_s
            )
        except TimeoutError:
            raise AssertionError(
                f"{self.path}: within {within_s} s, profile accepted: {bool(profile_at)}, "
                f"0x208 within {watts:.0f} W: {bool(can_at)} (now {self.discharge_a()} A)"
            ) from None
        return Reaction(profile_at[0] - sent, can_at[0] - sent, changed_at, can_at[0])

    async def readings_w(self, start: dt.datetime, end: dt.datetime) -> list[dict[str, Any]]:
        """The site's active-power readings in envoy (site and DER, "positive = import")."""
        return await self.admin.site_readings(self.envoy_site, 1, start, end)


async def _registered_site_lfdi(stack: E2eStack) -> str | None:
    view = (await stack.api.get(f"/sites/{SITE_ID}/csip")).json()
    if view.get("registration") != "registered":
        return None
    return str(view["lfdi"])


async def _subscribed_to(stack: E2eStack, href: str) -> bool:
    import sqlalchemy as sa

    from csms.persistence.csip_telemetry_tables import csip_subscriptions

    assert stack.csms is not None
    async with stack.csms.services.db.read() as conn:
        rows = await conn.execute(sa.select(csip_subscriptions.c.resource_href))
        return href in {str(r) for (r,) in rows}


def _write_cert(directory: Path, pem: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    cert = directory / "aggregator.pem"
    cert.write_text(pem)
    return cert


@contextlib.asynccontextmanager
async def csip_home(
    directory: Path, envoy: EnvoyServer, *, path: Path_, post_rate_s: int = 60
) -> AsyncIterator[CsipHome]:
    rate = POLL_PATH_RATE_S if path == "poll" else SLOW_RATE_S
    async with EnvoyAdmin(envoy) as admin:
        await admin.set_runtime_config(
            dcap_pollrate_seconds=SLOW_RATE_S,
            edevl_pollrate_seconds=SLOW_RATE_S,
            fsal_pollrate_seconds=SLOW_RATE_S,
            derl_pollrate_seconds=SLOW_RATE_S,
            derpl_pollrate_seconds=rate,
            mup_postrate_seconds=post_rate_s,
        )
        program = await admin.create_program(f"doe {path}", primacy=1)
        cert = _write_cert(directory, envoy.cert_pem)
        api_port = free_port()  # known before the start: the notification URL names it
        overrides: dict[str, Any] = {
            "api_port": api_port,
            "csip_enabled": True,
            "csip_server_url": envoy.base_url + "/dcap",
            "csip_cert_file": cert,
            "csip_cert_header_mode": True,
            "csip_tick_s": 0.5,
            "csip_poll_min_s": POLL_PATH_RATE_S,
        }
        if path == "notification":
            overrides["csip_notify_base_url"] = f"http://127.0.0.1:{api_port}"
        async with running_stack(directory / "stack", **overrides) as stack:
            station = await stack.add_station(
                STATION_ID, car=Car("Leaf", 40.0, 90.0), speed=1.0, meter_interval_s=1
            )
            bus = stack.sniff(station)
            created = await stack.api.post(
                "/sites",
                json={
                    "id": SITE_ID,
                    "name": "Home",
                    "nmi": NMI,
                    "csip_enabled": True,
                    "station_ids": [STATION_ID],
                },
            )
            assert created.status_code == 201, created.text
            lfdi = await until(
                lambda: _registered_site_lfdi(stack), 60, "the site registered with envoy"
            )
            envoy_site = await admin.site_id_of(lfdi)
            if path == "notification":
                derc = f"/edev/{envoy_site}/derp/{program}/derc"
                await until(
                    lambda: _subscribed_to(stack, derc), 60, "the subscription to the controls"
                )
            home = CsipHome(stack, envoy, admin, station, bus, program, envoy_site, path)
            await _start_discharging(home)
            yield home


async def _start_discharging(home: CsipHome, attempts: int = 3) -> None:
    """Plug in, start a transaction, TxProfile -5000 W, until the car exports 5 kW. On a loaded
    machine the car's session can trip (the charger's CAN-silence check) while it starts: then
    the car is unplugged and plugged in again (a new session and transaction)."""
    stack, station = home.stack, home.station
    for attempt in range(1, attempts + 1):
        station.plug_in()
        tx = await stack.remote_start(station, remote_start_id=attempt)
        answer = await stack.set_tx_profile(STATION_ID, tx, -PEAK_EXPORT_W)
        assert answer.status_code == 200 and answer.json()["status"] == "Accepted", answer.text
        try:
            await until(lambda: _has_frames(home), 30, "0x208 and 0x109 on the bus")
            await home.wait_discharging_at_peak()
            return
        except AssertionError:
            if attempt == attempts:
                raise
            log.warning("the car's session did not start (attempt %d): plugging in again", attempt)
            station.unplug()
            await until(lambda: _no_active_transaction(stack), 30, "the transaction ended")
            await asyncio.sleep(2)


async def _no_active_transaction(stack: E2eStack) -> bool:
    page = await stack.api.get(f"/stations/{STATION_ID}/transactions", params={"state": "Active"})
    return not page.json()["items"]


async def _has_frames(home: CsipHome) -> bool:
    return bool(home.discharge()) and any(
        isinstance(f, ChargerStatus) and f.output_voltage_v > 0 for _, f in home.bus.decoded(0x109)
    )
