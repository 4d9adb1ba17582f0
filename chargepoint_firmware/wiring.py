"""The agent's composition root: every collaborator is made here, once, and handed over.

`build_agent(settings, hardware, ...)` makes the storage, the device model and configuration
view, the CSMS link and outbox, one service per OCPP functional block (each given only what it
needs), the session class (the edge's `OcppSession` with every block's handler mixin) and the
`Agent` that runs them. `main.py`, the simulator and the tests build agents through it.
"""

from __future__ import annotations

import logging
import random
import ssl
import uuid
from collections.abc import Mapping
from typing import Any

from websockets.asyncio.client import ClientConnection

from chargepoint_firmware.agent import Agent, Blocks
from chargepoint_firmware.blocks.authorization.auth_cache import AuthCache
from chargepoint_firmware.blocks.authorization.authorizer import Authorizer
from chargepoint_firmware.blocks.authorization.handlers import AuthorizationHandlers
from chargepoint_firmware.blocks.availability.handlers import AvailabilityHandlers
from chargepoint_firmware.blocks.availability.status import Availability
from chargepoint_firmware.blocks.diagnostics.events import StationEvents, TransferStatus
from chargepoint_firmware.blocks.diagnostics.handlers import DiagnosticsHandlers
from chargepoint_firmware.blocks.diagnostics.handlers_v21 import StreamHandlers
from chargepoint_firmware.blocks.diagnostics.periodic_streams import PeriodicStreams
from chargepoint_firmware.blocks.provisioning.device_model_adapter import DeviceModelAdapter
from chargepoint_firmware.blocks.provisioning.handlers import ProvisioningHandlers
from chargepoint_firmware.blocks.provisioning.service import Provisioning
from chargepoint_firmware.blocks.reservation.book import ReservationBook
from chargepoint_firmware.blocks.reservation.handlers import ReservationHandlers
from chargepoint_firmware.blocks.reservation.service import Reservations
from chargepoint_firmware.blocks.smart_charging.handlers import SmartChargingHandlers
from chargepoint_firmware.blocks.smart_charging.handlers_v21 import V21Handlers
from chargepoint_firmware.blocks.smart_charging.service import SmartCharging
from chargepoint_firmware.blocks.transactions.handlers import TransactionsHandlers
from chargepoint_firmware.blocks.transactions.manager import TransactionManager
from chargepoint_firmware.blocks.transactions.remote_control import RemoteControl
from chargepoint_firmware.blocks.transactions.sampling import Sampling
from chargepoint_firmware.interfaces import EvseHardware
from chargepoint_firmware.ocpp_edge.link import CsmsLink
from chargepoint_firmware.ocpp_edge.outbox import Outbox
from chargepoint_firmware.ocpp_edge.session import OcppSession, OcppSession21
from chargepoint_firmware.settings import StationSettings
from chargepoint_firmware.station.clock import Clock, SystemClock
from chargepoint_firmware.station.config import ConfigView
from chargepoint_firmware.station.waits import ConfigChanges
from chargepoint_firmware.storage import AgentStorage
from v2g_shared.ocpp_versions import OcppVersion

log = logging.getLogger(__name__)


class StationSession(
    ProvisioningHandlers,
    TransactionsHandlers,
    AvailabilityHandlers,
    AuthorizationHandlers,
    ReservationHandlers,
    SmartChargingHandlers,
    DiagnosticsHandlers,
    OcppSession,
):
    """The session with every block's handlers, each given its block's service."""

    def __init__(
        self,
        station_id: str,
        connection: Any,
        *,
        response_timeout: float,
        link: CsmsLink,
        blocks: Blocks,
    ) -> None:
        self.provisioning = blocks.provisioning
        self.transactions = blocks.remote
        self.availability = blocks.availability
        self.authorization = blocks.authorizer
        self.reservation = blocks.reservations
        self.smart_charging = blocks.smart
        self.diagnostics = blocks.transfers
        self.vendor_data = blocks.smart.local_v2x
        super().__init__(
            station_id,
            connection,
            response_timeout=response_timeout,
            is_rejected=lambda: link.registration == "Rejected",
            spawn=link.spawn,
            send_call=link.send_call,
        )


class StationSession21(StreamHandlers, V21Handlers, StationSession, OcppSession21):
    """The same station over OCPP 2.1: the 2.1 library classes and schemas, plus the 2.1-only
    actions (V2X, DER control, dynamic schedules, periodic event streams)."""

    def __init__(self, *args: Any, streams: PeriodicStreams, **kwargs: Any) -> None:
        self.periodic_streams = streams
        super().__init__(*args, **kwargs)


