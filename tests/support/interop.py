"""Drive the third-party OCPP 2.0.1 peers in tests/interop/ (Node `ocpp-rpc`, strict mode).

Two peers, each a Node process spoken to in JSON lines (see tests/interop/README.md):

- `InteropStation` (client.js): a charging station for testing our CSMS.
- `InteropCsms` (server.js): a CSMS on 127.0.0.1 for testing our charge-point agent.

Typical use::

    async with interop_csms(password="0123456789abcdef") as csms:
        ...  # point our agent at csms.url
        await csms.wait_for_station("CS1")
        outcome = await csms.call("CS1", "GetVariables", {...})
        await csms.expect_no_strict_violations()  # our agent sent nothing that breaks the schema

Every strict-mode validation failure is recorded as a `StrictViolation`; `origin == "peer"`
means the system under test sent it, `origin == "local"` means the test drove the harness wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

INTEROP_DIR = Path(__file__).resolve().parents[1] / "interop"
CLIENT_SCRIPT = INTEROP_DIR / "client.js"
SERVER_SCRIPT = INTEROP_DIR / "server.js"
DEFAULT_TIMEOUT = 10.0
# A NotifyReport or a 1,024-period profile can make a long line.
_LINE_LIMIT = 16 * 1024 * 1024

Event = dict[str, Any]


def running_under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require_node() -> str:
    """Path of `node`; skip (locally) or fail (under CI) when the harness cannot run."""
    node = shutil.which("node")
    missing = []
    if node is None:
        missing.append("`node` is not on PATH")
    if not (INTEROP_DIR / "node_modules" / "ocpp-rpc").is_dir():
        missing.append("tests/interop/node_modules is missing (run `npm ci` in tests/interop)")
    if missing:
        reason = "interop harness unavailable: " + "; ".join(missing)
        if running_under_ci():
            pytest.fail(reason + " (CI is set, so this is a failure, not a skip)")
        pytest.skip(reason)
    assert node is not None
    return node


class InteropTimeout(AssertionError):
    """An awaited harness event did not come in time."""


@dataclass(frozen=True)
class StrictViolation:
    """One schema failure seen by ocpp-rpc in strict mode."""

    identity: str | None
    origin: str  # "peer": the system under test sent it; "local": the harness itself
    kind: str  # "call" or "result"
    action: str
    code: str  # the OCPP-J error code ocpp-rpc chose (note: "OccurenceConstraintViolation")
    description: str
    errors: list[dict[str, Any]]
    params: Any
    result: Any

    @classmethod
    def from_event(cls, event: Event) -> StrictViolation:
        return cls(
            identity=event.get("identity"),
            origin=event["origin"],
            kind=event["kind"],
            action=event["action"],
            code=event["code"],
            description=event.get("description", ""),
            errors=list(event.get("errors") or []),
            params=event.get("params"),
            result=event.get("result"),
        )


@dataclass(frozen=True)
class CallOutcome:
    """The answer to a CALL the harness made: a CALLRESULT payload or a CALLERROR."""

    action: str
    payload: dict[str, Any] | None = None
    error_code: str | None = None
    error_description: str = ""
    error_details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error_code is None

    @property
    def result(self) -> dict[str, Any]:
        """The CALLRESULT payload; an AssertionError if the call failed."""
        if self.error_code is not None:
            raise AssertionError(
                f"{self.action} failed: {self.error_code}: {self.error_description} "
                f"{self.error_details}"
            )
        assert self.payload is not None
        return self.payload

    @classmethod
    def from_event(cls, event: Event) -> CallOutcome:
        if event["event"] == "call_result":
            return cls(action=event["action"], payload=event.get("payload") or {})
        return cls(
            action=event["action"],
            error_code=event.get("code", "GenericError"),
            error_description=event.get("description", ""),
            error_details=event.get("details") or {},
        )


def _matches(event: Event, name: str | None, fields: dict[str, Any]) -> bool:
    if name is not None and event.get("event") != name:
        return False
    return all(event.get(key) == value for key, value in fields.items())


class NodePeer:
    """One harness process: JSON commands in on stdin, JSON events out on stdout."""

    def __init__(self, script: Path, args: list[str] | None = None) -> None:
        self.script = script
        self.args = list(args or [])
        self.events: list[Event] = []
        self._stderr_lines: list[str] = []
        self._process: asyncio.subprocess.Process | None = None
        self._readers: list[asyncio.Task[None]] = []
        self._new_event = asyncio.Event()

    # -- life cycle -------------------------------------------------------------------------
    async def start(self) -> None:
        node = require_node()
        self._process = await asyncio.create_subprocess_exec(
            node,
            str(self.script),
            *self.args,
            cwd=str(INTEROP_DIR),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=_LINE_LIMIT,
        )
        assert self._process.stdout is not None and self._process.stderr is not None
        self._readers = [
            asyncio.create_task(self._read_stdout(self._process.stdout)),
            asyncio.create_task(self._read_stderr(self._process.stderr)),
        ]

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Ask the process to close; terminate, then kill it if it does not."""
        process = self._process
        if process is None:
            return
        if process.returncode is None:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.send({"command": "close"})
            if process.stdin is not None:
                process.stdin.close()
            try:
                await asyncio.wait_for(process.wait(), timeout_s)
            except TimeoutError:
                process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), 2.0)
                except TimeoutError:
                    process.kill()
                    await process.wait()
        for reader in self._readers:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(reader, 2.0)
        self._process = None

    async def __aenter__(self) -> NodePeer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def returncode(self) -> int | None:
        return None if self._process is None else self._process.returncode

    @property
    def stderr_text(self) -> str:
        return "".join(self._stderr_lines)

    # -- I/O ---------------------------------------------------------------------------------
    async def _read_stdout(self, stream: asyncio.StreamReader) -> None:
        async for raw in stream:
            line = raw.decode("utf-8", "replace").strip()
            if not line:
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                event = {"event": "non_json_output", "line": line}
            if not isinstance(event, dict):
                event = {"event": "non_json_output", "line": line}
            self.events.append(event)
            self._new_event.set()
        self.events.append({"event": "process_exited"})
        self._new_event.set()

    async def _read_stderr(self, stream: asyncio.StreamReader) -> None:
        async for raw in stream:
            self._stderr_lines.append(raw.decode("utf-8", "replace"))

    async def send(self, command: dict[str, Any]) -> None:
        if self._process is None or self._process.stdin is None:
            raise RuntimeError("harness process is not running")
        self._process.stdin.write(json.dumps(command).encode() + b"\n")
        await self._process.stdin.drain()

    async def wait_for(
        self,
        predicate: Callable[[Event], bool],
        *,
        timeout_s: float = DEFAULT_TIMEOUT,
        since: int = 0,
        what: str = "event",
    ) -> Event:
        """The first event from index `since` on that satisfies `predicate`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        index = since
        while True:
            while index < len(self.events):
                event = self.events[index]
                index += 1
                if predicate(event):
                    return event
            if any(e.get("event") == "process_exited" for e in self.events[since:]):
                self._fail(f"harness exited while waiting for {what}")
            remaining = deadline - loop.time()
            if remaining <= 0:
                self._fail(f"timed out after {timeout_s} s waiting for {what}")
            self._new_event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new_event.wait(), remaining)

    async def wait_event(
        self,
        name: str | None = None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT,
        since: int = 0,
        **fields: Any,
    ) -> Event:
        """The first event named `name` whose fields equal `fields`."""
        return await self.wait_for(
            lambda e: _matches(e, name, fields),
            timeout_s=timeout_s,
            since=since,
            what=f"{name} {fields}",
        )

    async def request(
        self, command: dict[str, Any], replies: tuple[str, ...], timeout_s: float = DEFAULT_TIMEOUT
    ) -> Event:
        """Send a command tagged with a fresh ref and await the reply event carrying it."""
        ref = uuid.uuid4().hex
        await self.send({**command, "ref": ref})
        return await self.wait_for(
            lambda e: e.get("ref") == ref and e.get("event") in (*replies, "command_error"),
            timeout_s=timeout_s,
            what=f"reply to {command.get('command')} {command.get('action', '')}",
        )

    async def sync(self) -> None:
        """Make sure every event the harness printed so far has been read (round trip through
        its stdin/stdout). Call it before checking for violations caused by a message whose
        effect the test saw on another channel (e.g. a CALLERROR on its own websocket)."""
        await self.request({"command": "ping"}, ("pong",))

    async def expect_no_strict_violations(self, origin: str | None = "peer") -> None:
        """`sync()`, then `assert_no_strict_violations()`."""
        await self.sync()
        self.assert_no_strict_violations(origin)

    def _fail(self, message: str) -> None:
        tail = "\n".join(json.dumps(e)[:400] for e in self.events[-15:])
        stderr = self.stderr_text[-2000:]
        raise InteropTimeout(
            f"{self.script.name}: {message}\nlast events:\n{tail}\nstderr:\n{stderr}"
        )

    # -- what happened -----------------------------------------------------------------------
    def strict_violations(self, origin: str | None = None) -> list[StrictViolation]:
        found = [
            StrictViolation.from_event(e)
            for e in self.events
            if e.get("event") == "strict_violation"
        ]
        return [v for v in found if origin is None or v.origin == origin]

    def bad_messages(self) -> list[Event]:
        return [e for e in self.events if e.get("event") == "bad_message"]

    def assert_no_strict_violations(self, origin: str | None = "peer") -> None:
        """Fail listing every schema violation (by default those the system under test sent)
        and every unparseable frame."""
        problems = [str(v) for v in self.strict_violations(origin)]
        problems += [json.dumps(e) for e in self.bad_messages()]
        assert not problems, "ocpp-rpc strict mode rejected messages:\n" + "\n".join(problems)

    def received_calls(self, action: str | None = None, identity: str | None = None) -> list[Event]:
        return [
            e
            for e in self.events
            if e.get("event") == "received_call"
            and (action is None or e.get("action") == action)
            and (identity is None or e.get("identity") == identity)
        ]

    async def wait_for_call(
        self,
        action: str,
        *,
        identity: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT,
        since: int = 0,
    ) -> Event:
        fields: dict[str, Any] = {"action": action}
        if identity is not None:
            fields["identity"] = identity
        return await self.wait_event("received_call", timeout_s=timeout_s, since=since, **fields)

    async def set_handler(
        self,
        action: str,
        *,
        response: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
    ) -> None:
        """Answer `action` with `response`, or with a CALLERROR {code, description, details}."""
        if (response is None) == (error is None):
            raise ValueError("give exactly one of response or error")
        command: dict[str, Any] = {"command": "set-handler", "action": action}
        if response is not None:
            command["response"] = response
        else:
            command["error"] = error
        await self.request(command, ("handler_set",))

    async def reset_handler(self, action: str) -> None:
        """Back to the schema-valid default answer."""
        await self.request(
            {"command": "set-handler", "action": action, "default": True}, ("handler_set",)
        )


class InteropStation(NodePeer):
    """client.js: an ocpp-rpc charging station (strict mode; ocpp2.0.1 unless `protocols` at
    connect offers ocpp2.1)."""

    def __init__(self) -> None:
        super().__init__(CLIENT_SCRIPT)

    async def start(self) -> None:
        await super().start()
        await self.wait_event("ready")

    async def try_connect(
        self,
        url: str,
        identity: str,
        password: str | None = None,
        *,
        reconnect: bool = False,
        follow_ups: bool = True,
        protocols: list[str] | None = None,
        timeout_s: float = DEFAULT_TIMEOUT,
    ) -> Event:
        """Connect to `url`/`identity`; the `connected` or `connect_failed` event (with
        `status`, e.g. 401, when the upgrade was refused)."""
        command: dict[str, Any] = {
            "command": "connect",
            "url": url,
            "identity": identity,
            "password": password,
            "reconnect": reconnect,
            "follow_ups": follow_ups,
        }
        if protocols is not None:
            command["protocols"] = protocols
        return await self.request(command, ("connected", "connect_failed"), timeout_s)

    async def connect(
        self, url: str, identity: str, password: str | None = None, **kw: Any
    ) -> Event:
        event = await self.try_connect(url, identity, password, **kw)
        if event["event"] != "connected":
            raise AssertionError(f"station {identity} could not connect to {url}: {event}")
        return event

    async def call(
        self, action: str, payload: dict[str, Any], *, timeout_s: float = DEFAULT_TIMEOUT
    ) -> CallOutcome:
        event = await self.request(
            {
                "command": "call",
                "action": action,
                "payload": payload,
                "timeout_ms": int(timeout_s * 1000),
            },
            ("call_result", "call_error"),
            timeout_s + 2.0,
        )
        return CallOutcome.from_event(event)

    async def send_unconfirmed(self, action: str, payload: dict[str, Any]) -> Event:
        """An OCPP-J 2.1 SEND (message type 6, never answered): the `sent` event, or
        `send_error` when not on ocpp2.1, not a SEND action or an invalid payload."""
        return await self.request(
            {"command": "send", "action": action, "payload": payload}, ("sent", "send_error")
        )

    async def boot(self, reason: str = "PowerUp") -> dict[str, Any]:
        """A schema-valid BootNotification; the CSMS's answer."""
        outcome = await self.call(
            "BootNotification",
            {
                "reason": reason,
                "chargingStation": {"model": "ocpp-rpc-harness", "vendorName": "interop"},
            },
        )
        return outcome.result

    async def disconnect(self) -> None:
        await self.request({"command": "disconnect"}, ("disconnect_done",))


