"""OCPP 2.1 periodic event streams (SetVariableMonitoring with periodicEventStream,
ClearVariableMonitoring, GetPeriodicEventStream, AdjustPeriodicEventStream), on the 2.1 session
only; see periodic_streams.py for what a CHAdeMO station streams."""

from __future__ import annotations

from typing import Any

from ocpp.routing import after, on
from ocpp.v21 import call_result

from chargepoint_firmware.blocks.diagnostics.periodic_streams import PeriodicStreams, Stream
from chargepoint_firmware.ocpp_edge.handler_base import HandlerBase


class StreamHandlers(HandlerBase):
    periodic_streams: PeriodicStreams

    @on("SetVariableMonitoring")
    def on_set_variable_monitoring(
        self, call_unique_id: str = "", **_: Any
    ) -> call_result.SetVariableMonitoring:
        items = self.raw_payload().get("setMonitoringData") or []
        results: list[dict[str, Any]] = []
        opened: list[Stream] = []
        for item in items[:32]:
            result, stream = self.periodic_streams.set_monitor(item)
            results.append(result)
            if stream is not None:
                opened.append(stream)

        async def open_streams() -> None:
            for stream in opened:
                self.spawn(self.periodic_streams.open_and_run(stream))

        if opened:
            self.later(call_unique_id, open_streams)
        return call_result.SetVariableMonitoring(set_monitoring_result=results)

    @after("SetVariableMonitoring")
    def after_set_variable_monitoring(self, call_unique_id: str, **_: Any) -> Any:
        return self.run_followup(call_unique_id)

    @on("ClearVariableMonitoring")
    def on_clear_variable_monitoring(
        self, id: list[int], **_: Any
    ) -> call_result.ClearVariableMonitoring:
        return call_result.ClearVariableMonitoring(
            clear_monitoring_result=self.periodic_streams.clear(list(id))
        )

    @on("GetPeriodicEventStream")
    def on_get_periodic_event_stream(self, **_: Any) -> call_result.GetPeriodicEventStream:
        data = self.periodic_streams.constant_data()
        return call_result.GetPeriodicEventStream(constant_stream_data=data or None)

    @on("AdjustPeriodicEventStream")
    def on_adjust_periodic_event_stream(
        self, id: int, params: dict[str, Any], **_: Any
    ) -> call_result.AdjustPeriodicEventStream:
        raw = self.raw_payload().get("params") or {}
        if self.periodic_streams.adjust(id, raw):
            return call_result.AdjustPeriodicEventStream(status="Accepted")
        return call_result.AdjustPeriodicEventStream(
            status="Rejected", status_info={"reason_code": "UnknownStream"}
        )
