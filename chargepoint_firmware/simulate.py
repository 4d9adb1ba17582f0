"""Simulated charging stations: the REAL agent with only the hardware ports simulated.

Each `SimStation` is `agent.Agent` (built by `wiring.build_agent`) + `ChademoEvse` (the real
CHAdeMO controller and safety supervisor) + a simulated CHAdeMO vehicle on its own python-can
`virtual` channel. The agent runs on a `ScaledClock`, and the vehicle integrates energy with
the same `time_scale`, so `speed = 360` runs a day of schedules and state of charge in four
minutes (CHAdeMO's 100 ms cycle, the websocket and the safety timers keep real time).

`chargepoint simulate` (see `run_simulation`) runs N of them against any OCPP 2.0.1 CSMS; the
`csms demo` and the end-to-end tests build on the same class.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from chargepoint_firmware.hardware.sim_vehicle import Battery, SimVehicleConfig
from chargepoint_firmware.hardware.simulation import SimulatedEvse
from chargepoint_firmware.interfaces import EvseStatus, HardwareEvent
from chargepoint_firmware.main import chademo_config, wire_agent_departures
from chargepoint_firmware.settings import ConfigError, StationSettings, load_settings
from chargepoint_firmware.wiring import build_agent
from v2g_shared.stop_signals import install_stop_signals

log = logging.getLogger(__name__)


class ScaledClock:
    """The agent's clock (`station.clock.Clock`), `speed` times faster than real time.

    It reads `origin` at construction and then advances `speed` seconds per real second, so
    stations sharing one instance share one simulated time.
    """

    def __init__(
        self,
        speed: float = 1.0,
        origin: datetime | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not speed > 0:
            raise ValueError("speed must be > 0")
        self.speed = speed
        self.origin = origin or datetime.now(UTC)
        self._monotonic = monotonic
        self._started = monotonic()

    def now(self) -> datetime:
        return self.origin + timedelta(seconds=(self._monotonic() - self._started) * self.speed)

    def real_seconds(self, simulated_s: float) -> float:
        return simulated_s / self.speed

    async def sleep_until(self, when: datetime) -> None:
        while True:
            delay = (when - self.now()).total_seconds()
            if delay <= 0:
                return
            await asyncio.sleep(delay / self.speed)


@dataclass(frozen=True)
class Car:
    """A simulated vehicle: a Leaf-like CHAdeMO car with its own battery."""

    name: str
    capacity_kwh: float
    soc_pct: float


# Different cars so that several stations show different behaviour side by side.
CARS: tuple[Car, ...] = (
    Car("Nissan Leaf 24 kWh", 24.0, 80.0),
    Car("Nissan Leaf 40 kWh", 40.0, 55.0),
    Car("Nissan Leaf e+ 62 kWh", 62.0, 70.0),
    Car("Mitsubishi Outlander PHEV 12 kWh", 12.0, 65.0),
    Car("Nissan e-NV200 40 kWh", 40.0, 40.0),
)


def car_for(index: int) -> Car:
    return CARS[index % len(CARS)]


# Limits of a simulated home V2X charger (the vehicle allows 15 A discharge, like the Leaf).
SIM_EVSE: dict[str, Any] = {
    "id": 1,
    "max_charge_current_a": 32.0,
    "max_discharge_current_a": 15.0,
    "max_charge_power_w": 12_000.0,
    "max_discharge_power_w": 6_000.0,
}


def station_settings(
    station_id: str,
    csms_url: str,
    state_dir: Path,
    *,
    password: str | None = None,
    **overrides: Any,
) -> StationSettings:
    """Settings of one simulated station: profile 1 (ws) or 2 (wss) with a password, else 0."""
    values: dict[str, Any] = {
        "station_id": station_id,
        "csms_url": csms_url,
        "state_dir": state_dir,
        "hardware": "simulated",
        "serial_number": f"SIM-{station_id}",
        "model": "CHAdeMO-V2X-Sim",
        "evses": [dict(SIM_EVSE)],
        "can": {"interface": "virtual", "channel": f"sim-{station_id}-{uuid.uuid4().hex[:8]}"},
        "reconnect_min_s": 0.5,
        "reconnect_max_s": 10.0,
    }
    if password:
        profile = 2 if csms_url.startswith("wss://") else 1
        values["security"] = {"profile": profile, "basic_auth_password": password}
    values.update(overrides)
    return load_settings(None, **values)


class SimStation:
    """One simulated station: the real agent + ChademoEvse + a simulated vehicle."""

    def __init__(
        self,
        settings: StationSettings,
        *,
        car: Car | None = None,
        clock: ScaledClock | None = None,
        vehicle_config: SimVehicleConfig | None = None,
        insulation_test_s: float = 0.3,
    ) -> None:
        self.settings = settings
        self.car = car or CARS[0]
        self.clock = clock or ScaledClock()
        evse = settings.evses[0]
        config = chademo_config(settings, evse, settings.can.channel)
        vehicle = replace(
            vehicle_config or SimVehicleConfig(permission_delay_s=0.2),
            time_scale=self.clock.speed,
        )
        self.sim = SimulatedEvse.create(
            config,
            battery=Battery(capacity_kwh=self.car.capacity_kwh, soc_pct=self.car.soc_pct),
            vehicle_config=vehicle,
        )
        self.sim.ports.insulation.duration_s = insulation_test_s
        self.agent = build_agent(settings, {evse.id: self.sim.evse}, clock=self.clock)
        wire_agent_departures(self.agent)  # V2XCtrlr.Departure* -> the safety floor
        self._task: asyncio.Task[None] | None = None
        self._started = False

    @property
    def station_id(self) -> str:
        return self.settings.station_id

    @property
    def channel(self) -> str:
        """The python-can virtual channel of this station's CHAdeMO bus."""
        return self.settings.can.channel

    @property
    def online(self) -> bool:
        return self.agent.online

    def status(self) -> EvseStatus:
        return self.sim.evse.status()

    def battery_soc_pct(self) -> float:
        """The simulated battery's true SoC (the EVSE sees the car's rounded 0x102 value)."""
        return float(self.sim.vehicle.battery.soc_pct)

    def subscribe(self, listener: Callable[[HardwareEvent], None]) -> None:
        self.sim.evse.subscribe(listener)

    def configure(self, component: str, variable: str, value: str) -> None:
        """Local configuration of the station's device model (like its setup menu)."""
        self.agent.dm.set_value(component, variable, value)

    async def start(self) -> None:
        await self.sim.start()
        self._started = True
        self._task = asyncio.create_task(self.agent.run(), name=f"agent-{self.station_id}")

    async def wait_online(self, within_s: float = 10.0) -> None:
        deadline = time.monotonic() + within_s
        while not self.agent.online:
            if self._task is not None and self._task.done():
                self._task.result()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.station_id} did not come online in {within_s} s")
            await asyncio.sleep(0.02)

    def plug_in(self) -> None:
        self.sim.vehicle.plug_in()

    async def wait_plugged(self, within_s: float = 10.0) -> None:
        """Until the agent knows the car is plugged in (EVSE plug detection, next cycle).

        A remote start before that would run TxCtrlr.EVConnectionTimeOut on the scaled clock.
        """
        evse_id = self.settings.evses[0].id
        deadline = time.monotonic() + within_s
        while not self.agent.transactions.evses[evse_id].plugged:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.station_id}: plug-in not detected in {within_s} s")
            await asyncio.sleep(0.02)

    def unplug(self) -> None:
        self.sim.vehicle.unplug()

    async def authorize(self, id_token: str, token_type: str = "ISO14443") -> str:
        """A driver presents `id_token` at the station's RFID reader: the agent authorizes it
        (Authorize online, local list / cache, offline rules) and starts the transaction per
        TxStartPoint. Returns the authorization status."""
        token = {"id_token": id_token, "type": token_type}
        return await self.agent.present_id_token(self.settings.evses[0].id, token)

    @property
    def transaction_id(self) -> str | None:
        return self.agent.transactions.evses[self.settings.evses[0].id].tx_id

    async def stop(self, drain_s: float = 3.0) -> None:
        """End the transaction (queued, reason Reboot), deliver what is queued, stop."""
        if self._task is not None:
            self.agent.shutdown()
            if self.agent.online:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.agent.drain(), drain_s)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        if self._started:
            self._started = False
            with contextlib.suppress(Exception):
                await self.sim.stop()
        self.agent.close()

    async def kill_agent(self) -> None:
        """Stop the agent task only (tests): no orderly end, hardware keeps running."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None


# --- chargepoint simulate ---------------------------------------------------------------------


def read_credentials(path: Path) -> dict[str, str]:
    """Station passwords: a JSON object {"ID": "password"}, or lines `ID,password` (# comments)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read credentials file {path}: {exc}") from exc
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"credentials file {path}: invalid JSON: {exc}") from exc
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise ConfigError(f'credentials file {path}: expected {{"ID": "password"}}')
        return {str(k): v for k, v in data.items()}
    found: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        station_id, sep, password = line.partition(",")
        if not sep or not station_id.strip() or not password.strip():
            raise ConfigError(f"credentials file {path}: line {number}: expected ID,password")
        found[station_id.strip()] = password.strip()
    return found


