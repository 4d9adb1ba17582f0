"""What the station reports on its own, queued durably with the transaction messages: problems
of an EVSE (NotifyEvent, N07) and security events (SecurityEventNotification, A04); and the
status of the last (simulated) log upload and firmware update, for TriggerMessage (F06)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from chargepoint_firmware.interfaces import HardwareEvent
from chargepoint_firmware.ocpp_edge.outbox import Outbox
from chargepoint_firmware.ocpp_edge.timefmt import iso_ms
from chargepoint_firmware.station.clock import Clock
from chargepoint_firmware.storage import AgentStorage


@dataclass
class TransferStatus:
    """The last LogStatusNotification and FirmwareStatusNotification sent: (status, request)."""

    station_id: str
    last_log_status: tuple[str, int | None] = ("Idle", None)
    last_firmware_status: tuple[str, int | None] = ("Idle", None)


class StationEvents:
    def __init__(self, *, storage: AgentStorage, outbox: Outbox, clock: Clock) -> None:
        self.storage = storage
        self.outbox = outbox
        self.clock = clock

    def notify_problem(self, event: HardwareEvent, active: bool) -> None:
        """NotifyEvent (N07) on the EVSE's Problem variable, with the cause as techInfo.

        Queued durably with the transaction messages, so a fault while offline still reaches
        the CSMS, in order with the transaction's events, after the connection returns."""
        with self.storage.atomic():
            seq = int(self.storage.get("event_id", 0)) + 1
            self.storage.put("event_id", seq)
            self.outbox.put(
                "NotifyEvent",
                {
                    "generated_at": iso_ms(self.clock.now()),
                    "seq_no": 0,
                    "event_data": [
                        {
                            "event_id": seq,
                            "timestamp": iso_ms(event.at if event.at.tzinfo else self.clock.now()),
                            "trigger": "Delta",
                            "actual_value": "true" if active else "false",
                            "tech_code": str(event.kind)[:50],
                            "tech_info": event.detail[:500] or str(event.kind),
                            "event_notification_type": "HardWiredNotification",
                            "component": {"name": "EVSE", "evse": {"id": event.evse_id}},
                            "variable": {"name": "Problem"},
                        }
                    ],
                },
            )

    def security_event(self, kind: str, info: str, at: datetime) -> None:
        """SecurityEventNotification is queued durably like transaction messages (A04)."""
        moment = at if at.tzinfo else datetime.now(UTC)
        with self.storage.atomic():
            self.outbox.put(
                "SecurityEventNotification",
                {"type": kind, "timestamp": iso_ms(moment), "tech_info": info[:255]},
            )
