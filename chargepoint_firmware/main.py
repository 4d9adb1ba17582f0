"""The agent process: settings -> hardware -> `wiring.build_agent` -> run until a signal.

Hardware: `hardware = "chademo"` drives the CHAdeMO controller (`ChademoEvse`) on the configured
python-can bus with the board's ports (from `ports_factory`); `hardware = "simulated"` runs the
same controller against a simulated vehicle on a python-can `virtual` bus. Both are imported
lazily, so the OCPP side starts (and its tests run) without CAN libraries being touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

from chargepoint_firmware.agent import Agent
from chargepoint_firmware.blocks.provisioning.device_model_adapter import ProjectDeviceModel
from chargepoint_firmware.device_model import DeviceModel, VariableRef
from chargepoint_firmware.interfaces import EvseHardware
from chargepoint_firmware.settings import ConfigError, EvseConfig, StationSettings
from chargepoint_firmware.wiring import build_agent
from v2g_shared.schedule.model import parse_datetime
from v2g_shared.stop_signals import install_stop_signals

log = logging.getLogger(__name__)

DRAIN_ON_STOP_S = 5.0


class Startable(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def chademo_config(settings: StationSettings, evse: EvseConfig, channel: str) -> Any:
    from chargepoint_firmware.hardware.chademo_evse import ChademoEvseConfig
    from chargepoint_firmware.safety import SafetyConfig

    safety = settings.safety
    return ChademoEvseConfig(
        evse_id=evse.id,
        can_interface=settings.can.interface,
        can_channel=channel,
        can_bitrate=settings.can.bitrate,
        max_charge_current_a=evse.max_charge_current_a,
        max_discharge_current_a=evse.max_discharge_current_a,
        max_charge_power_w=evse.max_charge_power_w,
        max_discharge_power_w=evse.max_discharge_power_w,
        min_voltage_v=evse.min_voltage_v,
        max_voltage_v=evse.max_voltage_v,
        discharge_capable=evse.max_discharge_current_a > 0,
        safety=SafetyConfig(
            max_charge_current_a=evse.max_charge_current_a,
            max_discharge_current_a=evse.max_discharge_current_a,
            max_charge_power_w=evse.max_charge_power_w,
            max_discharge_power_w=evse.max_discharge_power_w,
            min_voltage_v=evse.min_voltage_v,
            max_voltage_v=evse.max_voltage_v,
            driving_reserve_soc_pct=safety.driving_reserve_soc_pct,
            backup_reserve_soc_pct=safety.backup_reserve_soc_pct,
            offline_timeout_s=safety.offline_timeout_s,
            offline_safe_limit_a=safety.offline_safe_limit_a,
            ramp_rate_a_per_s=safety.ramp_rate_a_per_s,
        ),
    )


def _channel(settings: StationSettings, evse_id: int) -> str:
    # One CAN bus per CHAdeMO connector: "can0" serves EVSE 1, then "can0-2", ...
    return settings.can.channel if evse_id == 1 else f"{settings.can.channel}-{evse_id}"


def load_ports_factory(spec: str) -> Callable[[EvseConfig], Any]:
    module_name, _, function = spec.partition(":")
    if not module_name or not function:
        raise ConfigError(f"ports_factory: expected 'module:function', got {spec!r}")
    try:
        factory = getattr(importlib.import_module(module_name), function)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"ports_factory: cannot load {spec!r}: {exc}") from exc
    if not callable(factory):
        raise ConfigError(f"ports_factory: {spec!r} is not callable")
    return factory


def build_hardware(settings: StationSettings) -> tuple[dict[int, EvseHardware], list[Startable]]:
    """One EvseHardware per configured EVSE, and what must be started/stopped with them."""
    hardware: dict[int, EvseHardware] = {}
    lifecycle: list[Startable] = []
    if settings.hardware == "simulated":
        from chargepoint_firmware.hardware.simulation import SimulatedEvse

        for evse in settings.evses:
            sim = SimulatedEvse.create(chademo_config(settings, evse, _channel(settings, evse.id)))
            hardware[evse.id] = sim.evse
            lifecycle.append(sim)
        return hardware, lifecycle
    from chargepoint_firmware.hardware.chademo_evse import ChademoEvse

    if not settings.ports_factory:
        raise ConfigError(
            'ports_factory: required with hardware = "chademo" (the board\'s relays, lock, '
            'insulation monitor and power stage); use hardware = "simulated" to run without'
        )
    factory = load_ports_factory(settings.ports_factory)
    for evse in settings.evses:
        device = ChademoEvse(
            chademo_config(settings, evse, _channel(settings, evse.id)), factory(evse)
        )
        hardware[evse.id] = device
        lifecycle.append(device)
    return hardware, lifecycle


def stored_departure(model: DeviceModel, evse_id: int) -> tuple[datetime | None, float | None]:
    """V2XCtrlr.DepartureTime and DepartureSoC of one EVSE (None where no value is set)."""
    time_text = model.value("V2XCtrlr", "DepartureTime", evse_id=evse_id)
    soc_text = model.value("V2XCtrlr", "DepartureSoC", evse_id=evse_id)
    departure = parse_datetime(time_text) if time_text else None
    target = float(soc_text) if soc_text else None
    return departure, target


def wire_departures(model: DeviceModel, hardware: Mapping[int, EvseHardware]) -> None:
    """Hand each EVSE's departure (V2XCtrlr.DepartureTime / DepartureSoC) to its hardware:
    the stored values now, and again whenever the CSMS (SetVariables) or the agent changes one,
    so the safety supervisor keeps the SoC needed for the departure."""

    def push(evse_id: int) -> None:
        departure, target = stored_departure(model, evse_id)
        try:
            hardware[evse_id].set_departure(departure, target)
        except ValueError as exc:  # the device model validated both; log rather than raise
            log.warning("EVSE %s: departure not applied: %s", evse_id, exc)

    def changed(ref: VariableRef, _value: str) -> None:
        if ref.evse_id is not None and ref.evse_id in hardware:
            push(ref.evse_id)

    model.on_change("V2XCtrlr", "DepartureTime", changed)
    model.on_change("V2XCtrlr", "DepartureSoC", changed)
    for evse_id in hardware:
        push(evse_id)


def wire_agent_departures(agent: Agent) -> None:
    """`wire_departures` for the agent's own device model and hardware."""
    if isinstance(agent.dm, ProjectDeviceModel) and isinstance(agent.dm.model, DeviceModel):
        wire_departures(agent.dm.model, agent.hardware)
    else:
        log.warning("device model without V2XCtrlr departures: the departure floor stays off")


async def run_station(settings: StationSettings) -> int:
    """Run the station until SIGINT/SIGTERM; transactions end orderly on the way out."""
    hardware, lifecycle = build_hardware(settings)
    started: list[Startable] = []
    agent = build_agent(settings, hardware)
    wire_agent_departures(agent)
    stop = asyncio.Event()
    remove_stop_signals = install_stop_signals(stop)
    try:
        for item in lifecycle:
            await item.start()
            started.append(item)
        task = asyncio.create_task(agent.run(), name="agent")
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        log.info("stopping the station")
        agent.shutdown()
        if agent.online:
            # Give the Ended events a moment to reach the CSMS; they stay queued otherwise.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(agent.drain(), DRAIN_ON_STOP_S)
        for pending in (task, stopper):
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pending
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
    finally:
        for item in reversed(started):
            with contextlib.suppress(Exception):
                await item.stop()
        agent.close()
        remove_stop_signals()
    return 0