@dataclass
class SimulateOptions:
    csms_url: str
    stations: int = 1
    id_prefix: str = "SIM"
    password: str | None = None
    credentials: dict[str, str] = field(default_factory=dict)
    duration_s: float | None = None
    plug_in: bool = True
    speed: float = 1.0
    id_token: str = "SIM-DRIVER"
    id_token_type: str = "ISO14443"
    meter_interval_s: int = 60  # TxUpdatedInterval, simulated seconds
    status_every_s: float = 5.0  # real seconds between status lines
    state_dir: Path | None = None


def _line(out: TextIO, text: str) -> None:
    out.write(f"{datetime.now().strftime('%H:%M:%S')} {text}\n")
    out.flush()


def format_status(station_id: str, status: EvseStatus) -> str:
    soc = f"{status.soc_pct:.0f}%" if status.soc_pct is not None else "-"
    return (
        f"{station_id}: {status.state.value:<11} {status.current_a:+7.1f} A "
        f"{status.power_w / 1000:+7.2f} kW  SoC {soc:>4}  "
        f"in {status.energy_import_wh / 1000:.3f} kWh  out {status.energy_export_wh / 1000:.3f} kWh"
    )


async def _drive_session(station: SimStation, options: SimulateOptions, out: TextIO) -> None:
    """Boot, plug the car in shortly after, authorize; the CSMS decides the rest."""
    await station.wait_online(within_s=float("inf"))
    _line(out, f"{station.station_id}: online (BootNotification Accepted)")
    if not options.plug_in:
        return
    await asyncio.sleep(0.5)
    station.plug_in()
    await station.wait_plugged()
    _line(out, f"{station.station_id}: {station.car.name} plugged in at {station.car.soc_pct:.0f}%")
    try:
        status = await station.authorize(options.id_token, options.id_token_type)
    except Exception as exc:  # the CSMS may refuse or not answer; the car stays plugged in
        _line(out, f"{station.station_id}: Authorize failed: {exc}")
        return
    _line(out, f"{station.station_id}: Authorize {options.id_token}: {status}")


