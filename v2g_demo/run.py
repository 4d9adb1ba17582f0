"""`csms demo`: the whole platform on one machine, nothing else installed.

It starts the CSMS on an embedded SQLite database (a temporary directory, or `--data-dir`) with
in-process routing, registers N stations, an API token and a driver's id token, and runs N
simulated charging stations against it: each is the REAL charge-point agent
(`chargepoint_firmware`) with its real CHAdeMO controller and safety supervisor, only the vehicle
and the power stage simulated, on its own python-can `virtual` bus. Then, through the CSMS's own
REST API (what any operator or optimizer would call):

1. the day's prices go to the V2G service (`PUT /prices`): a real NEM price day (AEMO,
   Victoria, 5-minute prices from 2024-08-05 12:00 to 2024-08-06 12:00 AEST, with the evening
   price spike) as household prices, repeated every simulated day;
2. each car is registered with the V2G service (`POST /vehicles`: its battery, power limits,
   station and EVSE, departure at the end of the day, 80 % target), plugged in, and a
   transaction is started (RequestStartTransaction);
3. once the car's SoC has reached the CSMS in a meter value, the V2G service plans its day
   (`POST /stations/{id}/v2g/optimize`: the HiGHS optimizer) and sends the plan to the station as
   a TxProfile (negative limit = discharge): charge in the cheap hours, discharge into the
   evening peak, be at 80 % at departure;
4. the agent turns the profile into CHAdeMO current on the CAN bus, the simulated battery's SoC
   moves, and the meter values come back to the CSMS (`/vehicles`, economics, and Home
   Assistant over MQTT when `CSMS_MQTT_URL` is set, all follow).

The CSMS runs on the demo's simulated clock, so plans, prices and economics all use the
stations' time. `--speed X` runs simulated time X times faster (the agents' clock, the CSMS's
and the vehicles' energy all honour it): the default 360 runs the day in 4 minutes.
`--duration S` stops by itself; Ctrl-C stops cleanly. Either way the demo ends with the money
per car (the plan against plain charging, and what the meter saw) and whether each departure
target was met (`money.py`).
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
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from csms.v2g.optimizer import VehiclePlan
from csms.v2g.prices import PriceSeries
from csms.v2g.vehicle import Vehicle
from v2g_demo.day import (
    DAY,
    DRIVER_TOKEN,
    DRIVING_RESERVE_SOC,
    MAX_CHARGE_KW,
    MAX_DISCHARGE_KW,
    NEM_DAY_START,
    NEM_INTERVAL,
    STATION_PASSWORD,
    TARGET_SOC,
    demo_prices,
    iso,
    nem_day_rrp,
    plan_from_json,
    plan_power_kw,
    plan_summary,
)
from v2g_demo.lifecycle import stop_station
from v2g_demo.money import CarMoney, DayMoney, Departure, Metered, day_money, money_lines
from v2g_demo.view import LEGEND, Snapshot, StationRow, render, snapshot_clock, table
from v2g_shared.stop_signals import install_stop_signals

__all__ = ["DemoOptions", "demo_prices", "main", "nem_day_rrp", "plan_power_kw", "run_demo"]

if TYPE_CHECKING:
    import httpx

    from chargepoint_firmware.interfaces import HardwareEvent
    from chargepoint_firmware.simulate import ScaledClock, SimStation
    from csms.app import RunningCsms
    from csms.settings import Settings


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
    plugged_at: datetime | None = None  # simulated time of the transaction's start
    days: list[DayMoney] = field(default_factory=list)  # each accepted day's plan, costed
    departures: list[Departure] = field(default_factory=list)

    @property
    def vehicle_id(self) -> str:
        return f"{self.station.station_id}-EV"

    def vehicle(self) -> Vehicle:
        """The car as registered with the V2G service (and as the plans are costed)."""
        return Vehicle(
            vehicle_id=self.vehicle_id,
            capacity_kwh=self.station.car.capacity_kwh,
            max_charge_kw=MAX_CHARGE_KW,
            max_discharge_kw=MAX_DISCHARGE_KW,
            driving_reserve_soc=DRIVING_RESERVE_SOC,
        )


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
    faults: dict[str, list[str]] = field(default_factory=dict)  # station id -> safety trips
    _prices_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _priced_days: set[datetime] = field(default_factory=set)

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
            if event.kind.value == "fault":  # said again in the closing summary
                trip = f"{event.detail} at {self.shown(self.clock.now())}"
                self.faults.setdefault(station_id, []).append(trip)

        return listener

    # -- the V2G service ----------------------------------------------------------------------
    def nem_time(self, moment: datetime) -> datetime:
        """Simulated time as NEM time: the demo's first moment is 2024-08-05 12:00 AEST."""
        return NEM_DAY_START + (moment - self.clock.origin)

    def shown(self, moment: datetime) -> str:
        return self.nem_time(moment).strftime("%a %H:%M")

    async def ensure_prices(self, day_start: datetime) -> None:
        """The NEM day's household prices from `day_start`, stored once per simulated day."""
        async with self._prices_lock:
            if day_start in self._priced_days:
                return
            prices = demo_prices(day_start)
            intervals = [
                {
                    "start": iso(prices.interval_start(k)),
                    "interval_s": int(NEM_INTERVAL.total_seconds()),
                    "import_c_kwh": prices.import_c_kwh[k],
                    "export_c_kwh": prices.export_c_kwh[k],
                }
                for k in range(len(prices))
            ]
            response = await self.api.put(
                "/prices", json={"intervals": intervals, "source": "csms demo: AEMO VIC1 day"}
            )
            if response.status_code != 200:
                raise RuntimeError(f"PUT /prices: {response.status_code} {response.text}")
            self._priced_days.add(day_start)
            self.event(
                f"prices: {len(intervals)} five-minute household prices stored for "
                f"{self.shown(day_start)}-{self.shown(day_start + DAY)} (PUT /prices)"
            )

    async def register_vehicle(self, ds: DemoStation, departure: datetime) -> None:
        """POST /vehicles (or PATCH, in a reused --data-dir): the car the plans are for."""
        car = ds.vehicle()
        body: dict[str, Any] = {
            "name": ds.station.car.name,
            "capacity_kwh": car.capacity_kwh,
            "max_charge_kw": car.max_charge_kw,
            "max_discharge_kw": car.max_discharge_kw,
            "driving_reserve_soc": car.driving_reserve_soc,
            "station_id": ds.station.station_id,
            "evse_id": 1,
            "departure": iso(departure),
            "target_soc": TARGET_SOC,
        }
        response = await self.api.post("/vehicles", json={"id": ds.vehicle_id, **body})
        if response.status_code == 409:
            response = await self.api.patch(f"/vehicles/{ds.vehicle_id}", json=body)
        if response.status_code not in (200, 201):
            raise RuntimeError(f"vehicle {ds.vehicle_id}: {response.status_code} {response.text}")
        self.event(
            f"{ds.station.station_id}: vehicle {ds.vehicle_id} registered with the V2G service "
            f"({car.capacity_kwh:g} kWh, {car.max_charge_kw:g} kW in / "
            f"{car.max_discharge_kw:g} kW out, {TARGET_SOC * 100:.0f}% at {self.shown(departure)})"
        )

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
        day_start = self._day_start()
        await self.ensure_prices(day_start)
        await self.register_vehicle(ds, day_start + DAY)
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
        ds.plugged_at = self.clock.now()
        self.event(f"{sid}: transaction {ds.transaction_id[:8]} started")
        soc = await self._soc_at_csms(ds)
        self.event(f"{sid}: the CSMS has the car's SoC ({soc * 100:.0f}%) from a meter value")
        while True:  # one plan per simulated day, on the same NEM price day
            day_start = self._day_start()
            await self.ensure_prices(day_start)
            await self._send_plan(ds, day_start)
            await self.clock.sleep_until(day_start + DAY)
            if ds.plan is not None:  # the day's departure: was the target met?
                ds.departures.append(
                    Departure(
                        self.shown(ds.plan.departure),
                        ds.plan.target_soc,
                        station.battery_soc_pct() / 100.0,
                    )
                )

    def _day_start(self) -> datetime:
        day = int((self.clock.now() - self.clock.origin) / DAY)
        return self.clock.origin + day * DAY

    async def _soc_at_csms(self, ds: DemoStation) -> float:
        """Wait until the V2G service knows the car's SoC (a SoC meter value arrived)."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            response = await self.api.get(f"/vehicles/{ds.vehicle_id}/session")
            body = response.json() if response.status_code == 200 else {}
            if body.get("soc") is not None and body.get("transaction_id"):
                return float(body["soc"])
            await asyncio.sleep(0.2)
        raise RuntimeError(f"{ds.station.station_id}: no SoC meter value reached the CSMS")

    async def _send_plan(self, ds: DemoStation, day_start: datetime) -> None:
        sid = ds.station.station_id
        departure = day_start + DAY
        response = await self.api.patch(
            f"/vehicles/{ds.vehicle_id}",
            json={"departure": iso(departure), "target_soc": TARGET_SOC},
        )
        if response.status_code != 200:
            self.event(f"{sid}: departure not set: {response.status_code} {response.text}")
            return
        response = await self.api.post(
            f"/stations/{sid}/v2g/optimize", params={"vehicle_id": ds.vehicle_id}
        )
        if response.status_code != 200:
            self.event(f"{sid}: no plan for this day: {response.status_code} {response.text}")
            ds.plan = None
            return
        sent = response.json()
        plan = plan_from_json(sent["plan"])
        accepted = sent.get("status") == "Accepted"
        ds.plan = plan if accepted else None
        if accepted:
            ds.days.append(day_money(plan, ds.vehicle(), demo_prices(day_start)))
        self.event(
            f"{sid}: V2G plan from the optimizer ({plan_summary(plan, ds.vehicle().capacity_kwh)})"
            f" sent as SetChargingProfile: {sent.get('status')}"
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
        elapsed = sim_now - self.clock.origin
        index = int((elapsed % DAY) / NEM_INTERVAL)
        known = 0 <= index < len(self.prices)
        return Snapshot(
            header=self.header,
            sim_time=NEM_DAY_START + elapsed,
            price_c_kwh=self.prices.import_c_kwh[index] if known else None,
            export_c_kwh=self.prices.export_c_kwh[index] if known else None,
            rows=rows,
            events=list(self.events),
            day=int(elapsed / DAY) + 1,
        )

    # -- the end: the money ------------------------------------------------------------------
    async def money(self) -> list[CarMoney]:
        """Per car: the day plans against plain charging, the meter's figures priced by the
        CSMS (GET /vehicles/{id}/economics), and the departures reached."""
        now = self.clock.now()
        cars: list[CarMoney] = []
        for ds in self.stations:
            car = CarMoney(
                ds.station.station_id,
                ds.station.car.name,
                days=list(ds.days),
                departures=list(ds.departures),
                soc_now=ds.station.battery_soc_pct() / 100.0,
                faults=list(self.faults.get(ds.station.station_id, ())),
            )
            if ds.plugged_at is not None and now > ds.plugged_at:
                response = await self.api.get(
                    f"/vehicles/{ds.vehicle_id}/economics",
                    params={"from": iso(ds.plugged_at), "to": iso(now)},
                )
                if response.status_code == 200:
                    e = response.json()
                    car.metered = Metered(
                        e["imported_kwh"],
                        e["exported_kwh"],
                        e["import_cost_aud"],
                        e["export_revenue_aud"],
                    )
                    car.window = (self.shown(ds.plugged_at), self.shown(now))
            cars.append(car)
        return cars


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


async def _start_csms(settings: Settings, clock: ScaledClock) -> RunningCsms:
    """Start on the requested ports (a port already taken falls back to a free one), on the
    demo's simulated clock."""
    from csms.app import start

    try:
        return await start(settings, clock=clock.now)
    except OSError:
        fallback = settings.model_copy(update={"api_port": 0, "ocpp_port": 0})
        return await start(fallback, clock=clock.now)


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
        # A few stations: /stations/{id}/messages shows what they send too.
        "message_log_incoming": True,
    }
    settings = Settings(**values)
    stop = asyncio.Event()
    remove_stop_signals = install_stop_signals(stop)
    clock = ScaledClock(options.speed)
    running = await _start_csms(settings, clock)
    demo: Demo | None = None
    tasks: list[asyncio.Task[None]] = []
    money: list[str] = []
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
        live = out.isatty() if options.live is None else options.live
        demo = Demo(options, out, running, api, clock, demo_prices(clock.origin), header, live=live)
        if not live:
            out.write("\n".join([*header, "", *LEGEND, ""]) + "\n")
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
                *(stop_station(ds.station) for ds in demo.stations), return_exceptions=True
            )
            with contextlib.suppress(Exception):
                final = await demo.refresh()
                out.write("\n".join([snapshot_clock(final), *table(final.rows)]) + "\n")
            money = await _money(demo)  # the CSMS still runs: its records are read
            await demo.api.aclose()
        await running.stop()
        remove_stop_signals()
        if temporary:
            shutil.rmtree(data_dir, ignore_errors=True)
    out.write("\n".join(money) + "\n")
    out.write("demo stopped\n")
    out.flush()
    return 0


async def _money(demo: Demo) -> list[str]:
    """The closing summary, read while the CSMS and the stations still run."""
    try:
        return money_lines(await demo.money())
    except Exception as exc:  # the summary must not hide a clean stop
        return [f"the money could not be read: {type(exc).__name__}: {exc}"]


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
            demo.out.write("\n".join([snapshot_clock(snapshot), *table(snapshot.rows)]) + "\n")
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
