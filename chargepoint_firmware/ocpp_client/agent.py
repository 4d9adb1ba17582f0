"""The charging station's OCPP side: connection, registration, and the services handlers call.

`Agent(settings, hardware)` owns the durable storage, the transaction manager, smart charging,
reservations and the outbox; `await agent.run()` connects to the CSMS (reconnecting with the
OCPPCommCtrlr.RetryBackOff* back-off), registers with BootNotification, keeps the link alive
(heartbeats; websocket pings detect a dead link), reports connector status and delivers queued
messages in order (E13 retry policy from OCPPCommCtrlr.MessageAttempts/MessageAttemptInterval).
`await agent.present_id_token(evse_id, id_token)` is the local card reader: it authorizes
(Authorize, local list, auth cache, offline rules) and starts or stops a transaction.

Registration (B01-B03): until Accepted nothing but BootNotification is sent. Pending: the
station answers CSMS requests and sends what a TriggerMessage asks for, and retries the boot
after the interval (or at once on TriggerMessage(BootNotification)). Rejected: nothing at all
is sent until the interval has passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import ssl
import uuid
from base64 import b64encode
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import ocpp.exceptions
import ocpp.messages
from ocpp.v201 import call
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from chargepoint_firmware.interfaces import EvseHardware, HardwareEvent, HardwareEventKind
from chargepoint_firmware.ocpp_client.auth_cache import AuthCache
from chargepoint_firmware.ocpp_client.clock import Clock, SystemClock
from chargepoint_firmware.ocpp_client.config import ConfigView
from chargepoint_firmware.ocpp_client.device_model_adapter import DeviceModelAdapter
from chargepoint_firmware.ocpp_client.outbox import Outbox
from chargepoint_firmware.ocpp_client.reservations import Reservation, ReservationBook
from chargepoint_firmware.ocpp_client.session import StationSession
from chargepoint_firmware.ocpp_client.smart_charging import SmartCharging
from chargepoint_firmware.ocpp_client.tasks import cancel_and_wait
from chargepoint_firmware.ocpp_client.timefmt import iso_ms, parse_iso
from chargepoint_firmware.ocpp_client.transactions import TransactionManager
from chargepoint_firmware.settings import StationSettings
from chargepoint_firmware.storage import AgentStorage, QueuedMessage

log = logging.getLogger(__name__)

SUBPROTOCOL = "ocpp2.0.1"


async def _first_of(*waits: Coroutine[Any, Any, Any]) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


def normalize_id_token(id_token: Mapping[str, Any]) -> dict[str, Any]:
    """IdTokenType in the library's snake_case form, from either spelling."""
    token = id_token.get("id_token", id_token.get("idToken"))
    if not token or not id_token.get("type"):
        raise ValueError("an idToken needs id_token (idToken) and type")
    out: dict[str, Any] = {"id_token": str(token), "type": str(id_token["type"])}
    extra = id_token.get("additional_info", id_token.get("additionalInfo"))
    if extra:
        out["additional_info"] = [
            {
                "additional_id_token": a.get("additional_id_token", a.get("additionalIdToken")),
                "type": a["type"],
            }
            for a in extra
        ]
    return out