async def run_simulation(options: SimulateOptions, out: TextIO = sys.stdout) -> int:
    """Run N simulated stations until SIGINT/SIGTERM or `duration_s`; exit status 0.

    The stations' state (profiles, offline queue, device model) is kept in `state_dir` when
    given; otherwise in a temporary folder removed at the end, so each run starts afresh and
    nothing is left in the working directory.
    """
    if options.state_dir is not None:
        return await _simulate(options, options.state_dir, out)
    with tempfile.TemporaryDirectory(prefix="chargepoint-simulate-") as temporary:
        return await _simulate(options, Path(temporary), out)


async def _simulate(options: SimulateOptions, state_root: Path, out: TextIO) -> int:
    if options.stations < 1:
        raise ConfigError("--stations must be at least 1")
    clock = ScaledClock(options.speed)
    stations: list[SimStation] = []
    for index in range(options.stations):
        station_id = f"{options.id_prefix}{index + 1}"
        password = options.credentials.get(station_id, options.password)
        settings = station_settings(
            station_id, options.csms_url, state_root / station_id, password=password
        )
        station = SimStation(settings, car=car_for(index), clock=clock)
        station.configure("SampledDataCtrlr", "TxUpdatedInterval", str(options.meter_interval_s))
        stations.append(station)

    def on_event(station_id: str) -> Callable[[HardwareEvent], None]:
        def listener(event: HardwareEvent) -> None:
            detail = f" ({event.detail})" if event.detail else ""
            _line(out, f"{station_id}: {event.kind.value}{detail}")

        return listener

    def on_transaction(station_id: str) -> Callable[[int, str, str | None], None]:
        def listener(evse_id: int, what: str, tx_id: str | None) -> None:
            if what in ("started", "ended"):
                _line(out, f"{station_id}: transaction {what} {tx_id or ''}".rstrip())

        return listener

    stop = asyncio.Event()
    remove_stop_signals = install_stop_signals(stop)
    drivers: list[asyncio.Task[None]] = []
    try:
        for station in stations:
            station.subscribe(on_event(station.station_id))
            station.agent.transactions.listeners.append(on_transaction(station.station_id))
            await station.start()
            drivers.append(asyncio.create_task(_drive_session(station, options, out)))
        _line(out, f"{len(stations)} simulated station(s) connecting to {options.csms_url}")
        deadline = None if options.duration_s is None else time.monotonic() + options.duration_s
        while not stop.is_set():
            wait = options.status_every_s
            if deadline is not None:
                wait = min(wait, max(0.0, deadline - time.monotonic()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)
            if deadline is not None and time.monotonic() >= deadline:
                break
            for station in stations:
                if station.status().plugged:
                    _line(out, format_status(station.station_id, station.status()))
    finally:
        for task in drivers:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await asyncio.gather(*(station.stop() for station in stations), return_exceptions=True)
        remove_stop_signals()
    for station in stations:
        _line(out, format_status(station.station_id, station.status()))
    _line(out, "stopped")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `chargepoint simulate` options."""
    parser.add_argument("--csms-url", required=True, help="ws(s)://host:port/path of the CSMS")
    parser.add_argument("--stations", type=int, default=1, help="how many stations (default 1)")
    parser.add_argument("--id-prefix", default="SIM", help="station ids PREFIX1..PREFIXN")
    secret = parser.add_mutually_exclusive_group()
    secret.add_argument("--password", help="Basic-auth password of every station (profile 1/2)")
    secret.add_argument(
        "--credentials", type=Path, help="file of ID,password lines (or a JSON object)"
    )
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    parser.add_argument(
        "--no-plug-in", action="store_true", help="do not plug the cars in (boot only)"
    )
    parser.add_argument(
        "--speed", type=float, default=1.0, help="simulated time runs X times faster"
    )
    parser.add_argument("--id-token", default="SIM-DRIVER", help="token the drivers present")
    parser.add_argument("--id-token-type", default="ISO14443")
    parser.add_argument(
        "--meter-interval", type=int, default=60, help="TxUpdatedInterval (simulated s)"
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="keep the stations' state here across runs (default: a temporary folder, "
        "removed at the end)",
    )
    parser.add_argument("--log-level", default="WARNING")


def options_from(args: argparse.Namespace) -> SimulateOptions:
    return SimulateOptions(
        csms_url=args.csms_url,
        stations=args.stations,
        id_prefix=args.id_prefix,
        password=args.password,
        credentials=read_credentials(args.credentials) if args.credentials else {},
        duration_s=args.duration,
        plug_in=not args.no_plug_in,
        speed=args.speed,
        id_token=args.id_token,
        id_token_type=args.id_token_type,
        meter_interval_s=args.meter_interval,
        state_dir=args.state_dir,
    )


def cli_main(argv: list[str]) -> int:
    """`chargepoint simulate ARGS`: exit 0 after a clean stop, 2 on a configuration error."""
    parser = argparse.ArgumentParser(
        prog="chargepoint simulate",
        description="Run N simulated charging stations (the real agent with a simulated "
        "CHAdeMO car on a python-can virtual bus) against any OCPP 2.0.1 CSMS.",
    )
    add_arguments(parser)
    return main(parser.parse_args(argv))


def main(args: argparse.Namespace) -> int:
    """Run the parsed `chargepoint simulate` options."""
    logging.basicConfig(
        level=str(args.log_level).upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("ocpp").setLevel(logging.WARNING)
    try:
        if args.speed <= 0:
            raise ConfigError("--speed must be > 0")
        return asyncio.run(run_simulation(options_from(args)))
    except ConfigError as exc:
        print(f"chargepoint simulate: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
