"""`csms demo`: the whole platform on one machine, nothing else installed.

It starts the CSMS on an embedded SQLite database (a temporary directory, or `--data-dir`) with
in-process routing, registers N stations, an API token and a driver's id token, and runs N
simulated charging stations against it: each is the REAL charge-point agent
(`chargepoint_firmware`) with its real CHAdeMO controller and safety supervisor, only the vehicle
and the power stage simulated, on its own python-can `virtual` bus. Then, through the CSMS's own
REST API (what any operator or optimizer would call):

1. each car is plugged in and a transaction is started (RequestStartTransaction);
2. the V2G optimizer (`csms.v2g.optimizer`) plans the car's next 24 hours on a real NEM price
   day (AEMO, Victoria, 5-minute prices from 2024-08-05 12:00 to 2024-08-06 12:00 AEST, with
   the evening price spike): charge in the cheap hours, discharge at the evening peak, be at
   80 % at departure; the plan goes to the station as a TxProfile (negative limit = discharge);
3. the agent turns the profile into CHAdeMO current on the CAN bus, the simulated battery's SoC
   moves, and the meter values come back to the CSMS.

`--speed X` runs simulated time X times faster (the agents' clock and the vehicles' energy both
honour it): the default 360 runs the day in 4 minutes. `--duration S` stops by itself; Ctrl-C
stops cleanly (transactions end, queued messages are delivered, the CSMS shuts down).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from csms.v2g.optimizer import VehiclePlan
from csms.v2g.prices import AEST, NemTariff, PriceSeries
from v2g_demo.view import Snapshot, StationRow, render, table
from v2g_shared.stop_signals import install_stop_signals

if TYPE_CHECKING:
    import httpx

    from chargepoint_firmware.interfaces import HardwareEvent
    from chargepoint_firmware.simulate import ScaledClock, SimStation
    from csms.app import RunningCsms
    from csms.settings import Settings

# AEMO PRICE_AND_DEMAND_202408_VIC1.csv, RRP ($/MWh, excl. GST) of the 288 five-minute
# intervals ending 2024/08/05 12:05 ... 2024/08/06 12:00 (NEM time), unmodified. Data (c) AEMO,
# reused with attribution (see tests/data/v2g/README.md for the source of the file).
NEM_DAY_RRP = """
297 296.34 294.06 295.43 292.68 285.94 262.75 245.84 262.03 197.85 171.55
173.06 187.91 220.31 219.95 239.70 162.41 168.48 165.50 83.09 137.41 199.01
238.71 268.53 135.45 180.30 227.97 166.87 165.50 253.36 268.74 279.17 281.73
270.39 289.38 289.31 272.95 270.99 281.48 299.50 295.51 299.50 299.50 268.38
268.93 271.36 294.50 299.50 299.50 299.84 280.01 299.82 307.02 299.50 298
299.50 449.97 471.27 474.75 479.34 3898 3903.11 14450.01 14450.01 14935 16853.88
15159.51 16893.41 16656.93 14450.01 14450.01 14450.01 4283 3912.82 3912.82 4270 10144.22
14450.01 14096.68 13629.45 4448.07 4283 4069 4065.32 3898.45 10110.60 3945.71 3958.91
899.01 720.16 470.08 473.67 480.15 470.23 463.62 452.94 387.79 354.62 354.62
349.01 309.42 302.51 300.99 303.09 299.50 299.50 299.50 285.94 299.50 299.50
299.50 285.96 284 285.94 307.43 306.33 302.88 285.96 284 270.75 251.74
271.55 270.82 228.40 297.98 225.67 228.16 237.34 251.74 272.94 261.95 214.40
215.32 299.50 299.82 299.50 299.50 299.50 296.06 299.50 210.85 209.17 206.83
204.44 270.91 211.96 246.82 242.02 209.70 165.50 165.50 227.97 256.31 205.41
204.58 204.32 273.29 207.11 211.42 192.24 167.61 178.83 171.55 148.45 147.22
165.58 146.06 145 146.10 145.74 112.43 136.77 144.45 112.30 116.10 136.77
109 109 109 88.85 101.46 109 104.31 100.42 87.59 99.23 87.48
99.73 97.01 107.43 108.76 90.75 88.85 88.85 109.50 108.25 87.52 85.98
78.08 77.83 77.80 91.66 86.59 106.96 76 75.98 87.09 132.96 128.35
110.72 110.06 133 145 135.61 145 145 190.70 191.70 220.57 238.61
248.94 233 240 240 240 250.35 254.92 259.44 264.06 259.84 262.08
270.82 270.82 270.82 274.09 273.34 273.72 278.21 272.18 255.74 276.67 263.47
240 228.86 159.06 122.99 145 145 145 158.29 98.89 85 107.38
89.69 89.42 85 78.07 79.21 79.12 85 74.47 75.44 52.21 40.41
21.40 78.98 68.09 42.61 9.17 -19.99 -3.13 -19.98 -19.98 -30 -39.01
-30.01 -35.56 -32.98 -30.01 -39.01 -35.56 -30 -19.98 -31.80 8.95 0
-39.48 -35.57
"""
NEM_DAY_START = datetime(2024, 8, 5, 12, 0, tzinfo=AEST)
NEM_INTERVAL = timedelta(minutes=5)

STATION_PASSWORD = "demo-station-password"
DRIVER_TOKEN = "DEMO-DRIVER"
DAY = timedelta(hours=24)  # one plan per simulated day
TARGET_SOC = 0.8
# The simulated charger and car: up to 6 kW charging, 5 kW discharging (the car allows 15 A).
MAX_CHARGE_KW = 6.0
MAX_DISCHARGE_KW = 5.0
DRIVING_RESERVE_SOC = 0.3  # the agent's default driving reserve (safety.driving_reserve_soc_pct)


def nem_day_rrp() -> list[float]:
    return [float(value) for value in NEM_DAY_RRP.split()]


def demo_prices(sim_start: datetime, tariff: NemTariff | None = None) -> PriceSeries:
    """The NEM day as household prices (c/kWh), moved so that it begins at `sim_start`."""
    tariff = tariff or NemTariff()
    rrp = nem_day_rrp()
    return PriceSeries(
        start=sim_start,
        interval=NEM_INTERVAL,
        import_c_kwh=tuple(tariff.import_price(r) for r in rrp),
        export_c_kwh=tuple(tariff.export_price(r) for r in rrp),
    )


def plan_power_kw(plan: VehiclePlan | None, moment: datetime) -> float | None:
    """The plan's power for the interval containing `moment` (None outside the plan)."""
    if plan is None or moment < plan.start or moment >= plan.departure:
        return None
    index = 0
    for k, start in enumerate(plan.interval_starts):
        if start <= moment:
            index = k
    return plan.power_kw[index]


