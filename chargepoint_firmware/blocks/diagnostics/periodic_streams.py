"""OCPP 2.1 periodic event streams: high-resolution measurements without one CALL per value.

The CSMS asks with SetVariableMonitoring: a `Periodic` monitor carrying `periodicEventStream`
parameters on a variable the station measures. The station answers, opens the stream
(OpenPeriodicEventStream, a CALL), samples the variable every monitor `value` seconds and sends
batches as NotifyPeriodicEventStream SEND frames (OCPP-J 2.1 Part 4: no answer expected) every
`interval` seconds or `values` samples, whichever comes first. ClearVariableMonitoring ends the
monitor and closes the stream (ClosePeriodicEventStream); GetPeriodicEventStream and
AdjustPeriodicEventStream read and change the stream parameters.

Scope on a CHAdeMO station: streams of EVSE.Power (W, signed: + charge, - discharge),
EVSE.DCCurrent (A) and EVSE.DCVoltage (V); any other monitor is answered as the 2.1 status
enum says (UnsupportedMonitorType, UnknownComponent, UnknownVariable). At most 4 streams,
sampling no faster than 10 Hz, batches of at most 100 values: a CSMS cannot make the station's
work grow without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ocpp.v21 import call as call_v21

from chargepoint_firmware.interfaces import EvseHardware, EvseStatus
from chargepoint_firmware.station.clock import Clock
from v2g_shared.schedule import format_datetime

log = logging.getLogger(__name__)

MAX_STREAMS = 4
MIN_SAMPLE_S = 0.1
MAX_VALUES = 100
MAX_INTERVAL_S = 3600
# variable name -> how to read it from a status snapshot
READINGS: dict[str, Callable[[EvseStatus], float]] = {
    "Power": lambda s: s.power_w,
    "DCCurrent": lambda s: s.current_a,
    "DCVoltage": lambda s: s.voltage_v,
}

SendCall = Callable[[Any], Awaitable[Any]]
SendMessage = Callable[[str, dict[str, Any]], Awaitable[None]]


@dataclass
class Stream:
    id: int  # the stream id is the monitor id
    evse_id: int
    variable: str
    sample_s: float
    interval_s: int
    values: int
    task: asyncio.Task[Any] | None = field(default=None, repr=False)

    def constant_data(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "variableMonitoringId": self.id,
            "params": {"interval": self.interval_s, "values": self.values},
        }


def _bounded_int(value: Any, low: int, high: int, default: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return int(min(max(value, low), high))


class PeriodicStreams:
    def __init__(self, hardware: Mapping[int, EvseHardware], clock: Clock) -> None:
        self.hardware = hardware
        self.clock = clock
        self.streams: dict[int, Stream] = {}
        self._next_id = 1
        self.send_call: SendCall | None = None  # the CSMS link's send_call
        self.send_message: Callable[[], SendMessage | None] = lambda: None  # the session's SEND

    # -- SetVariableMonitoring / ClearVariableMonitoring ---------------------------------------
    def set_monitor(self, item: Mapping[str, Any]) -> tuple[dict[str, Any], Stream | None]:
        """One SetMonitoringData (camelCase): its SetMonitoringResult and the new stream."""
        result: dict[str, Any] = {
            "type": item.get("type"),
            "severity": item.get("severity"),
            "component": item.get("component"),
            "variable": item.get("variable"),
        }
        component = item.get("component") or {}
        variable = (item.get("variable") or {}).get("name")
        evse_id = (component.get("evse") or {}).get("id")
        if component.get("name") != "EVSE" or not isinstance(evse_id, int):
            return {**result, "status": "UnknownComponent"}, None
        if evse_id not in self.hardware:
            return {**result, "status": "UnknownComponent"}, None
        if variable not in READINGS:
            return {**result, "status": "UnknownVariable"}, None
        params = item.get("periodicEventStream")
        if item.get("type") != "Periodic" or not isinstance(params, Mapping):
            return {**result, "status": "UnsupportedMonitorType"}, None
        if "id" in item or len(self.streams) >= MAX_STREAMS:
            return {**result, "status": "Rejected"}, None
        sample = item.get("value")
        sample_s = float(sample) if isinstance(sample, int | float) else 1.0
        stream = Stream(
            id=self._next_id,
            evse_id=int(evse_id),
            variable=str(variable),
            sample_s=max(MIN_SAMPLE_S, min(sample_s, MAX_INTERVAL_S)),
            interval_s=_bounded_int(params.get("interval"), 1, MAX_INTERVAL_S, 60),
            values=_bounded_int(params.get("values"), 1, MAX_VALUES, MAX_VALUES),
        )
        self._next_id += 1
        self.streams[stream.id] = stream
        return {**result, "status": "Accepted", "id": stream.id}, stream

    def clear(self, ids: list[int]) -> list[dict[str, Any]]:
        out = []
        for monitor_id in ids[: MAX_STREAMS * 8]:
            stream = self.streams.pop(monitor_id, None)
            out.append({"id": monitor_id, "status": "Accepted" if stream else "NotFound"})
            if stream is not None:
                if stream.task is not None:
                    stream.task.cancel()
                self._spawn_close(stream.id)
        return out

    def _spawn_close(self, stream_id: int) -> None:
        if self.send_call is None:
            return

        async def close() -> None:
            try:
                assert self.send_call is not None
                await self.send_call(call_v21.ClosePeriodicEventStream(id=stream_id))
            except Exception as exc:  # offline: the CSMS learns from the missing data
                log.warning("ClosePeriodicEventStream %s: %s", stream_id, exc)

        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().create_task(close())

    # -- Get / Adjust ----------------------------------------------------------------------------
    def constant_data(self) -> list[dict[str, Any]]:
        return [s.constant_data() for s in self.streams.values()]

    def adjust(self, stream_id: int, params: Mapping[str, Any]) -> bool:
        stream = self.streams.get(stream_id)
        if stream is None:
            return False
        stream.interval_s = _bounded_int(
            params.get("interval"), 1, MAX_INTERVAL_S, stream.interval_s
        )
        stream.values = _bounded_int(params.get("values"), 1, MAX_VALUES, stream.values)
        return True

    # -- running a stream ------------------------------------------------------------------------
    async def open_and_run(self, stream: Stream) -> None:
        """OpenPeriodicEventStream, then sample and send until the stream is cleared."""
        if self.send_call is None:
            return
        try:
            answer = await self.send_call(
                call_v21.OpenPeriodicEventStream(constant_stream_data=stream.constant_data())
            )
        except Exception as exc:
            log.warning("OpenPeriodicEventStream %s failed: %s", stream.id, exc)
            self.streams.pop(stream.id, None)
            return
        if getattr(answer, "status", None) != "Accepted":
            self.streams.pop(stream.id, None)
            return
        stream.task = asyncio.current_task()
        await self._run(stream)

    async def _run(self, stream: Stream) -> None:
        read = READINGS[stream.variable]
        hw = self.hardware[stream.evse_id]
        while stream.id in self.streams:
            base = self.clock.now()
            data: list[dict[str, Any]] = []
            while len(data) < stream.values:
                at = self.clock.now()
                offset = (at - base).total_seconds()
                if offset >= stream.interval_s:
                    break
                data.append({"t": round(offset, 3), "v": _format(read(hw.status()))})
                await asyncio.sleep(stream.sample_s)
            await self._send(stream, base, data)

    async def _send(self, stream: Stream, base: datetime, data: list[dict[str, Any]]) -> None:
        send = self.send_message()
        if send is None or not data:
            return  # offline: the stream's values of this batch are lost (they are live data)
        payload = {"id": stream.id, "pending": 0, "basetime": format_datetime(base), "data": data}
        try:
            await send("NotifyPeriodicEventStream", payload)
        except Exception as exc:
            log.warning("NotifyPeriodicEventStream %s not sent: %s", stream.id, exc)


def _format(value: float) -> str:
    return f"{value:.1f}"
