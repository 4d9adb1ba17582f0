"""One object per connected station: reads frames, dispatches CALLs to the block handlers,
sends the CSMS's own CALLs and matches their answers.

The transport is passed in (anything with async `recv`/`send`/`close`, e.g. a websockets
connection), so a test can hand it a fake. Handlers never wait for the station: follow-up CALLs
(GetTransactionStatus, CertificateSigned) run from `after_reply` once the answer is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from csms import oca_schemas
from csms.domain.errors import (
    CallErrorReceived,
    CommandNotAllowed,
    CommandTimeout,
    StationDisconnected,
)
from csms.domain.models import Direction, RegistrationStatus
from csms.domain.quotas import ReportAssembly
from csms.ocpp_server import limits, protocol
from csms.ocpp_server.protocol import Call, CallError, CallResult, CallResultError, OcppError, Send
from csms.services import telemetry
from csms.services.common import DateTimeOutOfRange
from csms.services.container import Services
from v2g_shared.ocpp_versions import OcppVersion

log = logging.getLogger(__name__)
frames_log = logging.getLogger("csms.ocpp.frames")

Handler = Callable[["Session", dict[str, Any]], Awaitable[dict[str, Any]]]

# What may be sent while the station is not Accepted (B02 Pending, B03 Rejected).
CSMS_ACTIONS_WHILE_PENDING = frozenset(
    {"TriggerMessage", "GetVariables", "SetVariables", "GetBaseReport", "GetReport"}
)
STATION_ACTIONS_WHILE_PENDING = frozenset({"BootNotification", "NotifyReport"})

# TriggerMessage.requestedMessage -> the action the station then sends.
TRIGGERED_ACTION = {
    "BootNotification": "BootNotification",
    "LogStatusNotification": "LogStatusNotification",
    "FirmwareStatusNotification": "FirmwareStatusNotification",
    "Heartbeat": "Heartbeat",
    "MeterValues": "MeterValues",
    "SignChargingStationCertificate": "SignCertificate",
    "SignV2GCertificate": "SignCertificate",
    "SignCombinedCertificate": "SignCertificate",
    "StatusNotification": "StatusNotification",
    "TransactionEvent": "TransactionEvent",
    "PublishFirmwareStatusNotification": "PublishFirmwareStatusNotification",
}


class Transport(Protocol):
    async def recv(self) -> str | bytes: ...

    async def send(self, message: str) -> None: ...

    async def close(self, code: int = 1000, reason: str = "") -> None: ...


class Session:
    def __init__(
        self,
        station_id: str,
        transport: Transport,
        services: Services,
        handlers: dict[str, Handler],
        *,
        registration: RegistrationStatus = RegistrationStatus.UNKNOWN,
        version: OcppVersion = OcppVersion.V201,
    ) -> None:
        self.station_id = station_id
        # The subprotocol negotiated for this connection: which schemas, actions and frames.
        self.version = version
        self._ocpp21 = version is OcppVersion.V21
        self._actions = oca_schemas.table(version)
        self.transport = transport
        self.services = services
        self.settings = services.settings
        self.clock = services.clock
        self.registration = registration
        self._handlers = handlers
        self._validate = services.settings.validate_messages
        self._log_frames = services.settings.log_ocpp_frames
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._call_lock = asyncio.Lock()
        self._after: list[Callable[[], Awaitable[None]]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self.triggered: set[str] = set()
        settings = services.settings
        self._max_depth = settings.ocpp_max_json_depth
        self._limits = limits.limits_for(services)
        # Frames held back by the message rate limit (for metrics and tests).
        self.paced_frames = 0
        # NotifyReport parts per requestId, joined when tbc is false; bounded.
        self.reports = ReportAssembly(
            settings.report_max_open, settings.report_max_parts, settings.report_part_timeout_s
        )
        self._logged_failures: set[str] = set()
        self._telemetry = services.telemetry

    # ---- receiving --------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve until the transport closes."""
        try:
            while True:
                try:
                    raw = await self.transport.recv()
                except Exception:  # connection closed (any reason)
                    return
                await self.handle_frame(raw)
        finally:
            self._shutdown()
            await self._settle_follow_ups()

    async def handle_frame(self, raw: str | bytes) -> None:
        if self._log_frames:
            frames_log.debug("%s <- %s", self.station_id, raw)
        await self._pace()
        try:
            frame = protocol.parse(raw, self._max_depth, ocpp21=self._ocpp21)
        except protocol.FrameError as exc:
            await self._send(protocol.error_frame(exc.message_id, exc.error, ocpp21=self._ocpp21))
            return
        if isinstance(frame, Call):
            await self._on_call(frame)
        elif isinstance(frame, Send):
            await self._on_send(frame)
        elif isinstance(frame, CallResultError):
            log.warning(
                "%s could not process the CSMS's answer to %s: %s %s",
                self.station_id,
                frame.message_id,
                frame.code[:50],
                frame.description[:255],
            )
        elif isinstance(frame, CallResult):
            self._resolve(frame.message_id, frame.payload, None)
        elif isinstance(frame, CallError):
            self._resolve(
                frame.message_id,
                None,
                CallErrorReceived(
                    frame.code,
                    frame.description,
                    frame.details if isinstance(frame.details, dict) else {},
                ),
            )

    async def _pace(self) -> None:
        """Keep the station to its message rate: wait until its bucket has a token. Frames
        are handled one at a time, so while this waits nothing more is read from this
        station (TCP pushes back on it) and other stations are served as usual. Waiting
        rather than refusing: a CALLERROR makes stations retry or drop transaction messages,
        a delay only slows the sender. Every frame counts, answers and malformed ones too."""
        delay, first = self._limits.pace(self.station_id, limits.monotonic())
        if delay <= 0:
            return
        self.paced_frames += 1
        if first:
            log.warning(
                "%s is over %.4g frames/s (burst %d): its frames are now paced",
                self.station_id,
                self.settings.ocpp_rate_per_s,
                self.settings.ocpp_rate_burst,
            )
        closed = getattr(self.transport, "wait_closed", None)
        # Wake early if the connection closes meanwhile (a server stopping need not wait).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(closed() if closed else asyncio.sleep(delay), delay)

    def _may_receive(self, action: str) -> bool:
        if self.registration is RegistrationStatus.ACCEPTED:
            return True
        if action == "BootNotification":
            return True
        if self.registration is RegistrationStatus.PENDING:
            if action in STATION_ACTIONS_WHILE_PENDING:
                return True
            if action in self.triggered:
                self.triggered.discard(action)
                return True
        return False

    async def _on_call(self, call: Call) -> None:
        started = time.perf_counter()
        result = "ok"
        try:
            response = await self._dispatch(call)
            reply = protocol.result_frame(call.message_id, response)
            kind = "CALLRESULT"
        except OcppError as err:
            response = {"code": err.code, "description": err.description}
            reply = protocol.error_frame(call.message_id, err, ocpp21=self._ocpp21)
            kind = "CALLERROR"
            result = telemetry.error_label(err.code)
            self._after.clear()  # a refused message starts no follow-up
        if self.services.message_log.log_incoming:
            ml = self.services.message_log
            # Bounded like stored events: an unknown action name is the station's free text,
            # and a large payload is logged by its size only.
            action = call.action[:50]
            logged = call.payload
            size = limits.payload_size(logged)
            if size > self.settings.station_event_max_bytes:
                logged = {"notLogged": "payload over station_event_max_bytes", "bytes": size}
            # Buffered: written in batches by the message log, not awaited here (no database
            # round trip per station message).
            ml.append_exchange(self.station_id, call.message_id, action, logged, kind, response)
        await self._send(reply)
        self._telemetry.station_call(call.action, result, time.perf_counter() - started)
        after, self._after = self._after, []
        for follow_up in after:
            self.spawn(follow_up())

    async def _on_send(self, send: Send) -> None:
        """OCPP-J 2.1 SEND: handled like a CALL, but nothing is ever answered; what cannot be
        handled is logged (once per action and connection) and dropped."""
        started = time.perf_counter()
        result = "ok"
        try:
            if send.action not in self._actions.station_sends:
                raise protocol.ProtocolError(f"{send.action[:50]!r} is not sent as SEND")
            await self._dispatch(Call(send.message_id, send.action, send.payload), as_send=True)
            kind = "SEND"
            logged: Any = send.payload
        except OcppError as err:
            kind = "SEND-DROPPED"
            result = telemetry.error_label(err.code)
            logged = {"code": err.code, "description": err.description}
            if send.action not in self._logged_failures:
                self._logged_failures.add(send.action)
                log.warning("%s: SEND %s dropped: %s", self.station_id, send.action[:50], err)
        if self.services.message_log.log_incoming:
            ml = self.services.message_log
            size = limits.payload_size(logged)
            if size > self.settings.station_event_max_bytes:
                logged = {"notLogged": "payload over station_event_max_bytes", "bytes": size}
            # Buffered like a CALL's entries: no database round trip per message.
            ml.append_one(self.station_id, kind, send.message_id, send.action[:50], logged)
        self._telemetry.station_call(send.action, result, time.perf_counter() - started)
        after, self._after = self._after, []
        for follow_up in after:
            self.spawn(follow_up())

    async def _dispatch(self, call: Call, *, as_send: bool = False) -> dict[str, Any]:
        action = call.action
        version = self.version
        if action not in self._actions.all_actions:
            raise protocol.NotImplementedOcpp(f"unknown action {action!r} in OCPP {version.label}")
        if action in self._actions.station_sends and not as_send:
            raise protocol.ProtocolError(f"{action} is a SEND (message type 6), not a CALL")
        handler = self._handlers.get(action)
        if handler is None:
            raise protocol.NotSupported(f"{action} is not supported by the CSMS")
        if not self._may_receive(action):
            raise protocol.SecurityError(
                f"{action} not allowed while registration status is {self.registration.value}"
            )
        try:
            if self._validate:
                oca_schemas.check(action, "Request", call.payload, version)  # schema, bounds
            else:
                # Bounds protect storage, not conformance: they hold with validation off.
                bounds = oca_schemas.bounds_checker(action, "Request", version)
                if bounds is not None:
                    oca_schemas.check_bounds(bounds, call.payload)
        except oca_schemas.SchemaViolation as exc:
            raise protocol.ERROR_BY_CODE[exc.code](str(exc)) from exc
        try:
            response = await handler(self, call.payload)
        except OcppError:
            raise
        except limits.StorageRefused as exc:
            raise protocol.OcppError(str(exc), exc.details()) from exc
        except DateTimeOutOfRange as exc:
            raise protocol.PropertyConstraintViolation(f"{action}: {exc}") from exc
        except (ValueError, KeyError, TypeError) as exc:
            # Schema-valid but unusable (e.g. a date-time that does not parse).
            raise protocol.FormatViolation(f"{action}: {exc}") from exc
        except ArithmeticError as exc:  # a value too large to compute with
            raise protocol.PropertyConstraintViolation(f"{action}: {exc}") from exc
        except Exception as exc:
            # A bug, not the station's input. One traceback per action and connection: a
            # station repeating the frame must not flood the log.
            if action in self._logged_failures:
                log.error("handler %s failed again for %s: %r", action, self.station_id, exc)
            else:
                self._logged_failures.add(action)
                log.exception("handler %s failed for %s", action, self.station_id)
            raise protocol.InternalError(f"{action} could not be processed") from exc
        if self._validate and not as_send:
            try:
                oca_schemas.check(action, "Response", response, version)
            except oca_schemas.SchemaViolation as exc:
                log.error("invalid %sResponse built for %s: %s", action, self.station_id, exc)
                raise protocol.InternalError("CSMS built an invalid response") from exc
        return response

    def after_reply(self, follow_up: Callable[[], Awaitable[None]]) -> None:
        """Run `follow_up` (e.g. a CALL to the station) once the current answer is sent."""
        self._after.append(follow_up)

    def spawn(self, coro: Awaitable[None]) -> None:
        async def guarded() -> None:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("follow-up task for %s failed", self.station_id)

        task = asyncio.create_task(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- sending ----------------------------------------------------------------------------

    async def call(
        self,
        action: str,
        payload: dict[str, Any],
        timeout: float,  # noqa: ASYNC109 -- the router passes it through
    ) -> dict[str, Any]:
        """Send a CALL and return the CALLRESULT payload (one outstanding CALL at a time)."""
        if self._closed:
            raise StationDisconnected(self.station_id)
        if self.registration is RegistrationStatus.REJECTED or (
            self.registration is not RegistrationStatus.ACCEPTED
            and action not in CSMS_ACTIONS_WHILE_PENDING
        ):
            raise CommandNotAllowed(self.station_id, action, self.registration.value)
        ml = self.services.message_log
        async with self._call_lock:
            if self._closed:
                raise StationDisconnected(self.station_id)
            message_id = str(uuid.uuid4())
            future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            self._pending[message_id] = future
            await ml.record(
                ml.entry(self.station_id, Direction.OUT, "CALL", message_id, action, payload)
            )
            if action == "TriggerMessage":
                requested = TRIGGERED_ACTION.get(str(payload.get("requestedMessage")))
                if requested:
                    self.triggered.add(requested)
            try:
                await self._send(protocol.call_frame(message_id, action, payload))
                result = await asyncio.wait_for(future, timeout)
            except TimeoutError:
                self._telemetry.csms_call(action, "timeout")
                await ml.record(
                    ml.entry(self.station_id, Direction.IN, "TIMEOUT", message_id, action, None)
                )
                raise CommandTimeout(self.station_id, action, timeout) from None
            except CallErrorReceived as err:
                self._telemetry.csms_call(action, telemetry.error_label(err.code))
                await ml.record(
                    ml.entry(
                        self.station_id,
                        Direction.IN,
                        "CALLERROR",
                        message_id,
                        action,
                        {"code": err.code, "description": err.description, "details": err.details},
                    )
                )
                raise
            except Exception:
                self._telemetry.csms_call(action, "disconnected" if self._closed else "failed")
                if self._closed:
                    raise StationDisconnected(self.station_id) from None
                raise
            finally:
                self._pending.pop(message_id, None)
            self._telemetry.csms_call(action, "ok")
            await ml.record(
                ml.entry(self.station_id, Direction.IN, "CALLRESULT", message_id, action, result)
            )
            return result

    def _resolve(self, message_id: str, payload: Any, error: CallErrorReceived | None) -> None:
        future = self._pending.get(message_id)
        if future is None or future.done():
            log.info("%s answered unknown or late message %s", self.station_id, message_id)
            return
        if error is not None:
            future.set_exception(error)
        elif not isinstance(payload, dict):
            future.set_exception(
                CallErrorReceived("FormatViolation", "CALLRESULT payload is not an object")
            )
        else:
            future.set_result(payload)

    async def _send(self, message: str) -> None:
        if self._log_frames:
            frames_log.debug("%s -> %s", self.station_id, message)
        try:
            await self.transport.send(message)
        except Exception:
            return  # the receive loop sees the closed connection and ends the session

    # ---- closing ----------------------------------------------------------------------------

    def _shutdown(self) -> None:
        """Fail every waiting command at once (not at its timeout) and stop follow-ups."""
        self._closed = True
        for future in self._pending.values():
            if not future.done():
                future.set_exception(StationDisconnected(self.station_id))
        for task in list(self._tasks):
            task.cancel()

    async def _settle_follow_ups(self, timeout_s: float = 5.0) -> None:
        """Wait for the cancelled follow-ups to end, so that none is still inside a database
        read or write when the session is gone (and the server's services may be closing)."""
        tasks = [task for task in self._tasks if not task.done()]
        if not tasks:
            return
        _, still_running = await asyncio.wait(tasks, timeout=timeout_s)
        for task in still_running:
            log.warning("a follow-up for %s did not end when cancelled: %r", self.station_id, task)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self._shutdown()
        with contextlib.suppress(Exception):
            await self.transport.close(code, reason)

    @property
    def closed(self) -> bool:
        return self._closed