def same_token(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    def key(t: Mapping[str, Any]) -> tuple[str, str]:
        return str(t.get("id_token", t.get("idToken"))), str(t.get("type"))

    return key(a) == key(b)


def next_boundary(start: datetime, interval_s: int, now: datetime) -> datetime:
    """The first start + k * interval_s (k >= 1) strictly after `now`."""
    elapsed = (now - start).total_seconds()
    k = max(1, math.floor(elapsed / interval_s) + 1)
    return start + timedelta(seconds=k * interval_s)


def retry_backoff_delay(
    attempt: int,
    *,
    wait_minimum_s: float,
    random_range_s: float,
    repeat_times: int,
    rng: random.Random,
) -> float:
    """OCPP 2.0.1 reconnect back-off (OCPPCommCtrlr.RetryBackOff*): the minimum wait doubles on
    each attempt, at most `repeat_times` times, plus a random part in [0, random_range_s]."""
    doublings = max(0, min(attempt, repeat_times))
    return max(0.0, wait_minimum_s) * 2.0**doublings + rng.uniform(0, max(0.0, random_range_s))


def backoff_delay(attempt: int, minimum: float, maximum: float, rng: random.Random) -> float:
    """Exponential back-off with "equal jitter": half fixed, half random, capped at `maximum`."""
    ceiling = min(maximum, minimum * (2.0 ** min(attempt, 30)))
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


class Agent:
    def __init__(
        self,
        settings: StationSettings,
        hardware: Mapping[int, EvseHardware],
        *,
        clock: Clock | None = None,
        device_model: Any | None = None,
        storage: AgentStorage | None = None,
        ssl_context: ssl.SSLContext | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if sorted(hardware) != [e.id for e in settings.evses]:
            raise ValueError("one EvseHardware per configured EVSE id is needed")
        self.settings = settings
        self.hardware = dict(sorted(hardware.items()))
        self.clock = clock or SystemClock()
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        self.storage = storage or AgentStorage(settings.state_dir / "agent.sqlite3")
        self.dm = DeviceModelAdapter.create(device_model, list(self.hardware), settings)
        self.config = ConfigView(self.dm)
        self.dm.on_change(self._on_config_change)
        self.outbox = Outbox(self.storage)
        self.auth_cache = AuthCache(
            self.storage,
            self.config,
            self.clock,
            capacity=lambda: int(self.dm.max_limit("AuthCacheCtrlr", "Storage") or 0),
            on_size=self._report_cache_size,
        )
        self.auth_cache.trim()
        self.reservations = ReservationBook(self.storage)
        self.transactions = TransactionManager(
            storage=self.storage,
            clock=self.clock,
            hardware=self.hardware,
            config=self.config,
            outbox=self.outbox,
            is_online=lambda: self.online,
            new_transaction_id=lambda: str(uuid.uuid4()),
        )
        self.smart = SmartCharging(
            storage=self.storage,
            clock=self.clock,
            hardware=self.hardware,
            evses={e.id: e for e in settings.evses},
            config=self.config,
            transactions=self.transactions,
        )
        self.transactions.listeners.append(self._on_transaction_change)
        self.smart.on_count = lambda n: self.dm.report_entries("SmartChargingCtrlr", n)
        self._ssl = ssl_context
        self._rng = rng or random.Random()
        self.registration: str | None = None  # Accepted / Pending / Rejected of the last boot
        self.session: StationSession | None = None
        self.online = False  # connected and registration Accepted
        self._needs_boot = True
        self._tasks: set[asyncio.Task[Any]] = set()
        self._status_reported: dict[int, str] = {}
        self._pending_reset: set[int | None] = set()
        self.last_log_status: tuple[str, int | None] = ("Idle", None)
        self.last_firmware_status: tuple[str, int | None] = ("Idle", None)
        self.connections = 0  # successful websocket connections (diagnostics, tests)
        self.boot_attempts = 0
        # Created in run(): asyncio primitives belong to the running loop.
        self._boot_now: asyncio.Event | None = None
        self._reboot: asyncio.Event | None = None
        self._reconnect: asyncio.Event | None = None
        self._config_waiters: set[asyncio.Event] = set()
        self._online_event: asyncio.Event | None = None
        self._sampler_wake: asyncio.Event | None = None
        self._reservation_wake: asyncio.Event | None = None

    # -- lifecycle ----------------------------------------------------------------------------
    async def run(self) -> None:
        """Run until cancelled."""
        # Schema validation in a thread pool costs ~8x throughput for no gain here.
        ocpp.messages.ASYNC_VALIDATION = False
        self._boot_now = asyncio.Event()
        self._reboot = asyncio.Event()
        self._reconnect = asyncio.Event()
        self._online_event = asyncio.Event()
        self._sampler_wake = asyncio.Event()
        self._reservation_wake = asyncio.Event()
        boot_reason = self.storage.get("boot_reason")
        self._boot_reason = boot_reason or "PowerUp"
        self.transactions.restore()
        self.smart.load()
        for hw in self.hardware.values():
            hw.set_csms_connected(False)
            hw.subscribe(self._on_hardware_event)
        background = [
            asyncio.create_task(self.smart.run_setpoints(), name="setpoints"),
            asyncio.create_task(self._sampler(), name="tx-sampler"),
            asyncio.create_task(self._aligned_sampler(), name="aligned-sampler"),
            asyncio.create_task(self._reservation_expiry(), name="reservation-expiry"),
        ]
        try:
            await self._connection_loop()
        finally:
            await cancel_and_wait(*background, *self._tasks)

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

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

    # -- connection ---------------------------------------------------------------------------
    def basic_auth_password(self) -> str | None:
        """A password the CSMS set (SecurityCtrlr.BasicAuthPassword, A01) wins over the file."""
        try:
            stored = self.dm.value("SecurityCtrlr", "BasicAuthPassword")
        except (KeyError, ValueError):
            stored = None
        return str(stored) if stored else self.settings.security.basic_auth_password

    def _headers(self) -> dict[str, str]:
        password = self.basic_auth_password()
        if self.settings.security.profile in (1, 2) and password:
            token = f"{self.settings.station_id}:{password}".encode()
            return {"Authorization": "Basic " + b64encode(token).decode()}
        return {}

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
            return backoff_delay(attempt, s.reconnect_min_s, s.reconnect_max_s, self._rng)
        return retry_backoff_delay(
            attempt,
            wait_minimum_s=self.config.integer("OCPPCommCtrlr", "RetryBackOffWaitMinimum"),
            random_range_s=self.config.integer("OCPPCommCtrlr", "RetryBackOffRandomRange"),
            repeat_times=self.config.integer("OCPPCommCtrlr", "RetryBackOffRepeatTimes"),
            rng=self._rng,
        )

    def _ssl_context(self) -> ssl.SSLContext | None:
        if self._ssl is not None:
            return self._ssl
        sec = self.settings.security
        if not self.settings.csms_url.startswith("wss://"):
            return None
        context = ssl.create_default_context(cafile=str(sec.ca_file) if sec.ca_file else None)
        if sec.profile == 3 and sec.client_cert_file and sec.client_key_file:
            context.load_cert_chain(str(sec.client_cert_file), str(sec.client_key_file))
        return context

    async def _connect(self) -> ClientConnection:
        s = self.settings
        return await connect(
            s.station_url,
            subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
            additional_headers=self._headers(),
            ssl=self._ssl_context(),
            ping_interval=s.ping_interval_s,
            ping_timeout=s.ping_timeout_s,
            open_timeout=max(s.message_timeout_s, 1.0),
            close_timeout=2.0,
            max_size=2**22,
        )

    def handshake_diagnosis(self, status: int) -> str | None:
        """What an HTTP refusal of the WebSocket upgrade most likely means (issue 12 #3)."""
        s = self.settings
        where = f"station id {s.station_id!r}, security profile {s.security.profile}"
        if status in (401, 403):
            return (
                f"the CSMS refused the credentials (HTTP {status}) for {where}: check "
                "BasicAuthPassword / station id / security profile (and the client certificate "
                "for profile 3)"
            )
        if status == 404:
            return (
                f"the CSMS does not know this station (HTTP 404) for {where}: check the "
                "station id and the path of csms_url"
            )
        if status == 400:
            return "the CSMS refused the handshake (HTTP 400): check the subprotocol (ocpp2.0.1)"
        return None

    def auth_failure_delay(self, streak: int) -> float:
        """Back-off while credentials are refused: 30 s doubling, capped, jittered 50-100 %."""
        cap = self.settings.auth_failure_backoff_max_s
        return min(cap, 30.0 * 2.0 ** min(streak, 16)) * self._rng.uniform(0.5, 1.0)

    def reset_reconnect_delay(self) -> float:
        s = self.settings
        low = min(s.reset_reconnect_min_s, s.reset_reconnect_max_s)
        return self._rng.uniform(low, max(s.reset_reconnect_min_s, s.reset_reconnect_max_s))

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
                    delay = _retry_after(exc, self.reconnect_delay(attempt))
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
            if ws.subprotocol != SUBPROTOCOL:
                log.error("CSMS did not accept subprotocol %s", SUBPROTOCOL)
                await ws.close()
                attempt += 1
                await asyncio.sleep(self.reconnect_delay(attempt))
                continue
            refused = 0
            self.connections += 1
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
        session = StationSession(self, ws, response_timeout=self.settings.message_timeout_s)
        self.session = session
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
            self.session = None
            await ws.close()
        return was_online

    def _set_online(self, online: bool) -> None:
        if online == self.online:
            return
        self.online = online
        for hw in self.hardware.values():
            hw.set_csms_connected(online)
        assert self._online_event is not None
        if online:
            self._online_event.set()
        else:
            self._online_event.clear()
            self._status_reported.clear()

    async def _online(self, session: StationSession) -> None:
        if self._needs_boot:
            await self._boot(session)
        self.registration = "Accepted"
        self._set_online(True)
        self.update_all_status()
        self._check_pending_reset()
        assert self._reboot is not None
        heartbeat = asyncio.ensure_future(self._heartbeat_loop(session))
        deliver = asyncio.ensure_future(
            self.outbox.deliver_forever(
                self._send_queued,
                attempts=self.message_attempts,
                retry_interval_s=self.message_attempt_interval_s,
            )
        )
        assert self._reconnect is not None
        reboot = asyncio.ensure_future(_first_of(self._reboot.wait(), self._reconnect.wait()))
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

    async def _boot(self, session: StationSession) -> None:
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
            self.registration = response.status
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

    def request_reboot(self, reason: str = "RemoteReset") -> None:
        """Reset: end the session and register again (as a restarted station would)."""
        assert self._reboot is not None
        self._boot_reason = reason
        self.storage.put("boot_reason", reason)
        self._needs_boot = True
        self.registration = None
        for hw in self.hardware.values():
            hw.reset_faults()
        self._reboot.set()

    def schedule_reset(self, evse_id: int | None) -> None:
        self._pending_reset.add(evse_id)

    def _check_pending_reset(self) -> None:
        for evse_id in list(self._pending_reset):
            if evse_id is None:
                if not self.transactions.any_transaction():
                    self._pending_reset.discard(None)
                    self.request_reboot()
            elif self.transactions.evses[evse_id].tx_id is None:
                self._pending_reset.discard(evse_id)
                self.hardware[evse_id].reset_faults()

    # -- sending ------------------------------------------------------------------------------
    async def send_call(self, payload: Any) -> Any:
        """Send a CALL now (registration permitting); raises if there is no session."""
        session = self.session
        if session is None or self.registration == "Rejected":
            raise ConnectionError("no CSMS session")
        return await session.call(payload, suppress=False)

    def send_soon(self, payload: Any) -> None:
        """Fire-and-forget CALL when online (StatusNotification, NotifyEvent)."""
        if not self.online:
            return

        async def send() -> None:
            try:
                await self.send_call(payload)
            except (ConnectionError, ConnectionClosed, TimeoutError) as exc:
                log.warning("%s not delivered: %s", type(payload).__name__, exc)
            except ocpp.exceptions.OCPPError as exc:
                log.warning("%s answered with %s", type(payload).__name__, exc)

        self.spawn(send())

    async def _send_queued(self, message: QueuedMessage) -> None:
        session = self.session
        if session is None:
            raise ConnectionError("no session")
        payload = getattr(call, message.action)(**message.payload)
        response = await session.call(payload, suppress=False, unique_id=message.message_id)
        if message.action == "TransactionEvent":
            self._on_transaction_event_answer(message.payload, response)

    def _on_transaction_event_answer(self, sent: dict[str, Any], response: Any) -> None:
        """The CSMS's idTokenInfo for the token a TransactionEvent carried (E05, C15)."""
        info = getattr(response, "id_token_info", None)
        token = sent.get("id_token")
        if not info or not token:
            return
        self._cache_put(token, dict(info))  # C10.FR.05, C12.FR.06
        if info.get("status") != "Accepted":
            tx_id = str(sent["transaction_info"]["transaction_id"])
            self.transactions.token_invalidated(tx_id, str(info.get("status")))

    def queued_transaction_ids(self) -> set[str]:
        ids: set[str] = set()
        for message in self.storage.pending():
            if message.action == "TransactionEvent":
                ids.add(message.payload["transaction_info"]["transaction_id"])
        return ids

    async def _heartbeat_loop(self, session: StationSession) -> None:
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
            await self._sleep_or_config(self.clock.now() + timedelta(days=1))
            return False
        deadline = self.clock.now() + timedelta(seconds=interval)
        while self.clock.now() < deadline:
            await self._sleep_or_config(deadline)
            if self.config.integer(component, variable) != interval:
                return False
        return True

    async def _sleep_or_config(self, until: datetime) -> None:
        """Sleep on the agent clock until `until`, or until a configuration change."""
        changed = asyncio.Event()
        self._config_waiters.add(changed)
        sleeper = asyncio.ensure_future(self.clock.sleep_until(until))
        waker = asyncio.ensure_future(changed.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._config_waiters.discard(changed)
            for task in (sleeper, waker):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def _report_cache_size(self, size: int) -> None:
        try:
            self.dm.set_value("AuthCacheCtrlr", "Storage", str(size))
        except (KeyError, ValueError) as exc:
            log.warning("cannot update AuthCacheCtrlr.Storage: %s", exc)

    def _on_config_change(self, component: str, variable: str) -> None:
        if (component, variable) == ("AuthCacheCtrlr", "Storage"):
            return  # a measured value, not configuration
        for waiter in list(self._config_waiters):
            waiter.set()
        if component == "SampledDataCtrlr" and self._sampler_wake is not None:
            self._sampler_wake.set()
        if (component, variable) == ("V2XCtrlr", "NegativeLimitIsDischarge"):
            self.smart.wake()

    # -- status -------------------------------------------------------------------------------
    def connector_status(self, evse_id: int) -> str:
        """StatusNotification connectorStatus: Reserved while a reservation holds a free EVSE."""
        status = self.transactions.connector_status(evse_id)
        if status == "Available" and self.reservations.on_evse(evse_id) is not None:
            return "Reserved"
        return status

    def update_status(self, evse_id: int) -> None:
        self._drop_blocked_reservation(evse_id)
        status = self.connector_status(evse_id)
        with contextlib.suppress(KeyError, ValueError):
            self.dm.set_value("EVSE", "AvailabilityState", status, evse_id=evse_id)
            self.dm.set_value(
                "Connector", "AvailabilityState", status, evse_id=evse_id, connector_id=1
            )
        if not self.online or self._status_reported.get(evse_id) == status:
            return
        self._status_reported[evse_id] = status
        self.send_soon(self._status_payload(evse_id, status))

    def update_all_status(self) -> None:
        for evse_id in self.hardware:
            self.update_status(evse_id)

    def _status_payload(self, evse_id: int, status: str) -> call.StatusNotification:
        return call.StatusNotification(
            timestamp=iso_ms(self.clock.now()),
            connector_status=status,
            evse_id=evse_id,
            connector_id=1,
        )

    def _on_transaction_change(self, evse_id: int, what: str, tx_id: str | None) -> None:
        self.update_status(evse_id)
        if what in ("started", "ended") and self._sampler_wake is not None:
            self._sampler_wake.set()
        if what == "ended":
            self._check_pending_reset()

    # -- services for handlers ----------------------------------------------------------------
    def remote_start(
        self,
        evse_id: int | None,
        id_token: dict[str, Any],
        remote_start_id: int,
        profile: dict[str, Any] | None,
        group_id_token: dict[str, Any] | None = None,
    ) -> tuple[bool, str, str | None, Callable[[], Awaitable[None]] | None]:
        """RequestStartTransaction: (accepted, reason if not, running transaction id, follow-up).

        With AuthCtrlr.AuthorizeRemoteStart the token is authorized first, as if presented
        locally: from the local list or cache, else by an Authorize request (the follow-up,
        sent after the response) whose answer decides whether the session starts.
        """
        if evse_id is not None and evse_id not in self.hardware:
            return False, "UnknownEvse", None, None
        profile_json: dict[str, Any] | None = None
        if profile is not None:
            from chargepoint_firmware.ocpp_client.blocks.smart_charging import profile_json as conv

            profile_json = conv(profile)
            if profile_json.get("chargingProfilePurpose") != "TxProfile":
                return False, "InvalidProfile", None, None
        if self.reservations.all():
            chosen = self._evse_for_remote_start(evse_id, id_token, group_id_token)
            if chosen is None:
                return False, "Reserved", None, None
            evse_id = chosen
        # F01.FR.02: without AuthorizeRemoteStart, or for a Central / NoAuthorization token,
        # the CSMS has vouched for the token: energy flows without authorizing it here (a stale
        # cache entry must not veto the CSMS).
        authorize_first = self.config.boolean("AuthCtrlr", "AuthorizeRemoteStart") and str(
            id_token.get("type")
        ) not in ("Central", "NoAuthorization")
        info = self._authorize_locally(id_token) if authorize_first else None
        if info is not None and info.get("status") != "Accepted":
            return False, "InvalidIdToken", None, None
        if info is None and authorize_first:
            if not self.transactions.can_authorize(evse_id):
                return False, "Unavailable", None, None

            async def authorize_then_start() -> None:
                response = await self.send_call(call.Authorize(id_token=id_token))
                answer = dict(response.id_token_info)
                self._cache_put(id_token, answer)  # C10.FR.04
                if answer.get("status") == "Accepted":
                    self._start_authorized(evse_id, id_token, remote_start_id, profile_json)
                else:
                    log.info("remote start %s: token %s", remote_start_id, answer.get("status"))

            return True, "", None, authorize_then_start
        accepted, running = self._start_authorized(evse_id, id_token, remote_start_id, profile_json)
        return accepted, "" if accepted else "Unavailable", running, None

    def _start_authorized(
        self,
        evse_id: int | None,
        id_token: dict[str, Any],
        remote_start_id: int,
        profile_json: dict[str, Any] | None,
    ) -> tuple[bool, str | None]:
        reservation_id: int | None = None
        if evse_id is not None:
            allowed, reservation_id = self._use_reservation(
                evse_id, normalize_id_token(id_token), None
            )
            if not allowed:
                return False, None
        accepted, running = self.transactions.remote_start(
            evse_id, id_token, remote_start_id, profile_json, reservation_id
        )
        if accepted and reservation_id is not None and evse_id is not None:
            self.reservations.consume(evse_id)
            self._wake_reservations()
            self.update_status(evse_id)
        if accepted:
            for evse, st in self.transactions.evses.items():
                if st.remote_start_id == remote_start_id and not st.plugged:
                    self.spawn(self._ev_connection_timer(evse, remote_start_id))
        return accepted, running

    async def _ev_connection_timer(self, evse_id: int, remote_start_id: int) -> None:
        timeout = self.config.integer("TxCtrlr", "EVConnectionTimeOut")
        if timeout <= 0:
            return
        await self.clock.sleep_until(self.clock.now() + timedelta(seconds=timeout))
        self.transactions.connection_timeout(evse_id, remote_start_id)

    # -- reservations (block H) ----------------------------------------------------------------
    def _reservation_blocker(self, evse_id: int) -> str | None:
        st = self.transactions.evses[evse_id]
        if st.faulted:
            return "Faulted"
        if not st.operative:
            return "Unavailable"
        if st.plugged or st.tx_id is not None or st.id_token is not None:
            return "Occupied"
        return None

    def reserve_now(
        self,
        reservation_id: int,
        evse_id: int | None,
        expiry: str,
        id_token: Mapping[str, Any],
        group_id_token: Mapping[str, Any] | None = None,
        connector_type: str | None = None,
    ) -> str:
        """ReserveNow (H01): Accepted, Faulted, Occupied, Rejected or Unavailable."""
        if not self.config.boolean("ReservationCtrlr", "Enabled"):
            return "Rejected"
        if evse_id is None and not self.config.boolean("ReservationCtrlr", "NonEvseSpecific"):
            return "Rejected"
        if connector_type not in (None, "cG105", "Unknown"):  # cG105 = CHAdeMO
            return "Rejected"
        replaced = next((r for r in self.reservations.all() if r.id == reservation_id), None)
        status, made = self.reservations.reserve(
            reservation_id,
            evse_id,
            expiry,
            normalize_id_token(id_token),
            normalize_id_token(group_id_token) if group_id_token else None,
            list(self.hardware),
            self._reservation_blocker,
            self.clock.now(),
        )
        if made is not None:
            if replaced is not None and replaced.evse_id != made.evse_id:
                self.update_status(replaced.evse_id)
            self.update_status(made.evse_id)
            self._wake_reservations()
        return status

    def cancel_reservation(self, reservation_id: int) -> bool:
        """CancelReservation (H02): True when the reservation existed (now gone)."""
        cancelled = self.reservations.cancel(reservation_id)
        if cancelled is None:
            return False
        self.update_status(cancelled.evse_id)
        self._wake_reservations()
        return True

    def _wake_reservations(self) -> None:
        if self._reservation_wake is not None:
            self._reservation_wake.set()

    def _reservation_update(self, reservation: Reservation, status: str) -> None:
        """ReservationStatusUpdate (H04 Expired, or Removed), queued durably."""
        with self.storage.atomic():
            self.outbox.put(
                "ReservationStatusUpdate",
                {"reservation_id": reservation.id, "reservation_update_status": status},
            )

    def _drop_blocked_reservation(self, evse_id: int) -> None:
        """A reserved EVSE that faults or is made inoperative loses its reservation."""
        reservation = self.reservations.on_evse(evse_id)
        if reservation is None or self._reservation_blocker(evse_id) not in (
            "Faulted",
            "Unavailable",
        ):
            return
        self.reservations.cancel(reservation.id)
        self._reservation_update(reservation, "Removed")

    async def _reservation_expiry(self) -> None:
        """H04: at its expiry a reservation ends (ReservationStatusUpdate Expired)."""
        assert self._reservation_wake is not None
        while True:
            self._reservation_wake.clear()
            now = self.clock.now()
            for reservation in self.reservations.expired(now):
                self._reservation_update(reservation, "Expired")
                self.update_status(reservation.evse_id)
            deadline = self.reservations.next_expiry() or now + timedelta(days=1)
            await self._sleep_or_wake(deadline, self._reservation_wake)

    def _evse_for_remote_start(
        self,
        evse_id: int | None,
        id_token: Mapping[str, Any],
        group: Mapping[str, Any] | None,
    ) -> int | None:
        """The EVSE a RequestStartTransaction may use given the reservations; None if none."""
        token = normalize_id_token(id_token)
        if evse_id is not None:
            allowed, _ = self._use_reservation(evse_id, token, group)
            return evse_id if allowed else None
        candidates = [e for e in self.hardware if self.transactions.can_authorize(e)]
        for e in candidates:  # the token's own reservation first
            reservation = self.reservations.on_evse(e)
            if reservation is not None and reservation.admits(token, dict(group or {}) or None):
                return e
        free = [e for e in candidates if self.reservations.on_evse(e) is None]
        free.sort(key=lambda e: (not self.transactions.evses[e].plugged, e))
        return free[0] if free else None

    def _use_reservation(
        self, evse_id: int, token: dict[str, Any], group: Mapping[str, Any] | None
    ) -> tuple[bool, int | None]:
        """H03: (may this token start here, id of the reservation it uses)."""
        reservation = self.reservations.on_evse(evse_id)
        if reservation is None:
            return True, None
        if not reservation.admits(token, dict(group) if group else None):
            return False, None
        return True, reservation.id

    async def present_id_token(self, evse_id: int, id_token: Mapping[str, Any]) -> str:
        """An idToken presented at the EVSE's reader (RFID card, PIN, app): the local start/stop.

        `id_token` is an IdTokenType, snake_case (`{"id_token": "04A1", "type": "ISO14443"}`)
        or camelCase (`idToken`). Returns the AuthorizationStatus that decided it.

        * The token that authorized this EVSE (or one of its group) stops it (E07: trigger
          StopAuthorized, stoppedReason Local); before a transaction it withdraws the
          authorization. Answer "Accepted".
        * Otherwise the token is authorized: online by Authorize (C01), or from the local list /
          auth cache without a request when AuthCtrlr.LocalPreAuthorize is true (C10/C13/C14);
          offline from the list or cache when AuthCtrlr.LocalAuthorizeOffline is true (C12), and
          an unknown token is accepted when AuthCtrlr.OfflineTxForUnknownIdEnabled (C15).
        * Accepted: the transaction starts as TxCtrlr.TxStartPoint says, its TransactionEvent
          carries the idToken; without a plugged EV the authorization lapses after
          TxCtrlr.EVConnectionTimeOut.
        * "ConcurrentTx" when the token is in use on another EVSE; "NotAtThisTime" when it is
          valid but this EVSE cannot take it (unavailable, faulted, authorized for someone else).
        """
        if evse_id not in self.hardware:
            raise ValueError(f"no EVSE {evse_id}")
        token = normalize_id_token(id_token)
        tx = self.transactions
        st = tx.evses[evse_id]
        if st.id_token is not None and same_token(st.id_token, token):
            tx.stop_local(evse_id)
            return "Accepted"
        for other in tx.evses.values():
            if other.evse_id != evse_id and other.id_token and same_token(other.id_token, token):
                return "ConcurrentTx"
        info = await self._authorize_presented(token)
        status = str(info.get("status", "Invalid"))
        if status != "Accepted":
            return status
        group = info.get("group_id_token")
        st = tx.evses[evse_id]  # state may have moved on while Authorize was in flight
        if st.id_token is not None:
            if group and st.group_id_token and same_token(group, st.group_id_token):
                tx.stop_local(evse_id)  # C09: a token of the same group may stop
                return "Accepted"
            return "NotAtThisTime"
        allowed, reservation_id = self._use_reservation(evse_id, token, group)
        if not allowed:
            return "NotAtThisTime"  # reserved for someone else
        if not tx.authorize_local(evse_id, token, group, reservation_id):
            return "NotAtThisTime"
        if reservation_id is not None:
            self.reservations.consume(evse_id)
            self._wake_reservations()
            self.update_status(evse_id)
        if not st.plugged:
            self.spawn(self._local_authorization_timer(evse_id, token))
        return "Accepted"

    async def _authorize_presented(self, token: dict[str, Any]) -> dict[str, Any]:
        """IdTokenInfo (snake_case) for a token presented locally; see present_id_token.

        Online with AuthCtrlr.LocalPreAuthorize, an Accepted local list / cache entry decides
        without a request (C10/C12.FR.02, C14); a cached entry with another status is asked
        again (C10.FR.03, C12.FR.05) unless AuthCacheCtrlr.DisablePostAuthorize, then it
        refuses as cached. Without LocalPreAuthorize the CSMS decides (C10.FR.11). Offline
        (or when Authorize fails) the list / cache decide with AuthCtrlr.LocalAuthorizeOffline
        (C12), an unknown token with OfflineTxForUnknownIdEnabled (C15).
        """
        if self.online:
            if self.config.boolean("AuthCtrlr", "LocalPreAuthorize"):
                known, source = self._local_entry(token)
                if known is not None and known.get("status") == "Accepted":
                    return known
                if (
                    known is not None
                    and source == "cache"
                    and self.auth_cache.disable_post_authorize
                ):
                    return known
            try:
                response = await self.send_call(call.Authorize(id_token=token))
            except (ConnectionError, ConnectionClosed, TimeoutError) as exc:
                log.warning("Authorize not answered (%s): deciding offline", exc)
            except ocpp.exceptions.OCPPError as exc:
                log.warning("Authorize answered with %s: deciding offline", exc)
            else:
                answer = dict(response.id_token_info)
                self._cache_put(token, answer)  # C10.FR.04
                return answer
        if self.config.boolean("AuthCtrlr", "LocalAuthorizeOffline"):
            known, _ = self._local_entry(token)
            if known is not None:
                return known
        if self.config.boolean("AuthCtrlr", "OfflineTxForUnknownIdEnabled"):
            return {"status": "Accepted"}
        return {"status": "Unknown"}

    async def _local_authorization_timer(self, evse_id: int, token: dict[str, Any]) -> None:
        timeout = self.config.integer("TxCtrlr", "EVConnectionTimeOut")
        if timeout <= 0:
            return
        await self.clock.sleep_until(self.clock.now() + timedelta(seconds=timeout))
        st = self.transactions.evses[evse_id]
        still_waiting = st.id_token is not None and same_token(st.id_token, token)
        if still_waiting and st.remote_start_id is None:
            self.transactions.connection_timeout(evse_id, None)

    def _authorize_locally(self, id_token: dict[str, Any]) -> dict[str, Any] | None:
        """IdTokenInfo from the local list (or cache); None when the token is not known here."""
        return self._local_entry(id_token)[0]

    def _local_entry(self, id_token: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str]:
        """(IdTokenInfo, "list" / "cache" / ""): the local list first, then the auth cache (an
        entry past its cacheExpiryDateTime or LifeTime is dropped there: unknown)."""
        token, kind = str(id_token.get("id_token", "")), str(id_token.get("type", ""))
        if self.config.boolean("LocalAuthListCtrlr", "Enabled"):
            entry = self.storage.local_list_entry(token, kind)
            if entry is not None:
                return entry, "list"
        cached = self.auth_cache.lookup(id_token)
        return (cached, "cache") if cached is not None else (None, "")

    def _cache_put(self, id_token: Mapping[str, Any], info: dict[str, Any]) -> None:
        """The CSMS's answer for a token goes to the auth cache (when enabled), unless the
        enabled local list holds the token: the list decides for it, no copy in the cache."""
        token, kind = str(id_token.get("id_token")), str(id_token.get("type"))
        if self.config.boolean("LocalAuthListCtrlr", "Enabled") and self.storage.local_list_entry(
            token, kind
        ):
            return
        self.auth_cache.store(id_token, info)

    async def send_triggered(self, message: str, evse_ids: list[int]) -> None:
        match message:
            case "BootNotification":
                assert self._boot_now is not None
                self._boot_now.set()
            case "Heartbeat":
                await self.send_call(call.Heartbeat())
            case "StatusNotification":
                for evse_id in evse_ids:
                    status = self.connector_status(evse_id)
                    self._status_reported[evse_id] = status
                    await self.send_call(self._status_payload(evse_id, status))
            case "MeterValues":
                for evse_id in evse_ids:
                    payload = self.transactions.meter_values_message(evse_id, "Trigger")
                    if payload is not None:
                        await self.send_call(call.MeterValues(**payload))
            case "TransactionEvent":
                for evse_id in evse_ids:
                    self.transactions.sample(evse_id, "Trigger", "Trigger")
            case "LogStatusNotification":
                status, request_id = self.last_log_status
                if status not in ("Uploading",):
                    status = "Idle"
                await self.send_call(
                    call.LogStatusNotification(status=status, request_id=request_id)
                )
            case "FirmwareStatusNotification":
                status, request_id = self.last_firmware_status
                if status in ("Installed",):
                    status = "Idle"
                await self.send_call(
                    call.FirmwareStatusNotification(status=status, request_id=request_id)
                )

    # -- device model -------------------------------------------------------------------------
    def dm_get_variables(self, data: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self.dm.get_variables(data)

    def dm_set_variables(self, data: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self.dm.set_variables(data)

    def dm_report(
        self,
        *,
        report_base: str | None = None,
        component_criteria: list[str] | None = None,
        component_variable: list[dict[str, Any]] | None = None,
    ) -> list[dict[str, Any]] | None:
        return self.dm.report(
            report_base=report_base,
            component_criteria=component_criteria,
            component_variable=component_variable,
        )

    async def send_report(self, request_id: int, report_data: list[dict[str, Any]]) -> None:
        per_message = max(1, self.config.integer("DeviceDataCtrlr", "ItemsPerMessageGetReport"))
        chunks = [
            report_data[i : i + per_message] for i in range(0, len(report_data), per_message)
        ] or [[]]
        generated_at = iso_ms(self.clock.now())
        for seq_no, chunk in enumerate(chunks):
            await self.send_call(
                call.NotifyReport(
                    request_id=request_id,
                    generated_at=generated_at,
                    seq_no=seq_no,
                    report_data=chunk or None,
                    tbc=seq_no < len(chunks) - 1,
                )
            )

    # -- hardware events ----------------------------------------------------------------------
    def _on_hardware_event(self, event: HardwareEvent) -> None:
        evse_id = event.evse_id
        if evse_id not in self.hardware:
            return
        tx = self.transactions
        match event.kind:
            case HardwareEventKind.PLUGGED_IN:
                tx.set_plugged(evse_id, True)
            case HardwareEventKind.UNPLUGGED:
                tx.set_plugged(evse_id, False)
            case HardwareEventKind.ENERGY_TRANSFER_STARTED:
                tx.set_energy_transfer(evse_id, True)
            case HardwareEventKind.ENERGY_TRANSFER_STOPPED | HardwareEventKind.SESSION_ENDED:
                tx.set_energy_transfer(evse_id, False)
            case HardwareEventKind.DIRECTION_CHANGED:
                tx.charging_state_may_have_changed(evse_id)
            case HardwareEventKind.FAULT:
                tx.set_fault(evse_id, event.detail)
                self._notify_problem(event, True)
                self._security_event("SafetyTrip", f"EVSE {evse_id}: {event.detail}", event.at)
            case HardwareEventKind.FAULT_CLEARED:
                tx.clear_fault(evse_id)
                self._notify_problem(event, False)
            case HardwareEventKind.GRID_LOST | HardwareEventKind.GRID_RESTORED:
                self._notify_problem(event, event.kind is HardwareEventKind.GRID_LOST)
            case HardwareEventKind.BACKUP_MODE:
                self._notify_problem(event, True)
        tx.check_energy_cap(evse_id)
        self.update_status(evse_id)

    def _notify_problem(self, event: HardwareEvent, active: bool) -> None:
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

    def _security_event(self, kind: str, info: str, at: datetime) -> None:
        """SecurityEventNotification is queued durably like transaction messages (A04)."""
        moment = at if at.tzinfo else datetime.now(UTC)
        with self.storage.atomic():
            self.outbox.put(
                "SecurityEventNotification",
                {"type": kind, "timestamp": iso_ms(moment), "tech_info": info[:255]},
            )

    # -- meter value loops --------------------------------------------------------------------
    async def _sampler(self) -> None:
        """Sampled data of each transaction, timed from its own start (J02).

        Every TxUpdatedInterval s after the start: TransactionEvent(Updated, MeterValuePeriodic).
        Every TxEndedInterval s after the start: a TxEndedMeasurands sample kept for the Ended
        event's meterValue list. A change of either interval, or a transaction starting or
        ending, wakes the loop to recompute the next due time.
        """
        assert self._sampler_wake is not None
        # (evse id, transaction id, variable) -> (interval it was computed with, next due time)
        due: dict[tuple[int, str, str], tuple[int, datetime]] = {}
        while True:
            self._sampler_wake.clear()
            now = self.clock.now()
            next_times: list[datetime] = []
            live: set[tuple[int, str, str]] = set()
            for evse_id, st in list(self.transactions.evses.items()):
                if st.tx_id is None or st.tx_started_at is None:
                    continue
                start = parse_iso(st.tx_started_at)
                for variable in ("TxUpdatedInterval", "TxEndedInterval"):
                    interval = self.config.integer("SampledDataCtrlr", variable)
                    if interval <= 0 or st.tx_id is None:
                        continue
                    key = (evse_id, st.tx_id, variable)
                    live.add(key)
                    known = due.get(key)
                    if known is None:  # a new transaction: its first boundary, even if passed
                        at = start + timedelta(seconds=interval)
                    elif known[0] != interval:  # interval changed: next boundary of the new one
                        at = next_boundary(start, interval, now)
                    else:
                        at = known[1]
                    if at <= now:
                        if variable == "TxUpdatedInterval":
                            self.transactions.sample(evse_id)
                        else:
                            self.transactions.record_ended_sample(evse_id)
                        at = next_boundary(start, interval, now)
                    due[key] = (interval, at)
                    next_times.append(at)
            for key in set(due) - live:
                del due[key]
            deadline = min(next_times, default=now + timedelta(days=1))
            await self._sleep_or_wake(deadline, self._sampler_wake)

    async def _sleep_or_wake(self, until: datetime, wake: asyncio.Event) -> None:
        sleeper = asyncio.ensure_future(self.clock.sleep_until(until))
        waker = asyncio.ensure_future(wake.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, waker):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _aligned_sampler(self) -> None:
        """Clock-aligned meter values every AlignedDataCtrlr.Interval (from midnight UTC)."""
        while True:
            interval = self.config.integer("AlignedDataCtrlr", "Interval")
            now = self.clock.now()
            if interval <= 0:
                await self._sleep_or_config(now + timedelta(days=1))
                continue
            midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
            elapsed = (now - midnight).total_seconds()
            boundary = midnight + timedelta(seconds=(int(elapsed // interval) + 1) * interval)
            await self._sleep_or_config(boundary)
            if self.clock.now() < boundary:
                continue  # configuration changed: recompute the boundary
            idle_too = self.config.boolean("AlignedDataCtrlr", "SendDuringIdle")
            for evse_id in self.hardware:
                if (
                    not self.transactions.sample(evse_id, "MeterValueClock", "Sample.Clock")
                    and idle_too
                ):
                    payload = self.transactions.meter_values_message(evse_id, "Sample.Clock")
                    if payload is not None:
                        with self.storage.atomic():
                            self.outbox.put("MeterValues", payload)


def _retry_after(exc: Exception, fallback: float) -> float:
    """HTTP 429's Retry-After in seconds, bounded to 1..3600 s; `fallback` when absent."""
    response = getattr(exc, "response", None)
    value = response.headers.get("Retry-After", "") if response is not None else ""
    try:
        seconds = float(value.strip()[:10])
    except ValueError:
        return fallback
    return min(max(seconds, 1.0), 3600.0) if math.isfinite(seconds) else fallback