def plan_summary(plan: VehiclePlan) -> str:
    charge = sum(max(0.0, p) * h for p, h in zip(plan.power_kw, plan.hours, strict=True))
    discharge = sum(max(0.0, -p) * h for p, h in zip(plan.power_kw, plan.hours, strict=True))
    return (
        f"charge {charge:.1f} kWh in cheap hours, discharge {discharge:.1f} kWh at the peak, "
        f"{plan.soc_at_departure * 100:.0f}% at departure"
    )


@dataclass
class DemoOptions:
    stations: int = 3
    speed: float = 360.0
    duration_s: float | None = None
    data_dir: Path | None = None
    api_port: int = 8000
    ocpp_port: int = 9000
    live: bool | None = None  # None: redraw when the output is a terminal


@dataclass
class DemoStation:
    index: int
    station: SimStation
    transaction_id: str | None = None
    plan: VehiclePlan | None = None
    meter_values: int = 0
    last_reported_mv: float = 0.0
    was_online: bool = False


@dataclass
class Demo:
    options: DemoOptions
    out: TextIO
    running: RunningCsms
    api: httpx.AsyncClient
    clock: ScaledClock
    prices: PriceSeries
    header: list[str]
    stations: list[DemoStation] = field(default_factory=list)
    events: deque[str] = field(default_factory=lambda: deque(maxlen=200))
    live: bool = False

    # -- event log ---------------------------------------------------------------------------
    def event(self, text: str) -> None:
        line = f"{datetime.now().strftime('%H:%M:%S')} {text}"
        self.events.append(line)
        if not self.live:
            self.out.write(line + "\n")
            self.out.flush()

    def hardware_listener(self, station_id: str) -> Any:
        def listener(event: HardwareEvent) -> None:
            detail = f" ({event.detail})" if event.detail else ""
            self.event(f"{station_id}: {event.kind.value.replace('_', ' ')}{detail}")

        return listener

    # -- one station's story -----------------------------------------------------------------
    async def drive(self, ds: DemoStation) -> None:
        station = ds.station
        sid = station.station_id
        await station.wait_online(within_s=60)
        self.event(f"{sid}: booted (BootNotification Accepted), connected over OCPP 2.0.1")
        await asyncio.sleep(1.0 + 0.7 * ds.index)
        interval = max(1, round(self.clock.speed * 2))  # a sample every 2 real seconds
        answer = await self._post(
            f"/stations/{sid}/commands/set-variables",
            {
                "variables": [
                    {
                        "component": "SampledDataCtrlr",
                        "variable": "TxUpdatedInterval",
                        "value": str(interval),
                    }
                ]
            },
        )
        status = answer["setVariableResult"][0]["attributeStatus"]
        self.event(f"{sid}: SetVariables TxUpdatedInterval={interval} s (simulated): {status}")
        station.plug_in()
        await station.wait_plugged()
        self.event(f"{sid}: {station.car.name} plugged in at {station.car.soc_pct:.0f}% SoC")
        answer = await self._post(
            f"/stations/{sid}/commands/request-start",
            {
                "id_token": DRIVER_TOKEN,
                "id_token_type": "ISO14443",
                "evse_id": 1,
                "remote_start_id": ds.index + 1,
            },
        )
        self.event(f"{sid}: RequestStartTransaction: {answer['status']}")
        ds.transaction_id = await self._active_transaction(sid)
        self.event(f"{sid}: transaction {ds.transaction_id[:8]} started")
        while True:  # one plan per simulated day, on the same NEM price day
            day = int((self.clock.now() - self.clock.origin) / DAY)
            day_start = self.clock.origin + day * DAY
            await self._send_plan(ds, day_start)
            await self.clock.sleep_until(day_start + DAY)

    async def _send_plan(self, ds: DemoStation, day_start: datetime) -> None:
        from csms.v2g.optimizer import PlanError, plan_vehicle, to_tx_profile
        from csms.v2g.vehicle import Vehicle, VehicleSession

        station = ds.station
        sid = station.station_id
        assert ds.transaction_id is not None
        now = self.clock.now()
        session = VehicleSession(
            vehicle=Vehicle(
                vehicle_id=sid,
                capacity_kwh=station.car.capacity_kwh,
                max_charge_kw=MAX_CHARGE_KW,
                max_discharge_kw=MAX_DISCHARGE_KW,
                driving_reserve_soc=DRIVING_RESERVE_SOC,
            ),
            soc=min(1.0, max(0.0, station.battery_soc_pct() / 100.0)),
            departure=day_start + DAY,
            target_soc=TARGET_SOC,
        )
        try:
            # scipy's HiGHS: same solver, and it prints no banner into the console view.
            plan = plan_vehicle(session, demo_prices(day_start), now, backend="scipy")
        except (PlanError, ValueError) as exc:
            self.event(f"{sid}: no plan for this day: {exc}")
            return
        profile = to_tx_profile(plan, 1000 + ds.index, ds.transaction_id, stack_level=0)
        answer = await self._post(
            f"/stations/{sid}/charging-profiles", {"evse_id": 1, "charging_profile": profile}
        )
        ds.plan = plan if answer.get("status") == "Accepted" else None
        self.event(
            f"{sid}: V2G plan ({plan_summary(plan)}) sent as SetChargingProfile: "
            f"{answer.get('status')}"
        )

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await self.api.post(path, json=body)
        if response.status_code != 200:
            raise RuntimeError(f"POST {path}: {response.status_code} {response.text}")
        result: dict[str, Any] = response.json()
        return result

    async def _active_transaction(self, station_id: str) -> str:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            response = await self.api.get(
                f"/stations/{station_id}/transactions", params={"state": "Active"}
            )
            # K01.FR.09: a TxProfile needs the transaction known on its EVSE, and a station
            # may name the EVSE only in a later event than the one that started it.
            on_evse = [t for t in response.json().get("items", []) if t.get("evse_id") == 1]
            if on_evse:
                return str(on_evse[0]["transaction_id"])
            await asyncio.sleep(0.1)
        raise RuntimeError(f"{station_id}: no transaction started")

    # -- view --------------------------------------------------------------------------------
    async def refresh(self) -> Snapshot:
        services = self.running.services
        rows: list[StationRow] = []
        sim_now = self.clock.now()
        for ds in self.stations:
            station = ds.station
            if station.online and not ds.was_online:
                ds.was_online = True
            if ds.transaction_id is not None:
                with contextlib.suppress(Exception):
                    detail = await services.transactions.get(station.station_id, ds.transaction_id)
                    count = len(detail.meter_values)
                    if count > ds.meter_values:
                        ds.meter_values = count
                        if time.monotonic() - ds.last_reported_mv >= 10.0:
                            ds.last_reported_mv = time.monotonic()
                            self.event(
                                f"{station.station_id}: meter values at the CSMS: {count} "
                                f"sampled values ({_latest(detail.meter_values)})"
                            )
            status = station.status()
            rows.append(
                StationRow(
                    station_id=station.station_id,
                    car=station.car.name,
                    state=status.state.value if station.online else "offline",
                    setpoint_kw=plan_power_kw(ds.plan, sim_now),
                    commanded_a=status.commanded_current_a,
                    limited_by=status.limited_by,
                    current_a=status.current_a,
                    power_kw=status.power_w / 1000.0,
                    soc_pct=station.battery_soc_pct() if status.plugged else None,
                    energy_in_kwh=status.energy_import_wh / 1000.0,
                    energy_out_kwh=status.energy_export_wh / 1000.0,
                    meter_values=ds.meter_values,
                )
            )
        elapsed = (sim_now - self.clock.origin) % DAY
        index = int(elapsed / NEM_INTERVAL)
        price = self.prices.import_c_kwh[index] if 0 <= index < len(self.prices) else None
        return Snapshot(
            header=self.header,
            sim_time=NEM_DAY_START + elapsed,
            price_c_kwh=price,
            rows=rows,
            events=list(self.events),
        )