class InteropCsms(NodePeer):
    """server.js: an ocpp-rpc CSMS (strict mode) listening on 127.0.0.1."""

    def __init__(
        self,
        *,
        password: str | None = None,
        heartbeat_interval: int = 300,
        boot_status: str = "Accepted",
        protocols: tuple[str, ...] | None = None,
    ) -> None:
        args = ["--port", "0", "--heartbeat-interval", str(heartbeat_interval)]
        args += ["--boot-status", boot_status]
        if protocols:  # subprotocols in preference order (default: ocpp2.0.1 only)
            args += ["--protocols", ",".join(protocols)]
        if password is not None:
            args += ["--password", password]
        super().__init__(SERVER_SCRIPT, args)
        self.port = 0

    async def start(self) -> None:
        await super().start()
        listening = await self.wait_event("listening")
        self.port = int(listening["port"])

    @property
    def url(self) -> str:
        """Base URL; a station appends its identity."""
        return f"ws://127.0.0.1:{self.port}/ocpp"

    async def wait_for_station(self, identity: str, *, timeout_s: float = DEFAULT_TIMEOUT) -> Event:
        return await self.wait_event("station_connected", identity=identity, timeout_s=timeout_s)

    async def call(
        self,
        identity: str,
        action: str,
        payload: dict[str, Any],
        *,
        timeout_s: float = DEFAULT_TIMEOUT,
    ) -> CallOutcome:
        event = await self.request(
            {
                "command": "call",
                "identity": identity,
                "action": action,
                "payload": payload,
                "timeout_ms": int(timeout_s * 1000),
            },
            ("call_result", "call_error"),
            timeout_s + 2.0,
        )
        return CallOutcome.from_event(event)

    async def disconnect(self, identity: str) -> None:
        await self.request({"command": "disconnect", "identity": identity}, ("disconnect_done",))


@contextlib.asynccontextmanager
async def interop_station() -> AsyncIterator[InteropStation]:
    station = InteropStation()
    await station.start()
    try:
        yield station
    finally:
        await station.stop()


@contextlib.asynccontextmanager
async def interop_csms(
    *,
    password: str | None = None,
    heartbeat_interval: int = 300,
    boot_status: str = "Accepted",
    protocols: tuple[str, ...] | None = None,
) -> AsyncIterator[InteropCsms]:
    csms = InteropCsms(
        password=password,
        heartbeat_interval=heartbeat_interval,
        boot_status=boot_status,
        protocols=protocols,
    )
    await csms.start()
    try:
        yield csms
    finally:
        await csms.stop()


async def run_self_check(script: Path, flag: str = "--self-check") -> Event:
    """Run `node <script> --self-check` (or `flag`): are all default answers schema-valid?"""
    node = require_node()
    process = await asyncio.create_subprocess_exec(
        node,
        str(script),
        flag,
        cwd=str(INTEROP_DIR),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    lines = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
    result = next((e for e in lines if e.get("event") == "self_check"), None)
    assert result is not None, f"no self_check result: {out.decode()} {err.decode()}"
    result["returncode"] = process.returncode
    return result
