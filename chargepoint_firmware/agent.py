"""The charging station's OCPP lifecycle: connection, registration, and the blocks it runs.

`Agent` is built by the composition root (`chargepoint_firmware.wiring.build_agent`), which
makes every block's service and hands them over in `Blocks`. `await agent.run()` connects to
the CSMS (reconnecting with the OCPPCommCtrlr.RetryBackOff* back-off), registers with
BootNotification, keeps the link alive (heartbeats; websocket pings detect a dead link),
reports connector status and delivers queued messages in order (E13 retry policy from
OCPPCommCtrlr.MessageAttempts/MessageAttemptInterval). The block services do the rest: the
agent routes hardware events and configuration changes to them and runs their background
tasks. `await agent.present_id_token(evse_id, id_token)` is the local card reader.

Registration (B01-B03): until Accepted nothing but BootNotification is sent. Pending: the
station answers CSMS requests and sends what a TriggerMessage asks for, and retries the boot
after the interval (or at once on TriggerMessage(BootNotification)). Rejected: nothing at all
is sent until the interval has passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import ocpp.exceptions
import ocpp.messages
from ocpp.v201 import call
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from chargepoint_firmware.blocks.authorization.auth_cache import AuthCache
from chargepoint_firmware.blocks.authorization.authorizer import Authorizer
from chargepoint_firmware.blocks.availability.status import Availability
from chargepoint_firmware.blocks.diagnostics.events import StationEvents, TransferStatus
from chargepoint_firmware.blocks.provisioning.device_model_adapter import DeviceModelAdapter
from chargepoint_firmware.blocks.provisioning.service import Provisioning
from chargepoint_firmware.blocks.reservation.service import Reservations
from chargepoint_firmware.blocks.smart_charging.service import SmartCharging
from chargepoint_firmware.blocks.transactions.manager import TransactionManager
from chargepoint_firmware.blocks.transactions.remote_control import RemoteControl
from chargepoint_firmware.blocks.transactions.sampling import Sampling
from chargepoint_firmware.interfaces import EvseHardware, HardwareEvent, HardwareEventKind
from chargepoint_firmware.ocpp_edge import connection
from chargepoint_firmware.ocpp_edge.link import CsmsLink
from chargepoint_firmware.ocpp_edge.outbox import Outbox
from chargepoint_firmware.ocpp_edge.session import OcppSession
from chargepoint_firmware.ocpp_edge.tasks import cancel_and_wait, first_of
from chargepoint_firmware.settings import StationSettings
from chargepoint_firmware.station.clock import Clock
from chargepoint_firmware.station.config import ConfigView
from chargepoint_firmware.station.waits import ConfigChanges
from chargepoint_firmware.storage import AgentStorage
from v2g_shared.ocpp_versions import OcppVersion

log = logging.getLogger(__name__)

SessionFactory = Callable[[ClientConnection], OcppSession]


@dataclass
class Blocks:
    """The block services the agent runs (made by the composition root)."""

    transactions: TransactionManager
    smart: SmartCharging
    availability: Availability
    reservations: Reservations
    authorizer: Authorizer
    remote: RemoteControl
    sampling: Sampling
    provisioning: Provisioning
    events: StationEvents
    transfers: TransferStatus
    auth_cache: AuthCache


class Agent:
    def __init__(
        self,
        settings: StationSettings,
        hardware: Mapping[int, EvseHardware],
        *,
        clock: Clock,
        storage: AgentStorage,
        dm: DeviceModelAdapter,
        config: ConfigView,
        changes: ConfigChanges,
        outbox: Outbox,
        link: CsmsLink,
        blocks: Blocks,
        session_factory: SessionFactory,
        ssl_context: ssl.SSLContext | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.hardware = dict(sorted(hardware.items()))
        self.clock = clock
        self.storage = storage
        self.dm = dm
        self.config = config
        self.changes = changes
        self.outbox = outbox
        self.link = link
        self.blocks = blocks
        self.transactions = blocks.transactions
        self.smart = blocks.smart
        self.reservations = blocks.reservations
        self.auth_cache = blocks.auth_cache
        self._session_factory = session_factory
        self._ssl = ssl_context
        self._rng = rng or random.Random()
        self.session: OcppSession | None = None
        self._needs_boot = True
        self.connections = 0  # successful websocket connections (diagnostics, tests)
        self.ocpp_version: OcppVersion | None = None  # of the current/last connection
        self.boot_attempts = 0
        self._boot_reason = "PowerUp"
        # Created in run(): asyncio primitives belong to the running loop.
        self._boot_now: asyncio.Event | None = None
        self._reboot: asyncio.Event | None = None
        self._reconnect: asyncio.Event | None = None
        self._online_event: asyncio.Event | None = None

    # -- state --------------------------------------------------------------------------------
    @property
    def online(self) -> bool:
        """Connected and registration Accepted."""
        return self.link.online

    @property
    def registration(self) -> str | None:
        """Accepted / Pending / Rejected of the last BootNotification."""
        return self.link.registration

    # -- lifecycle ----------------------------------------------------------------------------
    async def run(self) -> None:
        """Run until cancelled."""
        # Schema validation in a thread pool costs ~8x throughput for no gain here.
        ocpp.messages.ASYNC_VALIDATION = False
        self._boot_now = asyncio.Event()
        self._reboot = asyncio.Event()
        self._reconnect = asyncio.Event()
        self._online_event = asyncio.Event()
        boot_reason = self.storage.get("boot_reason")
        self._boot_reason = boot_reason or "PowerUp"
        self.transactions.restore()
        self.smart.load()
        self.smart.set_online(False)  # offline from power-up until registered
        for hw in self.hardware.values():
            hw.set_csms_connected(False)
            hw.subscribe(self.on_hardware_event)
        sampling = self.blocks.sampling
        background = [
            asyncio.create_task(self.smart.run_setpoints(), name="setpoints"),
            asyncio.create_task(self.smart.run_dynamic_pulls(), name="dynamic-pulls"),
            asyncio.create_task(self.smart.run_der_monitor(), name="der-monitor"),
            asyncio.create_task(sampling.run_sampler(), name="tx-sampler"),
            asyncio.create_task(sampling.run_aligned(), name="aligned-sampler"),
            asyncio.create_task(self.reservations.run_expiry(), name="reservation-expiry"),
        ]
        try:
            await self._connection_loop()
        finally:
            await cancel_and_wait(*background, *self.link.tasks)

    def shutdown(self) -> None:
        """Orderly stop (SIGTERM): end transactions (queued, reason Reboot)."""
        self.transactions.shutdown()

    def close(self) -> None:
        self.storage.close()

    async def drain(self) -> None:
        """Wait until every queued message has been delivered (e.g. before a planned stop)."""
        await self.outbox.wait_empty()

    async def wait_online(self) -> None:
        assert self._online_event is not None, "run() has not started"
        await self._online_event.wait()

    # -- services of the blocks, for the station's own callers (card reader, tests) -----------
    async def present_id_token(self, evse_id: int, id_token: Mapping[str, Any]) -> str:
        """An idToken presented at the EVSE's reader; see Authorizer.present_id_token."""
        return await self.blocks.authorizer.present_id_token(evse_id, id_token)

    def connector_status(self, evse_id: int) -> str:
        return self.blocks.availability.connector_status(evse_id)

    async def send_call(self, payload: Any) -> Any:
        """Send a CALL now (registration permitting); raises if there is no session."""
        return await self.link.send_call(payload)

    # -- connection ---------------------------------------------------------------------------
    def basic_auth_password(self) -> str | None:
        """A password the CSMS set (SecurityCtrlr.BasicAuthPassword, A01) wins over the file."""
        try:
            stored = self.dm.value("SecurityCtrlr", "BasicAuthPassword")
        except (KeyError, ValueError):
            stored = None
        return str(stored) if stored else self.settings.security.basic_auth_password

    def request_reconnect(self) -> None:
        """Drop the connection and connect again at once (new credentials, A01.FR.11)."""
        assert self._reconnect is not None
        self._reconnect.set()

    # -- retry policy: the device model decides; explicit settings override (lab, tests) -------
    def _explicit(self, field: str) -> bool:
        return field in self.settings.model_fields_set

    def message_attempts(self) -> int:
        """OCPPCommCtrlr.MessageAttempts[TransactionEvent] (E13), unless set in the settings."""
        if self._explicit("transaction_message_attempts"):
            return self.settings.transaction_message_attempts
        return max(1, self.config.integer("OCPPCommCtrlr", "MessageAttempts"))

    def message_attempt_interval_s(self) -> float:
        """OCPPCommCtrlr.MessageAttemptInterval[TransactionEvent] (E13), unless set in the
        settings."""
        if self._explicit("transaction_message_retry_interval_s"):
            return self.settings.transaction_message_retry_interval_s
        return float(max(0, self.config.integer("OCPPCommCtrlr", "MessageAttemptInterval")))

    def reconnect_delay(self, attempt: int) -> float:
        """Wait before reconnect attempt `attempt` (0 = the first after a loss).

        OCPPCommCtrlr.RetryBackOffWaitMinimum doubled per attempt up to RetryBackOffRepeatTimes
        times, plus a random 0..RetryBackOffRandomRange s; when reconnect_min_s/reconnect_max_s
        are set in the settings, their capped exponential back-off is used instead."""
        s = self.settings
        if self._explicit("reconnect_min_s") or self._explicit("reconnect_max_s"):
            return connection.backoff_delay(
                attempt, s.reconnect_min_s, s.reconnect_max_s, self._rng
            )
        return connection.retry_backoff_delay(
            attempt,
            wait_minimum_s=self.config.integer("OCPPCommCtrlr", "RetryBackOffWaitMinimum"),
            random_range_s=self.config.integer("OCPPCommCtrlr", "RetryBackOffRandomRange"),
            repeat_times=self.config.integer("OCPPCommCtrlr", "RetryBackOffRepeatTimes"),
            rng=self._rng,
        )

    def handshake_diagnosis(self, status: int) -> str | None:
        """What an HTTP refusal of the WebSocket upgrade most likely means (issue 12 #3)."""
        return connection.handshake_diagnosis(self.settings, status)

    def auth_failure_delay(self, streak: int) -> float:
        """Back-off while credentials are refused: 30 s doubling, capped, jittered 50-100 %."""
        return connection.auth_failure_delay(
            streak, self.settings.auth_failure_backoff_max_s, self._rng
        )

    def reset_reconnect_delay(self) -> float:
        s = self.settings
        low = min(s.reset_reconnect_min_s, s.reset_reconnect_max_s)
        return self._rng.uniform(low, max(s.reset_reconnect_min_s, s.reset_reconnect_max_s))

    async def _connect(self) -> ClientConnection:
        return await connection.open_connection(
            self.settings, self.basic_auth_password(), self._ssl
        )

    async def _connection_loop(self) -> None:
        attempt = 0
        refused = 0  # consecutive HTTP refusals of the handshake
        while True:
            try:
                ws = await self._connect()
            except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
                status = exc.response.status_code if isinstance(exc, InvalidStatus) else 0
                diagnosis = self.handshake_diagnosis(status)
                if diagnosis is not None and refused == 0:
                    log.error("%s", diagnosis)  # once per streak, not once per attempt
                refused = refused + 1 if diagnosis is not None else 0
                if status in (401, 403):
                    delay = self.auth_failure_delay(refused - 1)
                elif status == 429:
                    delay = connection.retry_after(exc, self.reconnect_delay(attempt))
                else:
                    delay = self.reconnect_delay(attempt)
                attempt += 1
                log.warning(
                    "cannot connect to %s (%s); retry in %.1fs",
                    self.settings.station_url,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            version = connection.negotiated_version(self.settings, ws.subprotocol)
            if version is None:
                log.error(
                    "CSMS accepted none of the subprotocols %s",
                    connection.offered_subprotocols(self.settings),
                )
                await ws.close()
                attempt += 1
                await asyncio.sleep(self.reconnect_delay(attempt))
                continue
            refused = 0
            self.connections += 1
            self.ocpp_version = version
            log.info("connected with %s", version.value)
            was_online = await self._run_session(ws)
            if was_online:
                attempt = 0
            assert self._reboot is not None and self._reconnect is not None
            if self._reboot.is_set() or self._reconnect.is_set():
                rebooted = self._reboot.is_set()
                self._reboot.clear()
                self._reconnect.clear()
                if rebooted:  # not within milliseconds of the close (issue 12 finding 2)
                    await asyncio.sleep(self.reset_reconnect_delay())
                continue  # reconnect (and boot again after a reset)
            delay = self.reconnect_delay(attempt)
            attempt += 1
            log.warning("connection to CSMS lost; reconnecting in %.1fs", delay)
            await asyncio.sleep(delay)

    async def _run_session(self, ws: ClientConnection) -> bool:
        session = self._session_factory(ws)
        self.session = self.link.session = session
        reader = asyncio.create_task(session.start(), name="ocpp-reader")
        online = asyncio.create_task(self._online(session), name="ocpp-online")
        was_online = False
        try:
            done, _ = await asyncio.wait({reader, online}, return_when=asyncio.FIRST_COMPLETED)
            was_online = self.registration == "Accepted"
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    exc = task.exception()
                    if not isinstance(exc, ConnectionClosed):
                        log.error("session ended by an error", exc_info=exc)
        finally:
            await cancel_and_wait(reader, online)
            self._set_online(False)
            self.session = self.link.session = None
            await ws.close()
        return was_online

    def _set_online(self, online: bool) -> None:
        if online == self.link.online:
            return
        self.link.online = online
        self.smart.set_online(online)
        for hw in self.hardware.values():
            hw.set_csms_connected(online)
        assert self._online_event is not None
        if online:
            self._online_event.set()
        else:
            self._online_event.clear()
            self.blocks.availability.reported.clear()

    async def _online(self, session: OcppSession) -> None:
        if self._needs_boot:
            await self._boot(session)
        self.link.registration = "Accepted"
        self._set_online(True)
        self.blocks.availability.update_all_status()
        self.blocks.provisioning.check_pending_reset()
        assert self._reboot is not None
        heartbeat = asyncio.ensure_future(self._heartbeat_loop(session))
        deliver = asyncio.ensure_future(
            self.outbox.deliver_forever(
                self.link.send_queued,
                attempts=self.message_attempts,
                retry_interval_s=self.message_attempt_interval_s,
            )
        )
        assert self._reconnect is not None
        reboot = asyncio.ensure_future(first_of(self._reboot.wait(), self._reconnect.wait()))
        try:
            done, _ = await asyncio.wait(
                {heartbeat, deliver, reboot}, return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                if task is not reboot:
                    task.result()  # re-raise what ended it
            if reboot in done and not deliver.done():
                # Close only once the CSMS has answered what is queued (bounded): a close
                # right after the last TransactionEvent loses its answer (issue 12 #2).
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.outbox.wait_empty(), self.settings.reset_drain_s)
        finally:
            await cancel_and_wait(heartbeat, deliver, reboot)

    async def _boot(self, session: OcppSession) -> None:
        assert self._boot_now is not None
        station: dict[str, Any] = {
            "model": self.settings.model,
            "vendor_name": self.settings.vendor_name,
            "firmware_version": self.settings.firmware_version,
        }
        if self.settings.serial_number:
            station["serial_number"] = self.settings.serial_number
        while True:
            self._boot_now.clear()
            self.boot_attempts += 1
            try:
                response = await session.call(
                    call.BootNotification(charging_station=station, reason=self._boot_reason),
                    suppress=False,
                )
            except (TimeoutError, ocpp.exceptions.OCPPError) as exc:
                log.warning("BootNotification failed: %s", exc)
                await asyncio.sleep(self.settings.boot_retry_default_s)
                continue
            self.link.registration = response.status
            interval = int(response.interval or 0)
            if response.status == "Accepted":
                if interval > 0:
                    self.dm.set_value("OCPPCommCtrlr", "HeartbeatInterval", str(interval))
                self._needs_boot = False
                self._boot_reason = "PowerUp"
                self.storage.delete("boot_reason")
                return
            wait = interval if interval > 0 else self.settings.boot_retry_default_s
            log.info("BootNotification %s; retry in %ss", response.status, wait)
            if response.status == "Pending":
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._boot_now.wait(), wait)
            else:
                await asyncio.sleep(wait)

    def boot_now(self) -> None:
        """TriggerMessage(BootNotification): retry a Pending boot at once."""
        assert self._boot_now is not None
        self._boot_now.set()

    def request_reboot(self, reason: str = "RemoteReset") -> None:
        """Reset: end the session and register again (as a restarted station would)."""
        assert self._reboot is not None
        self._boot_reason = reason
        self.storage.put("boot_reason", reason)
        self._needs_boot = True
        self.link.registration = None
        for hw in self.hardware.values():
            hw.reset_faults()
        self._reboot.set()

    async def _heartbeat_loop(self, session: OcppSession) -> None:
        while True:
            if not await self._wait_interval("OCPPCommCtrlr", "HeartbeatInterval"):
                continue
            try:
                await session.call(call.Heartbeat(), suppress=False)
            except TimeoutError:
                log.warning("heartbeat not answered")
            except ocpp.exceptions.OCPPError as exc:
                log.warning("heartbeat answered with %s", exc)

    async def _wait_interval(self, component: str, variable: str) -> bool:
        """Sleep one interval of component.variable (seconds, on the agent clock).

        True when it elapsed; False when the interval was changed meanwhile (start again).
        """
        interval = self.config.integer(component, variable)
        if interval <= 0:
            await self.changes.sleep(self.clock.now() + timedelta(days=1))
            return False
        deadline = self.clock.now() + timedelta(seconds=interval)
        while self.clock.now() < deadline:
            await self.changes.sleep(deadline)
            if self.config.integer(component, variable) != interval:
                return False
        return True

    # -- events from the device model, the transactions and the hardware ----------------------
    def on_config_change(self, component: str, variable: str) -> None:
        if (component, variable) == ("AuthCacheCtrlr", "Storage"):
            return  # a measured value, not configuration
        self.changes.notify()
        if component == "SampledDataCtrlr":
            self.blocks.sampling.wake()
        if (component, variable) == ("V2XCtrlr", "NegativeLimitIsDischarge"):
            self.smart.wake()

    def on_transaction_change(self, evse_id: int, what: str, tx_id: str | None) -> None:
        self.blocks.availability.update_status(evse_id)
        if what in ("started", "ended"):
            self.blocks.sampling.wake()
        if what == "ended":
            self.blocks.provisioning.check_pending_reset()

    def on_hardware_event(self, event: HardwareEvent) -> None:
        evse_id = event.evse_id
        if evse_id not in self.hardware:
            return
        tx = self.transactions
        events = self.blocks.events
        match event.kind:
            case HardwareEventKind.PLUGGED_IN:
                tx.set_plugged(evse_id, True)
            case HardwareEventKind.UNPLUGGED:
                tx.set_plugged(evse_id, False)
            case HardwareEventKind.ENERGY_TRANSFER_STARTED:
                tx.set_energy_transfer(evse_id, True)
                self.smart.notify_ev_needs(evse_id)  # the car's limits are known by now
            case HardwareEventKind.ENERGY_TRANSFER_STOPPED | HardwareEventKind.SESSION_ENDED:
                tx.set_energy_transfer(evse_id, False)
            case HardwareEventKind.DIRECTION_CHANGED:
                tx.charging_state_may_have_changed(evse_id)
            case HardwareEventKind.FAULT:
                tx.set_fault(evse_id, event.detail)
                events.notify_problem(event, True)
                events.security_event("SafetyTrip", f"EVSE {evse_id}: {event.detail}", event.at)
            case HardwareEventKind.FAULT_CLEARED:
                tx.clear_fault(evse_id)
                events.notify_problem(event, False)
            case HardwareEventKind.GRID_LOST | HardwareEventKind.GRID_RESTORED:
                events.notify_problem(event, event.kind is HardwareEventKind.GRID_LOST)
            case HardwareEventKind.BACKUP_MODE:
                events.notify_problem(event, True)
        tx.check_energy_cap(evse_id)
        self.blocks.availability.update_status(evse_id)