def build_agent(
    settings: StationSettings,
    hardware: Mapping[int, EvseHardware],
    *,
    clock: Clock | None = None,
    device_model: Any | None = None,
    storage: AgentStorage | None = None,
    ssl_context: ssl.SSLContext | None = None,
    rng: random.Random | None = None,
) -> Agent:
    """An Agent for `settings` driving `hardware` (one EvseHardware per configured EVSE)."""
    if sorted(hardware) != [e.id for e in settings.evses]:
        raise ValueError("one EvseHardware per configured EVSE id is needed")
    hardware = dict(sorted(hardware.items()))
    evse_ids = list(hardware)
    clock = clock or SystemClock()
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    storage = storage or AgentStorage(settings.state_dir / "agent.sqlite3")
    dm = DeviceModelAdapter.create(device_model, evse_ids, settings)
    config = ConfigView(dm)
    changes = ConfigChanges(clock)
    outbox = Outbox(storage)
    link = CsmsLink()

    def report_cache_size(size: int) -> None:
        try:
            dm.set_value("AuthCacheCtrlr", "Storage", str(size))
        except (KeyError, ValueError) as exc:
            log.warning("cannot update AuthCacheCtrlr.Storage: %s", exc)

    auth_cache = AuthCache(
        storage,
        config,
        clock,
        capacity=lambda: int(dm.max_limit("AuthCacheCtrlr", "Storage") or 0),
        on_size=report_cache_size,
    )
    auth_cache.trim()
    transactions = TransactionManager(
        storage=storage,
        clock=clock,
        hardware=hardware,
        config=config,
        outbox=outbox,
        is_online=lambda: link.online,
        new_transaction_id=lambda: str(uuid.uuid4()),
    )
    smart = SmartCharging(
        storage=storage,
        clock=clock,
        hardware=hardware,
        evses={e.id: e for e in settings.evses},
        config=config,
        transactions=transactions,
    )
    smart.on_count = lambda n: dm.report_entries("SmartChargingCtrlr", n)
    reservations = Reservations(
        book=ReservationBook(storage),
        evse_ids=evse_ids,
        transactions=transactions,
        config=config,
        clock=clock,
        storage=storage,
        outbox=outbox,
    )
    availability = Availability(
        hardware=hardware,
        transactions=transactions,
        reservations=reservations,
        dm=dm,
        link=link,
        clock=clock,
    )
    availability.before_update = reservations.drop_blocked
    reservations.update_status = availability.update_status
    authorizer = Authorizer(
        evse_ids=evse_ids,
        storage=storage,
        config=config,
        clock=clock,
        auth_cache=auth_cache,
        transactions=transactions,
        reservations=reservations,
        link=link,
        report_entries=dm.report_entries,
    )
    link.on_transaction_event_answer = authorizer.on_transaction_event_answer
    transfers = TransferStatus(settings.station_id)
    blocks = Blocks(
        transactions=transactions,
        smart=smart,
        availability=availability,
        reservations=reservations,
        authorizer=authorizer,
        remote=RemoteControl(
            evse_ids=evse_ids,
            transactions=transactions,
            config=config,
            clock=clock,
            authority=authorizer,
            reservations=reservations,
            link=link,
            storage=storage,
        ),
        sampling=Sampling(
            evse_ids=evse_ids,
            transactions=transactions,
            config=config,
            clock=clock,
            changes=changes,
            storage=storage,
            outbox=outbox,
        ),
        provisioning=Provisioning(
            hardware=hardware,
            dm=dm,
            config=config,
            clock=clock,
            link=link,
            transactions=transactions,
            status=availability,
            transfers=transfers,
        ),
        events=StationEvents(storage=storage, outbox=outbox, clock=clock),
        transfers=transfers,
        auth_cache=auth_cache,
    )

    smart.send_call = link.send_call
    smart.send_soon = link.send_soon

    streams = PeriodicStreams(hardware, clock)
    streams.send_call = link.send_call
    streams.send_message = lambda: getattr(link.session, "send_message", None)

    def new_session(ws: ClientConnection) -> OcppSession:
        over_2_1 = ws.subprotocol == OcppVersion.V21.value
        smart.ocpp_2_1 = over_2_1
        if over_2_1:
            return StationSession21(
                settings.station_id,
                ws,
                response_timeout=settings.message_timeout_s,
                link=link,
                blocks=blocks,
                streams=streams,
            )
        return StationSession(
            settings.station_id,
            ws,
            response_timeout=settings.message_timeout_s,
            link=link,
            blocks=blocks,
        )

    agent = Agent(
        settings,
        hardware,
        clock=clock,
        storage=storage,
        dm=dm,
        config=config,
        changes=changes,
        outbox=outbox,
        link=link,
        blocks=blocks,
        session_factory=new_session,
        ssl_context=ssl_context,
        rng=rng,
    )
    dm.on_change(agent.on_config_change)
    transactions.listeners.append(agent.on_transaction_change)
    blocks.provisioning.request_reboot = agent.request_reboot
    blocks.provisioning.request_reconnect = agent.request_reconnect
    blocks.provisioning.boot_now = agent.boot_now
    return agent