def _latest(samples: list[Any]) -> str:
    latest: dict[str, float] = {}
    for sample in samples:
        latest[sample.measurand] = sample.value
    parts = []
    for measurand, label, scale, unit in (
        ("Energy.Active.Import.Register", "import", 1000.0, "kWh"),
        ("Energy.Active.Export.Register", "export", 1000.0, "kWh"),
        ("SoC", "SoC", 1.0, "%"),
    ):
        if measurand in latest:
            parts.append(f"{label} {latest[measurand] / scale:.2f} {unit}")
    return ", ".join(parts) or "no energy registers yet"


async def _start_csms(settings: Settings) -> RunningCsms:
    """Start on the requested ports; a port already taken falls back to a free one."""
    from csms.app import start

    try:
        return await start(settings)
    except OSError:
        fallback = settings.model_copy(update={"api_port": 0, "ocpp_port": 0})
        return await start(fallback)


async def run_demo(options: DemoOptions, out: TextIO = sys.stdout) -> int:
    import httpx

    from chargepoint_firmware.simulate import ScaledClock, SimStation, car_for, station_settings
    from csms.domain.errors import CsmsError
    from csms.settings import Settings

    if options.stations < 1:
        raise ValueError("--stations must be at least 1")
    if not options.speed > 0:
        raise ValueError("--speed must be > 0")
    temporary = options.data_dir is None
    data_dir = options.data_dir or Path(tempfile.mkdtemp(prefix="csms-demo-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    values: dict[str, Any] = {
        "database_url": f"sqlite+aiosqlite:///{data_dir / 'csms.db'}",
        "ocpp_host": "127.0.0.1",
        "ocpp_port": options.ocpp_port,
        "api_host": "127.0.0.1",
        "api_port": options.api_port,
        "heartbeat_interval_s": 3600,
        "command_timeout_s": 15.0,
        "log_level": "WARNING",
    }
    settings = Settings(**values)
    stop = asyncio.Event()
    remove_stop_signals = install_stop_signals(stop)
    running = await _start_csms(settings)
    demo: Demo | None = None
    tasks: list[asyncio.Task[None]] = []
    try:
        services = running.services
        token = (await services.api_tokens.create("demo")).plaintext
        await services.id_tokens.create(DRIVER_TOKEN, "ISO14443")
        ids = [f"DEMO-{i + 1}" for i in range(options.stations)]
        for station_id in ids:
            with contextlib.suppress(CsmsError):  # already there in a reused --data-dir
                await services.stations.create(station_id, password=STATION_PASSWORD)
        header = [
            f"csms demo: {options.stations} simulated CHAdeMO V2X station(s), "
            f"speed x{options.speed:g} (data in {data_dir})",
            f"REST API  {running.api_url}/api/v1    docs {running.api_url}/docs    "
            f"OpenAPI {running.api_url}/openapi.json",
            f"Dashboard {running.api_url}/  (sign in with the API token below)",
            f"API token {token}",
            f"  try: curl -H 'Authorization: Bearer {token}' {running.api_url}/api/v1/stations",
            f"OCPP      {running.ocpp_url}/<stationId>  (stations DEMO-1..DEMO-{options.stations},"
            f" password {STATION_PASSWORD})",
        ]
        api = httpx.AsyncClient(
            base_url=f"{running.api_url}/api/v1",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30.0,
        )
        clock = ScaledClock(options.speed)
        live = out.isatty() if options.live is None else options.live
        demo = Demo(options, out, running, api, clock, demo_prices(clock.origin), header, live=live)
        if not live:
            out.write("\n".join(header) + "\n")
            out.flush()
        for index, station_id in enumerate(ids):
            settings_i = station_settings(
                station_id,
                running.ocpp_url,
                data_dir / "stations" / station_id,
                password=STATION_PASSWORD,
            )
            station = SimStation(settings_i, car=car_for(index), clock=clock)
            station.subscribe(demo.hardware_listener(station_id))
            demo.stations.append(DemoStation(index, station))
            await station.start()
        for ds in demo.stations:
            tasks.append(asyncio.create_task(_logged(demo, ds)))
        await _view_loop(demo, stop)
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if demo is not None:
            demo.live = False
            out.write("stopping: ending transactions and delivering queued messages...\n")
            out.flush()
            await asyncio.gather(
                *(ds.station.stop(drain_s=3.0) for ds in demo.stations), return_exceptions=True
            )
            with contextlib.suppress(Exception):
                final = await demo.refresh()
                out.write("\n".join(table(final.rows)) + "\n")
            await demo.api.aclose()
        await running.stop()
        remove_stop_signals()
        if temporary:
            shutil.rmtree(data_dir, ignore_errors=True)
    out.write("demo stopped\n")
    out.flush()
    return 0


async def _logged(demo: Demo, ds: DemoStation) -> None:
    try:
        await demo.drive(ds)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        demo.event(f"{ds.station.station_id}: {type(exc).__name__}: {exc}")


async def _view_loop(demo: Demo, stop: asyncio.Event) -> None:
    deadline = (
        None if demo.options.duration_s is None else time.monotonic() + demo.options.duration_s
    )
    period = 1.0 if demo.live else 10.0
    next_table = time.monotonic() + period
    while not stop.is_set():
        if deadline is not None and time.monotonic() >= deadline:
            return
        snapshot = await demo.refresh()
        if demo.live:
            demo.out.write("\x1b[H\x1b[2J" + render(snapshot))
            demo.out.flush()
        elif time.monotonic() >= next_table:
            next_table = time.monotonic() + period
            demo.out.write("\n".join(table(snapshot.rows)) + "\n")
            demo.out.flush()
        wait = 1.0 if deadline is None else max(0.0, min(1.0, deadline - time.monotonic()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), wait)


def main(options: DemoOptions) -> int:
    """Entry point of `csms demo`."""
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("ocpp").setLevel(logging.WARNING)
    try:
        return asyncio.run(run_demo(options))
    except ValueError as exc:
        print(f"csms demo: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
