#!/usr/bin/env python3
"""OCPP 2.0.1 load generator: N simulated charging stations against a CSMS on this machine.

Each station is a raw `websockets` client that builds OCPP-J frames by hand (no `ocpp` library,
no schema validation: the generator must stay cheaper than the server it measures).

Scenarios
  mix             Boot, StatusNotification, then heartbeats at the CSMS's interval and
                  transactions (TransactionEvent Started / Updated every --meter-interval s /
                  Ended, with StatusNotification around them); optional CSMS-initiated
                  commands through the REST API (--api-url, --commands-per-s), answered by the
                  stations. Every station starts at a random point of its cycle (in a
                  transaction or idle, random heartbeat and meter phases), so the load is a
                  steady state from the first boot; at the end transactions stay open (as if
                  the stations went offline) unless --end-transactions.
  boot-heartbeat  Boot, then back-to-back Heartbeats as fast as they are answered (throughput).
  boot-storm      all N connect and boot at once; reports the time until all are accepted.
  tx-meter        Boot, TransactionEvent Started, then back-to-back TransactionEvent Updated and
                  MeterValues alternately, 3 sampled values each (the write path, issue 17).

It prints a progress line every few seconds, then a table (calls/s, latency p50/p95/p99 per
message type for the whole run and for the steady state: calls sent from the second after the
last boot until the end of --duration, CSMS CPU seconds per 1,000 messages and peak RSS with
--server-pid), and writes the
same as JSON with --json FILE. It stops by itself (--duration, --max-messages). Only loopback
targets are accepted: this workplace forbids load on anything else.

  python benchmarks/loadgen.py --url ws://127.0.0.1:9000/ocpp --stations 500 --processes 2 \\
      --scenario boot-heartbeat --duration 30 --server-pid 1234 --json out.json

Over 600 lines because it is one standalone script (standard library, websockets and orjson
only, no project imports) that is run by path and re-imported by its worker processes; its
sections (statistics, station, API commands, worker, CSMS sampler, summary, CLI) are marked.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gc
import ipaddress
import itertools
import json
import math
import multiprocessing
import os
import queue
import random
import resource
import socket
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

import orjson
import websockets
from websockets.asyncio.client import ClientConnection, connect

SCENARIOS = ("mix", "boot-heartbeat", "boot-storm", "tx-meter")
MAX_STATIONS = 10_000
SUBPROTOCOL = "ocpp2.0.1"
CALL, CALLRESULT, CALLERROR = 2, 3, 4

# CSMS-initiated actions the generator asks for through the REST API, with their weights.
API_COMMAND_MIX = (("GetVariables", 5), ("SetChargingProfile", 3), ("GetCompositeSchedule", 2))


class RemoteTargetRefused(ValueError):
    """The URL does not point at this machine."""


def require_loopback(url: str) -> None:
    """Refuse any target that is not a loopback address (127.0.0.0/8, ::1, localhost)."""
    host = urlsplit(url).hostname
    if not host:
        raise RemoteTargetRefused(f"no host in {url!r}")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None:
        if address.is_loopback:
            return
        raise RemoteTargetRefused(f"{host} is not a loopback address")
    if host != "localhost":
        raise RemoteTargetRefused(f"{host!r}: only 127.0.0.1, ::1 or localhost are allowed")
    addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    if not addresses or not all(ipaddress.ip_address(a).is_loopback for a in addresses):
        raise RemoteTargetRefused(f"localhost resolves to non-loopback {sorted(addresses)}")


# -- statistics ------------------------------------------------------------------------------
_GROWTH = 1.02  # log buckets: any percentile is within 1 % of the true value
_LOG_GROWTH = math.log(_GROWTH)
_FLOOR_S = 1e-6


@dataclass
class LatencyHistogram:
    """Mergeable latency histogram with logarithmic buckets (seconds)."""

    buckets: dict[int, int] = field(default_factory=dict)
    count: int = 0
    total_s: float = 0.0
    max_s: float = 0.0

    def add(self, seconds: float) -> None:
        index = int(math.log(max(seconds, _FLOOR_S) / _FLOOR_S) / _LOG_GROWTH)
        self.buckets[index] = self.buckets.get(index, 0) + 1
        self.count += 1
        self.total_s += seconds
        self.max_s = max(self.max_s, seconds)

    def merge(self, other: LatencyHistogram) -> None:
        for index, n in other.buckets.items():
            self.buckets[index] = self.buckets.get(index, 0) + n
        self.count += other.count
        self.total_s += other.total_s
        self.max_s = max(self.max_s, other.max_s)

    def percentile(self, p: float) -> float:
        """Seconds below which p % of the samples lie (bucket midpoint)."""
        if self.count == 0:
            return math.nan
        rank = max(1, math.ceil(self.count * p / 100.0))
        if rank >= self.count:
            return self.max_s
        seen = 0
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            if seen >= rank:
                return min(_FLOOR_S * _GROWTH ** (index + 0.5), self.max_s)
        return self.max_s

    def to_json(self) -> dict[str, Any]:
        return {
            "buckets": {str(k): v for k, v in self.buckets.items()},
            "count": self.count,
            "total_s": self.total_s,
            "max_s": self.max_s,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LatencyHistogram:
        return cls(
            {int(k): v for k, v in data["buckets"].items()},
            data["count"],
            data["total_s"],
            data["max_s"],
        )


@dataclass
class WorkerStats:
    """What one worker process saw. Plain data so that it crosses process boundaries."""

    stations: int = 0
    connected: int = 0
    connect_failures: dict[str, int] = field(default_factory=dict)
    unexpected_disconnects: int = 0
    reconnects: int = 0
    boots_accepted: int = 0
    boot_not_accepted: dict[str, int] = field(default_factory=dict)
    last_boot_accepted_at: float | None = None  # seconds since the run's start
    sent: dict[str, int] = field(default_factory=dict)
    completed: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)  # "Action:ErrorCode" -> n
    timeouts: dict[str, int] = field(default_factory=dict)
    csms_calls_answered: dict[str, int] = field(default_factory=dict)
    api_ok: dict[str, int] = field(default_factory=dict)
    api_failed: dict[str, int] = field(default_factory=dict)  # "Action:HTTP status" -> n
    per_second: dict[int, int] = field(default_factory=dict)  # completed round trips
    latency: dict[str, LatencyHistogram] = field(default_factory=dict)
    # The same round trips by the second (since the run's start) their CALL was sent in, so
    # that a window (the steady state) can be cut out after the run.
    latency_by_second: dict[int, dict[str, LatencyHistogram]] = field(default_factory=dict)
    # This process's own garbage collections (a pause here delays every reply it awaits and
    # shows as the server's latency): full collections and the longest pause of any.
    gc_full_collections: int = 0
    gc_longest_pause_ms: float = 0.0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["latency"] = {k: v.to_json() for k, v in self.latency.items()}
        data["latency_by_second"] = {
            str(second): {k: v.to_json() for k, v in kinds.items()}
            for second, kinds in self.latency_by_second.items()
        }
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WorkerStats:
        data = dict(data)
        data["latency"] = {k: LatencyHistogram.from_json(v) for k, v in data["latency"].items()}
        data["latency_by_second"] = {
            int(second): {k: LatencyHistogram.from_json(v) for k, v in kinds.items()}
            for second, kinds in data.get("latency_by_second", {}).items()
        }
        data["per_second"] = {int(k): v for k, v in data["per_second"].items()}
        return cls(**data)


def _bump(counter: dict[str, int], key: str, n: int = 1) -> None:
    counter[key] = counter.get(key, 0) + n


class Recorder:
    """Mutable counters of one worker; `snapshot()` gives its `WorkerStats`."""

    def __init__(self, run_start_wall: float) -> None:
        self.run_start_wall = run_start_wall
        self.stats = WorkerStats()
        self.latency: defaultdict[str, LatencyHistogram] = defaultdict(LatencyHistogram)

    def since_start(self) -> float:
        return time.time() - self.run_start_wall

    def round_trip(self, kind: str, seconds: float) -> None:
        self.latency[kind].add(seconds)
        sent_second = int(self.since_start() - seconds)
        by_kind = self.stats.latency_by_second.get(sent_second)
        if by_kind is None:
            by_kind = self.stats.latency_by_second[sent_second] = {}
        histogram = by_kind.get(kind)
        if histogram is None:
            histogram = by_kind[kind] = LatencyHistogram()
        histogram.add(seconds)
        # The per-second timeline counts OCPP messages only; "connect" is a handshake and an
        # "api:" command is counted when its station answers (`tick`).
        if kind not in ("connect", "reconnect") and not kind.startswith("api:"):
            self.tick()

    def tick(self) -> None:
        """A round trip without a latency of its own (a CSMS-initiated call answered)."""
        second = int(self.since_start())
        self.stats.per_second[second] = self.stats.per_second.get(second, 0) + 1

    def total_completed(self) -> int:
        s = self.stats
        return sum(s.completed.values()) + sum(s.csms_calls_answered.values())

    def snapshot(self) -> WorkerStats:
        self.stats.latency = dict(self.latency)
        return self.stats


# -- one simulated station --------------------------------------------------------------------
class CallFailed(Exception):
    def __init__(self, code: str, description: str = "") -> None:
        super().__init__(f"{code}: {description}")
        self.code = code


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def station_answer(action: str, payload: dict[str, Any]) -> dict[str, Any] | None:
    """A schema-valid answer to a CSMS-initiated call, or None for "not supported"."""
    if action == "GetVariables":
        return {
            "getVariableResult": [
                {
                    "attributeStatus": "Accepted",
                    "component": d.get("component", {}),
                    "variable": d.get("variable", {}),
                    "attributeValue": "300",
                }
                for d in payload.get("getVariableData", [])
            ]
        }
    if action == "SetVariables":
        return {
            "setVariableResult": [
                {
                    "attributeStatus": "Accepted",
                    "component": d.get("component", {}),
                    "variable": d.get("variable", {}),
                }
                for d in payload.get("setVariableData", [])
            ]
        }
    if action == "GetCompositeSchedule":
        return {
            "status": "Accepted",
            "schedule": {
                "evseId": payload.get("evseId", 0),
                "duration": payload.get("duration", 0),
                "scheduleStart": _now_iso(),
                "chargingRateUnit": payload.get("chargingRateUnit", "A"),
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 32.0}],
            },
        }
    if action == "UnlockConnector":
        return {"status": "Unlocked"}
    if action == "GetChargingProfiles":
        return {"status": "NoProfiles"}
    if action in (
        "SetChargingProfile",
        "ClearChargingProfile",
        "Reset",
        "ChangeAvailability",
        "RequestStartTransaction",
        "RequestStopTransaction",
        "TriggerMessage",
        "ClearCache",
        "SetNetworkProfile",
    ):
        return {"status": "Accepted"}
    return None


@dataclass(frozen=True)
class RunConfig:
    url: str = "ws://127.0.0.1:9000/ocpp"
    stations: int = 1000
    processes: int = 1
    id_prefix: str = "LOAD"
    password: str | None = None
    scenario: str = "mix"
    duration_s: float = 60.0
    max_messages: int | None = None  # station-initiated round trips, whole run
    meter_interval_s: float = 10.0
    heartbeat_interval_s: float | None = None  # None: the interval the CSMS gives at boot
    idle_mean_s: float = 30.0  # mix: mean pause between transactions
    transaction_mean_s: float = 120.0  # mix: mean transaction length
    end_transactions: bool = False  # mix: at the end, send Ended for open transactions
    connect_rate: float = 500.0  # new connections per second (whole run); 0 = all at once
    call_timeout_s: float = 30.0
    api_url: str | None = None
    api_token: str | None = None
    commands_per_s: float = 0.0
    command_path: str = "/stations/{station_id}/ocpp/{action}"
    server_pid: int | None = None
    progress_interval_s: float = 5.0
    seed: int = 1
    json_path: str | None = None
    use_uvloop: bool = True
    # Failover runs: a dropped station reconnects (backoff), boots again and re-sends the call
    # that had no answer (same payload: same seqNo), as a real station's offline queue would.
    reconnect: bool = False
    # Write every acknowledged TransactionEvent / MeterValues to `<acks_path>.w<worker>` (TSV:
    # station, action, transactionId, seqNo, meter timestamp): acknowledged vs stored.
    acks_path: str | None = None

    def station_ids(self, worker: int) -> list[str]:
        width = len(str(self.stations))
        return [
            f"{self.id_prefix}{i:0{width}d}" for i in range(worker, self.stations, self.processes)
        ]


class SimulatedStation:
    def __init__(
        self,
        station_id: str,
        index: int,
        cfg: RunConfig,
        rec: Recorder,
        stop: asyncio.Event,
        budget: MessageBudget,
    ) -> None:
        self.station_id = station_id
        self.index = index
        self.cfg = cfg
        self.rec = rec
        self.stop = stop
        self.budget = budget
        self.rng = random.Random(cfg.seed * 1_000_003 + index)
        self.ws: ClientConnection | None = None
        self.pending: dict[str, tuple[asyncio.Future[Any], str, float]] = {}
        self.next_id = 0
        self.heartbeat_interval_s = 300.0
        self.connected = asyncio.Event()
        self.energy_wh = float(self.rng.randint(0, 50_000))
        self.soc = float(self.rng.randint(20, 80))
        self.transaction_seq = 0
        self.next_heartbeat = 0.0
        self.closing = False  # set before this station closes its own connection
        self.reader_task: asyncio.Task[None] | None = None
        self.acks: Any = None  # the worker's open acks file (--acks)

    # -- transport ---------------------------------------------------------------------------
    async def open(self) -> bool:
        headers = None
        if self.cfg.password is not None:
            token = base64.b64encode(f"{self.station_id}:{self.cfg.password}".encode()).decode()
            headers = {"Authorization": f"Basic {token}"}
        started = time.perf_counter()
        try:
            self.ws = await connect(
                f"{self.cfg.url.rstrip('/')}/{quote(self.station_id)}",
                subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
                additional_headers=headers,
                compression=None,
                open_timeout=self.cfg.call_timeout_s,
                ping_interval=None,  # the CSMS pings; this side only answers
                close_timeout=2,
                max_queue=64,
            )
        except Exception as exc:  # every failure kind is counted, none stops the run
            reason = type(exc).__name__
            status = getattr(getattr(exc, "response", None), "status_code", None)
            _bump(self.rec.stats.connect_failures, f"{reason}:{status}" if status else reason)
            return False
        if self.ws.subprotocol != SUBPROTOCOL:
            _bump(self.rec.stats.connect_failures, f"subprotocol:{self.ws.subprotocol}")
            await self.ws.close()
            return False
        self.rec.round_trip("connect", time.perf_counter() - started)
        self.rec.stats.connected += 1
        self.connected.set()
        return True

    async def reader(self) -> None:
        assert self.ws is not None
        try:
            async for raw in self.ws:
                received = time.perf_counter()
                message = orjson.loads(raw)
                kind = message[0]
                if kind in (CALLRESULT, CALLERROR):
                    entry = self.pending.pop(message[1], None)
                    if entry is None:
                        continue
                    future, action, sent_at = entry
                    if kind == CALLRESULT:
                        self.rec.round_trip(action, received - sent_at)
                        if not future.done():
                            future.set_result(message[2])
                    elif not future.done():
                        future.set_exception(CallFailed(message[2], message[3]))
                elif kind == CALL:
                    await self.answer_csms_call(message[1], message[2], message[3])
        except websockets.ConnectionClosed:
            pass
        finally:
            if not self.stop.is_set() and not self.closing:
                self.rec.stats.unexpected_disconnects += 1
            for future, _, _ in self.pending.values():
                if not future.done():
                    future.set_exception(CallFailed("Disconnected"))
            self.pending.clear()

    async def answer_csms_call(self, message_id: str, action: str, payload: Any) -> None:
        assert self.ws is not None
        answer = station_answer(action, payload if isinstance(payload, dict) else {})
        if answer is None:
            frame = [CALLERROR, message_id, "NotSupported", f"{action} not supported", {}]
        else:
            frame = [CALLRESULT, message_id, answer]
        await self.ws.send(orjson.dumps(frame).decode())
        _bump(self.rec.stats.csms_calls_answered, action)
        self.rec.tick()  # its latency is measured at the API client (api:<Action>)

    async def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """One CALL; the CALLRESULT payload. Raises CallFailed on CALLERROR or timeout. With
        --reconnect a call lost to a dropped connection is sent again after reconnecting."""
        while True:
            try:
                result = await self._call_once(action, payload)
            except CallFailed as failed:
                if not (self.cfg.reconnect and failed.code in ("Disconnected", "Timeout")):
                    raise
                if not await self.reconnect():
                    raise
                continue
            if self.acks is not None and action in ("TransactionEvent", "MeterValues"):
                info = payload.get("transactionInfo") or {}
                stamps = payload.get("meterValue") or [{}]
                self.acks.write(
                    f"{self.station_id}\t{action}\t{info.get('transactionId', '')}\t"
                    f"{payload.get('seqNo', '')}\t{stamps[0].get('timestamp', '')}\n"
                )
            return result

    async def reconnect(self) -> bool:
        """Open a new connection and boot again, with backoff (0.1 s doubling to 2 s, with
        jitter), until it works or the run ends; the time it took is the "reconnect" latency."""
        lost_at = time.perf_counter()
        delay = 0.1
        if self.ws is not None:
            self.closing = True
            await self.ws.close()
        if self.reader_task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.reader_task
        self.closing = False
        while not self.stop.is_set():
            if not await self.sleep(delay * (0.5 + self.rng.random())):
                return False
            delay = min(2.0, delay * 2)
            if not await self.open():
                continue
            self.reader_task = asyncio.create_task(self.reader())
            try:
                await self._boot_once()
            except CallFailed:
                continue
            self.rec.stats.reconnects += 1
            self.rec.round_trip("reconnect", time.perf_counter() - lost_at)
            return True
        return False

    async def _call_once(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        assert self.ws is not None
        self.next_id += 1
        message_id = str(self.next_id)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[message_id] = (future, action, time.perf_counter())
        _bump(self.rec.stats.sent, action)
        try:
            await self.ws.send(orjson.dumps([CALL, message_id, action, payload]).decode())
            async with asyncio.timeout(self.cfg.call_timeout_s):
                result: dict[str, Any] = await future
        except TimeoutError:
            self.pending.pop(message_id, None)
            _bump(self.rec.stats.timeouts, action)
            raise CallFailed("Timeout") from None
        except CallFailed as failed:
            _bump(self.rec.stats.errors, f"{action}:{failed.code}")
            raise
        except websockets.ConnectionClosed:
            self.pending.pop(message_id, None)
            _bump(self.rec.stats.errors, f"{action}:Disconnected")
            raise CallFailed("Disconnected") from None
        _bump(self.rec.stats.completed, action)
        return result

    # -- behaviour ---------------------------------------------------------------------------
    async def boot(self) -> bool:
        """BootNotification until Accepted (Pending/Rejected: wait the interval given)."""
        while not self.stop.is_set():
            if await self._boot_once():
                return True
        return False

    async def _boot_once(self) -> bool:
        """One BootNotification (not re-sent on a drop: `reconnect` opens a new connection)."""
        if not self.stop.is_set():
            answer = await self._call_once(
                "BootNotification",
                {
                    "reason": "PowerUp",
                    "chargingStation": {
                        "model": "LoadGen-DC-V2G",
                        "vendorName": "loadgen",
                        "serialNumber": self.station_id[-25:],
                    },
                },
            )
            status = answer.get("status")
            interval = float(answer.get("interval") or 0)
            if status == "Accepted":
                self.heartbeat_interval_s = self.cfg.heartbeat_interval_s or interval or 300.0
                self.rec.stats.boots_accepted += 1
                self.rec.stats.last_boot_accepted_at = self.rec.since_start()
                return True
            _bump(self.rec.stats.boot_not_accepted, str(status))
            await self.sleep(max(interval, 1.0))
        return False

    async def sleep(self, seconds: float) -> bool:
        """Sleep unless the run stops first; True if the run is still going."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)
        return not self.stop.is_set()

    async def status(self, connector_status: str) -> None:
        await self.call(
            "StatusNotification",
            {
                "timestamp": _now_iso(),
                "connectorStatus": connector_status,
                "evseId": 1,
                "connectorId": 1,
            },
        )

    def meter_value(self, power_w: float, context: str) -> list[dict[str, Any]]:
        sampled: list[dict[str, Any]] = [
            {
                "value": round(self.energy_wh, 1),
                "measurand": "Energy.Active.Import.Register",
                "unitOfMeasure": {"unit": "Wh"},
                "context": context,
            },
            {
                "value": round(self.soc, 1),
                "measurand": "SoC",
                "unitOfMeasure": {"unit": "Percent"},
                "context": context,
            },
        ]
        measurand = "Power.Active.Import" if power_w >= 0 else "Power.Active.Export"
        sampled.append(
            {
                "value": round(abs(power_w), 1),
                "measurand": measurand,
                "unitOfMeasure": {"unit": "W"},
                "context": context,
            }
        )
        return [{"timestamp": _now_iso(), "sampledValue": sampled}]

    def _transaction_id(self) -> str:
        # Unique per run (a second run against the same CSMS must not look like a retry of the
        # first one's events); at most 36 characters (IdentifierString of OCPP 2.0.1).
        run_tag = format(int(self.rec.run_start_wall) % 0x1000000, "x")
        return f"{self.station_id[-24:]}-{run_tag}-{self.transaction_seq}"[-36:]

    async def transaction(self, length_s: float, first_sample_s: float) -> bool:
        """One transaction of `length_s` seconds, its first periodic meter value after
        `first_sample_s`, then every --meter-interval s. False if the run ended during it: the
        transaction is then left open (no Ended), unless --end-transactions."""
        self.transaction_seq += 1
        tx_id = self._transaction_id()
        # V2G: some sessions discharge into the grid.
        power_w = self.rng.choice((7_000.0, 11_000.0, -5_000.0))
        seq = 0
        await self.status("Occupied")
        await self.call(
            "TransactionEvent",
            {
                "eventType": "Started",
                "timestamp": _now_iso(),
                "triggerReason": "Authorized",
                "seqNo": seq,
                "transactionInfo": {"transactionId": tx_id, "chargingState": "Charging"},
                "idToken": {"idToken": f"TAG{self.index:06d}", "type": "ISO14443"},
                "evse": {"id": 1, "connectorId": 1},
                "meterValue": self.meter_value(0.0, "Transaction.Begin"),
            },
        )
        ends_at = time.monotonic() + length_s
        next_sample = time.monotonic() + first_sample_s
        running = True
        while True:
            wake = min(ends_at, next_sample, self.next_heartbeat)
            if not await self.sleep(max(wake - time.monotonic(), 0.0)):
                running = False
                break
            now = time.monotonic()
            if now >= ends_at:
                break
            await self.maybe_heartbeat()
            if now < next_sample:
                continue
            next_sample += self.cfg.meter_interval_s
            self.energy_wh = max(0.0, self.energy_wh + power_w * self.cfg.meter_interval_s / 3600)
            self.soc = min(100.0, max(0.0, self.soc + (0.3 if power_w > 0 else -0.2)))
            seq += 1
            await self.call(
                "TransactionEvent",
                {
                    "eventType": "Updated",
                    "timestamp": _now_iso(),
                    "triggerReason": "MeterValuePeriodic",
                    "seqNo": seq,
                    "transactionInfo": {
                        "transactionId": tx_id,
                        "chargingState": "Charging" if power_w > 0 else "Idle",
                    },
                    "meterValue": self.meter_value(power_w, "Sample.Periodic"),
                },
            )
            if not self.budget.take():  # False only once the run has ended
                running = False
                break
        if not running and not self.cfg.end_transactions:
            return False
        seq += 1
        await self.call(
            "TransactionEvent",
            {
                "eventType": "Ended",
                "timestamp": _now_iso(),
                "triggerReason": "EVDeparted",
                "seqNo": seq,
                "transactionInfo": {"transactionId": tx_id, "stoppedReason": "EVDisconnected"},
                "meterValue": self.meter_value(0.0, "Transaction.End"),
            },
        )
        await self.status("Available")
        return running

    async def maybe_heartbeat(self) -> None:
        if time.monotonic() >= self.next_heartbeat:
            self.next_heartbeat = time.monotonic() + self.heartbeat_interval_s
            await self.call("Heartbeat", {})

    async def idle(self, seconds: float) -> bool:
        """No transaction for `seconds` (heartbeats go on); False if the run ended."""
        idle_until = time.monotonic() + seconds
        while time.monotonic() < idle_until:
            wait = min(idle_until, self.next_heartbeat) - time.monotonic()
            if not await self.sleep(max(wait, 0.0)):
                return False
            await self.maybe_heartbeat()
        return True

    async def run_mix(self) -> None:
        """Steady state from the start: each station begins at a random point of its cycle,
        as a station of a long-running fleet would be found at any moment. With exponential
        idle and transaction lengths the time left of either is again exponential, so it is
        in a transaction with probability transaction_mean / (transaction_mean + idle_mean),
        its heartbeat is due at a uniform point of the interval and its meter values at a
        uniform phase: no synchronized rounds, whatever the connect rate."""
        cfg = self.cfg
        await self.status("Available")
        self.next_heartbeat = time.monotonic() + self.rng.uniform(0, self.heartbeat_interval_s)
        busy = cfg.transaction_mean_s / (cfg.transaction_mean_s + cfg.idle_mean_s)
        if self.rng.random() >= busy and not await self.idle(
            self.rng.expovariate(1.0 / cfg.idle_mean_s)
        ):
            return
        first_sample_s = self.rng.uniform(0, cfg.meter_interval_s)
        while not self.stop.is_set() and self.budget.take():
            length_s = self.rng.expovariate(1.0 / cfg.transaction_mean_s)
            if not await self.transaction(length_s, first_sample_s):
                return
            first_sample_s = cfg.meter_interval_s
            if not await self.idle(self.rng.expovariate(1.0 / cfg.idle_mean_s)):
                return

    async def run_tx_meter(self) -> None:
        """The write path back to back (issue 17): one TransactionEvent Started, then
        alternately TransactionEvent Updated and MeterValues, each with 3 sampled values
        (energy register, SoC, power), each answered before the next is sent."""
        self.transaction_seq += 1
        tx_id = self._transaction_id()
        power_w = self.rng.choice((7_000.0, 11_000.0, -5_000.0))
        seq = 0
        await self.call(
            "TransactionEvent",
            {
                "eventType": "Started",
                "timestamp": _now_iso(),
                "triggerReason": "Authorized",
                "seqNo": seq,
                "transactionInfo": {"transactionId": tx_id, "chargingState": "Charging"},
                "idToken": {"idToken": f"TAG{self.index:06d}", "type": "ISO14443"},
                "evse": {"id": 1, "connectorId": 1},
                "meterValue": self.meter_value(0.0, "Transaction.Begin"),
            },
        )
        while not self.stop.is_set() and self.budget.take():
            # One second of energy per message: every sample differs (no duplicate skipped).
            self.energy_wh += abs(power_w) / 3600
            self.soc = min(100.0, max(0.0, self.soc + 0.001))
            seq += 1
            if seq % 2:
                await self.call(
                    "TransactionEvent",
                    {
                        "eventType": "Updated",
                        "timestamp": _now_iso(),
                        "triggerReason": "MeterValuePeriodic",
                        "seqNo": seq,
                        "transactionInfo": {
                            "transactionId": tx_id,
                            "chargingState": "Charging" if power_w > 0 else "Idle",
                        },
                        "meterValue": self.meter_value(power_w, "Sample.Periodic"),
                    },
                )
            else:
                await self.call(
                    "MeterValues",
                    {"evseId": 1, "meterValue": self.meter_value(power_w, "Sample.Periodic")},
                )

    async def run_heartbeats(self) -> None:
        while not self.stop.is_set() and self.budget.take():
            await self.call("Heartbeat", {})

    async def run(self, scenario: str) -> None:
        if not await self.open():
            return
        assert self.ws is not None
        self.reader_task = asyncio.create_task(self.reader())
        try:
            if await self.boot():
                if scenario == "mix":
                    await self.run_mix()
                elif scenario == "boot-heartbeat":
                    await self.run_heartbeats()
                elif scenario == "tx-meter":
                    await self.run_tx_meter()
                else:  # boot-storm: stay connected until the run ends
                    await self.stop.wait()
        except CallFailed:
            pass  # counted where it happened; this station stops sending
        finally:
            # Calls in flight were awaited above, so every sent CALL has been answered.
            self.closing = True
            if self.ws is not None:
                await self.ws.close()
            if self.reader_task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await self.reader_task


class MessageBudget:
    """How many more station-initiated messages this worker may start (None: no limit)."""

    def __init__(self, limit: int | None, stop: asyncio.Event) -> None:
        self.remaining = limit
        self.stop = stop

    def take(self) -> bool:
        if self.remaining is None:
            return not self.stop.is_set()
        if self.remaining <= 0:
            self.stop.set()
            return False
        self.remaining -= 1
        return not self.stop.is_set()


# -- REST API commands -------------------------------------------------------------------------
# One TxDefaultProfile id per EVSE and stack level: a new one replaces it (K01.FR.05) instead
# of a second id at the same stack level and purpose, which K01.FR.06 forbids (the CSMS's 422).
API_PROFILE_ID = 900


def api_payload(action: str, rng: random.Random) -> dict[str, Any]:
    if action == "GetVariables":
        return {
            "getVariableData": [
                {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
            ]
        }
    if action == "GetCompositeSchedule":
        return {"duration": 3600, "evseId": 1, "chargingRateUnit": "W"}
    limit = float(rng.choice((-7000, -3000, 3000, 7000, 11000)))  # negative = discharge
    return {
        "evseId": 1,
        "chargingProfile": {
            "id": API_PROFILE_ID,
            "stackLevel": 0,
            "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Absolute",
            "chargingSchedule": [
                {
                    "id": 1,
                    "startSchedule": _now_iso(),
                    "chargingRateUnit": "W",
                    "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}],
                }
            ],
        },
    }


async def drive_api_commands(
    cfg: RunConfig,
    rate: float,
    stations: list[SimulatedStation],
    rec: Recorder,
    stop: asyncio.Event,
) -> None:
    """Send CSMS-initiated commands through the REST API at `rate` per second (Poisson)."""
    import httpx  # only needed with --api-url

    assert cfg.api_url is not None
    rng = random.Random(cfg.seed + 7)
    actions = [a for a, _ in API_COMMAND_MIX]
    weights = [w for _, w in API_COMMAND_MIX]
    headers = {"Authorization": f"Bearer {cfg.api_token}"} if cfg.api_token else {}
    in_flight: set[asyncio.Task[None]] = set()

    async def one(client: httpx.AsyncClient, station_id: str, action: str) -> None:
        path = cfg.command_path.format(station_id=quote(station_id), action=action)
        started = time.perf_counter()
        try:
            response = await client.post(path, json=api_payload(action, rng))
        except httpx.HTTPError as exc:
            _bump(rec.stats.api_failed, f"{action}:{type(exc).__name__}")
            return
        if response.status_code == 200:
            rec.round_trip(f"api:{action}", time.perf_counter() - started)
            _bump(rec.stats.api_ok, action)
        else:
            _bump(rec.stats.api_failed, f"{action}:{response.status_code}")

    async with httpx.AsyncClient(
        base_url=cfg.api_url.rstrip("/"), headers=headers, timeout=cfg.call_timeout_s
    ) as client:
        while not stop.is_set():
            if not await _sleep_unless(stop, rng.expovariate(rate)):
                break
            ready = [
                s
                for s in stations
                if s.connected.is_set() and s.ws is not None and s.ws.state is websockets.State.OPEN
            ]
            if not ready:
                continue
            station = rng.choice(ready)
            action = rng.choices(actions, weights)[0]
            task = asyncio.create_task(one(client, station.station_id, action))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        if in_flight:
            await asyncio.wait(in_flight, timeout=cfg.call_timeout_s)


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> bool:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return not stop.is_set()


# -- one worker (one process, or in-process for tests) ----------------------------------------
def _watch_collections(stats: WorkerStats) -> Callable[[], None]:
    """Record this process's garbage collections in `stats`; returns the undo."""
    started = 0.0

    def callback(phase: str, info: dict[str, int]) -> None:
        nonlocal started
        if phase == "start":
            started = time.perf_counter()
            return
        pause_ms = (time.perf_counter() - started) * 1000
        stats.gc_longest_pause_ms = max(stats.gc_longest_pause_ms, pause_ms)
        if info["generation"] == 2:
            stats.gc_full_collections += 1

    gc.callbacks.append(callback)
    return lambda: gc.callbacks.remove(callback)


async def run_worker(
    cfg: RunConfig,
    worker: int,
    run_start_wall: float,
    report: Callable[[dict[str, Any]], None],
    *,
    freeze_state: bool = False,
) -> WorkerStats:
    """One worker's stations; `freeze_state` (a worker process of its own, never a test's
    process) keeps their long-lived state out of the garbage collector's walks."""
    rec = Recorder(run_start_wall)
    unwatch = _watch_collections(rec.stats)
    stop = asyncio.Event()
    limit = None
    if cfg.max_messages is not None:
        limit = math.ceil(cfg.max_messages / cfg.processes)
    budget = MessageBudget(limit, stop)
    ids = cfg.station_ids(worker)
    rec.stats.stations = len(ids)
    stations = [
        SimulatedStation(sid, worker + i * cfg.processes, cfg, rec, stop, budget)
        for i, sid in enumerate(ids)
    ]
    acks = open(f"{cfg.acks_path}.w{worker}", "w") if cfg.acks_path else None  # noqa: ASYNC230, SIM115
    for station in stations:
        station.acks = acks
    deadline = run_start_wall + cfg.duration_s
    # All workers start together at the shared origin.
    await asyncio.sleep(max(0.0, run_start_wall - time.time()))

    async def launch() -> list[asyncio.Task[None]]:
        tasks = []
        # connect_rate is for the whole run; this worker opens its share of it.
        per_worker_rate = cfg.connect_rate / cfg.processes if cfg.connect_rate > 0 else 0
        for i, station in enumerate(stations):
            if cfg.scenario != "boot-storm" and per_worker_rate > 0:
                due = run_start_wall + i / per_worker_rate
                if not await _sleep_unless(stop, max(0.0, due - time.time())):
                    break
            tasks.append(asyncio.create_task(station.run(cfg.scenario)))
        return tasks

    async def watchdog() -> None:
        while not stop.is_set():
            now = time.time()
            if now >= deadline:
                break
            if cfg.scenario == "boot-storm" and (
                rec.stats.boots_accepted + sum(rec.stats.connect_failures.values()) >= len(stations)
            ):
                break
            await _sleep_unless(stop, min(0.1, deadline - now))
        stop.set()

    async def progress() -> None:
        while await _sleep_unless(stop, cfg.progress_interval_s):
            report(
                {
                    "kind": "progress",
                    "worker": worker,
                    "connected": rec.stats.connected,
                    "booted": rec.stats.boots_accepted,
                    "completed": rec.total_completed(),
                    "errors": sum(rec.stats.errors.values()),
                    "timeouts": sum(rec.stats.timeouts.values()),
                }
            )

    async def freeze_when_booted() -> None:
        # The stations' state lives as long as the run: out of the collector's sight, a full
        # collection no longer walks it (it paused this process up to 600 ms with 5,000
        # stations, and every reply awaited meanwhile counted as the server's latency).
        # gc.freeze() only moves objects to the permanent generation: no pause.
        while not stop.is_set() and rec.stats.boots_accepted < len(stations):
            gc.freeze()
            await _sleep_unless(stop, 1.0)
        gc.freeze()

    helpers = [
        asyncio.create_task(watchdog()),
        asyncio.create_task(progress()),
    ]
    if freeze_state:
        helpers.append(asyncio.create_task(freeze_when_booted()))
    if cfg.api_url and cfg.commands_per_s > 0:
        rate = cfg.commands_per_s / cfg.processes
        helpers.append(asyncio.create_task(drive_api_commands(cfg, rate, stations, rec, stop)))
    station_tasks = await launch()
    await stop.wait()
    # Stations finish the call they are in (bounded by the call timeout), then close.
    if station_tasks:
        await asyncio.wait(station_tasks, timeout=cfg.call_timeout_s + 5)
    for task in station_tasks:
        task.cancel()
    await asyncio.gather(*station_tasks, *helpers, return_exceptions=True)
    if acks is not None:
        acks.close()
    unwatch()
    return rec.snapshot()


def _raise_fd_limit(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(hard, max(soft, wanted))
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _worker_process(
    cfg: RunConfig, worker: int, run_start_wall: float, out: multiprocessing.Queue[Any]
) -> None:
    _raise_fd_limit(cfg.stations // cfg.processes + 256)
    if cfg.use_uvloop:
        with contextlib.suppress(ImportError):
            import uvloop

            uvloop.install()
    try:
        stats = asyncio.run(run_worker(cfg, worker, run_start_wall, out.put, freeze_state=True))
        out.put({"kind": "final", "worker": worker, "stats": stats.to_json()})
    except BaseException as exc:  # reported, so the coordinator does not wait forever
        out.put({"kind": "failed", "worker": worker, "error": repr(exc)})
        raise


# -- the CSMS process: CPU and memory from /proc ----------------------------------------------
def _process_tree(pid: int) -> list[int]:
    children: defaultdict[int, list[int]] = defaultdict(list)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            children[int(fields[1])].append(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime, stime (fields 14, 15 of stat; after the command name they are at 11, 12)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def cpu_at(samples: list[tuple[float, float]], wall: float) -> float:
    """Cumulative CPU seconds at `wall`, interpolated between the (wall time, CPU seconds)
    samples around it; ValueError outside the samples. (bench_csms.py cuts the database
    server's steady-state CPU out of its own samples with it.)"""
    samples = sorted(samples)
    if not samples or not samples[0][0] <= wall <= samples[-1][0]:
        span = f"{samples[0][0]:.3f}..{samples[-1][0]:.3f}" if samples else "no samples"
        raise ValueError(f"CPU sampled over {span}; {wall:.3f} is outside it")
    for (t0, c0), (t1, c1) in itertools.pairwise(samples):
        if t0 <= wall <= t1:
            return c0 if t1 == t0 else c0 + (c1 - c0) * (wall - t0) / (t1 - t0)
    return samples[-1][1]  # a single sample exactly at `wall`


class ServerSampler:
    """Samples the CSMS process tree (the PID and its descendants) four times a second."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._cpu_start = self.cpu_seconds()
        self.cpu_used = 0.0
        self.interval_s = 0.25
        # (wall time, CPU s): at start(), every `interval_s` while running, and at finish().
        self.cpu_samples: list[tuple[float, float]] = []

    def cpu_seconds(self) -> float:
        total = 0.0
        for pid in _process_tree(self.pid):
            with contextlib.suppress(OSError, IndexError, ValueError):
                total += _cpu_seconds(pid)
        return total

    def rss(self) -> int:
        total = 0
        for pid in _process_tree(self.pid):
            with contextlib.suppress(OSError, ValueError):
                total += _rss_bytes(pid)
        return total

    def _sample(self) -> None:
        self.cpu_samples.append((time.time(), self.cpu_seconds()))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak_rss = max(self.peak_rss, self.rss())
            self._sample()

    def cpu_at(self, wall: float) -> float:
        """The cumulative CPU seconds at `wall` (see `cpu_at`). `start()` and `finish()` each
        take a sample, so any time within the run is covered however late the sampling thread
        ran under load."""
        return cpu_at(self.cpu_samples, wall)

    def cpu_rate(self, from_wall: float, to_wall: float) -> float:
        """CPU seconds per second of the CSMS between `from_wall` and `to_wall` (within the run;
        ValueError otherwise, or for an empty interval)."""
        if to_wall <= from_wall:
            raise ValueError(f"empty CPU window {from_wall:.3f}..{to_wall:.3f}")
        return (self.cpu_at(to_wall) - self.cpu_at(from_wall)) / (to_wall - from_wall)

    def start(self) -> None:
        self.peak_rss = self.rss()
        self._cpu_start = self.cpu_seconds()
        self._sample()
        self._thread.start()

    def finish(self) -> None:
        self.peak_rss = max(self.peak_rss, self.rss())
        self.cpu_used = self.cpu_seconds() - self._cpu_start
        self._sample()
        self._stop.set()
        self._thread.join(2)


# -- the whole run ---------------------------------------------------------------------------
def merge(stats: list[WorkerStats]) -> WorkerStats:
    total = WorkerStats()
    latency: defaultdict[str, LatencyHistogram] = defaultdict(LatencyHistogram)
    for s in stats:
        total.stations += s.stations
        total.connected += s.connected
        total.unexpected_disconnects += s.unexpected_disconnects
        total.reconnects += s.reconnects
        total.boots_accepted += s.boots_accepted
        total.gc_full_collections += s.gc_full_collections
        total.gc_longest_pause_ms = max(total.gc_longest_pause_ms, s.gc_longest_pause_ms)
        if s.last_boot_accepted_at is not None:
            total.last_boot_accepted_at = max(
                total.last_boot_accepted_at or 0.0, s.last_boot_accepted_at
            )
        for name in (
            "connect_failures",
            "boot_not_accepted",
            "sent",
            "completed",
            "errors",
            "timeouts",
            "csms_calls_answered",
            "api_ok",
            "api_failed",
        ):
            target = getattr(total, name)
            for key, n in getattr(s, name).items():
                _bump(target, key, n)
        for second, n in s.per_second.items():
            total.per_second[second] = total.per_second.get(second, 0) + n
        for kind, histogram in s.latency.items():
            latency[kind].merge(histogram)
        for second, kinds in s.latency_by_second.items():
            target_kinds = total.latency_by_second.setdefault(second, {})
            for kind, histogram in kinds.items():
                target_kinds.setdefault(kind, LatencyHistogram()).merge(histogram)
    total.latency = dict(latency)
    return total


def steady_window(cfg: RunConfig, total: WorkerStats, elapsed_s: float) -> tuple[int, int] | None:
    """Whole seconds [first, last] of the steady state: from the second after the last boot
    was accepted to the last whole second before the run's end (--duration, or earlier when
    --max-messages stopped it): no connect ramp, no final drain (calls still in flight when
    the run stops, Ended with --end-transactions). None for boot-storm or a too short run."""
    if cfg.scenario == "boot-storm" or total.last_boot_accepted_at is None:
        return None
    first = int(total.last_boot_accepted_at) + 1
    last = int(min(cfg.duration_s, elapsed_s)) - 1
    return (first, last) if last >= first else None


def _latency_rows(histograms: dict[str, LatencyHistogram]) -> dict[str, dict[str, float]]:
    return {
        kind: {
            "count": h.count,
            "p50_ms": h.percentile(50) * 1e3,
            "p95_ms": h.percentile(95) * 1e3,
            "p99_ms": h.percentile(99) * 1e3,
            "max_ms": h.max_s * 1e3,
            "mean_ms": h.total_s / h.count * 1e3 if h.count else math.nan,
        }
        for kind, h in sorted(histograms.items())
    }


def summarize(
    cfg: RunConfig,
    total: WorkerStats,
    elapsed_s: float,
    sampler: ServerSampler | None,
    started: float | None = None,
) -> dict[str, Any]:
    """The result; `started` is the wall time of the run's origin (for the steady window's
    server CPU)."""
    station_calls = sum(total.completed.values())
    csms_calls = sum(total.csms_calls_answered.values())
    messages = station_calls + csms_calls
    # Steady state: whole seconds after the last boot was accepted, to the end of the run.
    window = steady_window(cfg, total, elapsed_s)
    steady_rate = None
    steady: dict[str, LatencyHistogram] = defaultdict(LatencyHistogram)
    if window is not None:
        first, last = window
        seconds = range(first, last + 1)
        steady_rate = sum(total.per_second.get(s, 0) for s in seconds) / len(seconds)
        for second in seconds:
            for kind, histogram in total.latency_by_second.get(second, {}).items():
                steady[kind].merge(histogram)
    latency = _latency_rows(total.latency)
    result: dict[str, Any] = {
        "scenario": cfg.scenario,
        "url": cfg.url,
        "stations": cfg.stations,
        "processes": cfg.processes,
        "duration_s": round(elapsed_s, 3),
        "connected": total.connected,
        "connect_failures": total.connect_failures,
        "unexpected_disconnects": total.unexpected_disconnects,
        "reconnects": total.reconnects,
        "boots_accepted": total.boots_accepted,
        "boot_not_accepted": total.boot_not_accepted,
        "time_to_all_booted_s": (
            round(total.last_boot_accepted_at, 3)
            if total.boots_accepted == cfg.stations and total.last_boot_accepted_at is not None
            else None
        ),
        "calls_sent": dict(sorted(total.sent.items())),
        "calls_completed": dict(sorted(total.completed.items())),
        "call_errors": dict(sorted(total.errors.items())),
        "call_timeouts": dict(sorted(total.timeouts.items())),
        "csms_calls_answered": dict(sorted(total.csms_calls_answered.items())),
        "api_ok": dict(sorted(total.api_ok.items())),
        "api_failed": dict(sorted(total.api_failed.items())),
        "messages_handled": messages,
        "calls_per_s": messages / elapsed_s if elapsed_s > 0 else 0.0,
        "steady_calls_per_s": steady_rate,
        "latency": latency,
        # Calls sent within the steady window (whole seconds since the start, end exclusive).
        "steady_window_s": [window[0], window[1] + 1] if window is not None else None,
        # Wall time (Unix seconds) of second 0: other samplers (the database server's CPU in
        # bench_csms.py) cut the same window out of their own samples.
        "started_wall": started,
        "steady_latency": _latency_rows(steady),
        "per_second": [total.per_second.get(s, 0) for s in range(int(elapsed_s) + 1)],
        "generator_gc": {
            "full_collections": total.gc_full_collections,
            "longest_pause_ms": round(total.gc_longest_pause_ms, 1),
        },
    }
    if sampler is not None:
        result["server"] = {
            "pid": sampler.pid,
            "cpu_s": round(sampler.cpu_used, 3),
            "cpu_s_per_1000_messages": (sampler.cpu_used / (messages / 1000) if messages else None),
            "peak_rss_mb": round(sampler.peak_rss / 2**20, 1),
        }
        # CPU per message in the steady window alone (no handshakes, boots or drain).
        # Always a figure, or None with the reason in "steady_cpu_error".
        steady_k: float | None = None
        error: str | None = None
        if window is None or started is None:
            error = "no steady window (not every station booted before --duration ended)"
        elif not steady_rate:
            error = "no messages in the steady window"
        else:
            try:
                rate = sampler.cpu_rate(started + window[0], started + window[1] + 1)
            except ValueError as exc:
                error = f"steady window outside the CPU samples: {exc}"
            else:
                steady_k = rate / steady_rate * 1000
        result["server"]["steady_cpu_s_per_1000_messages"] = steady_k
        if error is not None:
            result["server"]["steady_cpu_error"] = error
    return result


def format_table(result: dict[str, Any]) -> str:
    lines = [
        f"scenario {result['scenario']}  url {result['url']}  stations {result['stations']}"
        f"  processes {result['processes']}  ran {result['duration_s']:.1f} s",
        f"connected {result['connected']}/{result['stations']}  boots accepted "
        f"{result['boots_accepted']}  time to all booted {result['time_to_all_booted_s']} s"
        f"  connect failures {result['connect_failures'] or 0}"
        f"  unexpected disconnects {result['unexpected_disconnects']}"
        f"  reconnects {result.get('reconnects', 0)}",
        f"messages handled {result['messages_handled']}  calls/s {result['calls_per_s']:.0f}"
        + (
            f" (steady {result['steady_calls_per_s']:.0f})"
            if result["steady_calls_per_s"] is not None
            else ""
        )
        + f"  errors {sum(result['call_errors'].values())}"
        f"  timeouts {sum(result['call_timeouts'].values())}",
        f"{'message type':<26}{'count':>9}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}{'max ms':>10}",
    ]
    for kind, row in result["latency"].items():
        lines.append(
            f"{kind:<26}{row['count']:>9}{row['p50_ms']:>10.2f}{row['p95_ms']:>10.2f}"
            f"{row['p99_ms']:>10.2f}{row['max_ms']:>10.2f}"
        )
    window = result.get("steady_window_s")
    if window is not None and result.get("steady_latency"):
        lines.append(f"steady state: calls sent in seconds {window[0]}-{window[1]} of the run")
        for kind, row in result["steady_latency"].items():
            lines.append(
                f"  {kind:<24}{row['count']:>9}{row['p50_ms']:>10.2f}{row['p95_ms']:>10.2f}"
                f"{row['p99_ms']:>10.2f}{row['max_ms']:>10.2f}"
            )
    if result["csms_calls_answered"]:
        lines.append(f"CSMS-initiated calls answered: {result['csms_calls_answered']}")
    if result["api_ok"] or result["api_failed"]:
        lines.append(f"API commands ok {result['api_ok']}  failed {result['api_failed']}")
    if result["call_errors"]:
        lines.append(f"call errors {result['call_errors']}")
    if result.get("generator_cpu_s") is not None:
        lines.append(f"load generator CPU {result['generator_cpu_s']:.2f} s")
    gc_seen = result.get("generator_gc")
    if gc_seen:
        lines.append(
            f"load generator GC: {gc_seen['full_collections']} full collections, longest "
            f"pause {gc_seen['longest_pause_ms']:.1f} ms"
        )
    server = result.get("server")
    if server:
        per_k = server["cpu_s_per_1000_messages"]
        lines.append(
            f"CSMS pid {server['pid']}: CPU {server['cpu_s']:.2f} s"
            + (f" = {per_k:.3f} s per 1,000 messages" if per_k is not None else "")
            + f", peak RSS {server['peak_rss_mb']:.1f} MB"
        )
        steady_k = server.get("steady_cpu_s_per_1000_messages")
        if steady_k is not None:
            lines.append(f"  steady state: {steady_k:.3f} s of CSMS CPU per 1,000 messages")
    return "\n".join(lines)


def validate_config(cfg: RunConfig) -> None:
    require_loopback(cfg.url)
    if urlsplit(cfg.url).scheme not in ("ws", "wss"):
        raise ValueError("--url must be ws:// or wss://")
    if cfg.api_url:
        require_loopback(cfg.api_url)
    if not 1 <= cfg.stations <= MAX_STATIONS:
        raise ValueError(f"--stations must be 1..{MAX_STATIONS}")
    if not 1 <= cfg.processes <= cfg.stations:
        raise ValueError("--processes must be 1..stations")
    if cfg.scenario not in SCENARIOS:
        raise ValueError(f"--scenario must be one of {SCENARIOS}")
    if cfg.duration_s <= 0 or cfg.meter_interval_s <= 0:
        raise ValueError("--duration and --meter-interval must be positive")
    if cfg.commands_per_s > 0 and not cfg.api_url:
        raise ValueError("--commands-per-s needs --api-url")


def _progress_line(started: float, latest: dict[int, dict[str, Any]], last: list[float]) -> str:
    elapsed = time.time() - started
    completed = sum(p["completed"] for p in latest.values())
    rate = (completed - last[1]) / max(elapsed - last[0], 1e-9)
    last[0], last[1] = elapsed, completed
    return (
        f"[{elapsed:6.1f} s] connected {sum(p['connected'] for p in latest.values())}"
        f"  booted {sum(p['booted'] for p in latest.values())}  round trips {completed}"
        f"  ({rate:.0f}/s)  errors {sum(p['errors'] for p in latest.values())}"
        f"  timeouts {sum(p['timeouts'] for p in latest.values())}"
    )


async def run_in_process(cfg: RunConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """The whole run in the current event loop, one worker (for tests and small runs)."""
    if cfg.processes != 1:
        raise ValueError("run_in_process runs one worker; use run() for --processes > 1")
    validate_config(cfg)
    sampler = ServerSampler(cfg.server_pid) if cfg.server_pid else None
    if sampler:
        sampler.start()
    started = time.time()
    latest: dict[int, dict[str, Any]] = {}
    last = [0.0, 0]

    def report(message: dict[str, Any]) -> None:
        latest[message["worker"]] = message
        log(_progress_line(started, latest, last))

    stats = await run_worker(cfg, 0, started, report)
    elapsed = time.time() - started
    if sampler:
        sampler.finish()
    return summarize(cfg, merge([stats]), elapsed, sampler, started)


def run(cfg: RunConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """The whole run with `cfg.processes` worker processes."""
    validate_config(cfg)
    context = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue[Any] = context.Queue()
    sampler = ServerSampler(cfg.server_pid) if cfg.server_pid else None
    started = time.time() + 1.0  # workers need a moment to start; all share this origin
    workers = [
        context.Process(target=_worker_process, args=(cfg, w, started, out), daemon=True)
        for w in range(cfg.processes)
    ]
    for process in workers:
        process.start()
    if sampler:
        sampler.start()
    children_cpu_before = _children_cpu_s()
    finals: dict[int, WorkerStats] = {}
    failures: list[str] = []
    latest: dict[int, dict[str, Any]] = {}
    last = [0.0, 0]
    hard_deadline = started + cfg.duration_s + cfg.call_timeout_s + 60
    while len(finals) + len(failures) < cfg.processes and time.time() < hard_deadline:
        try:
            message = out.get(timeout=1.0)
        except queue.Empty:
            if all(not p.is_alive() for p in workers) and out.empty():
                break
            continue
        if message["kind"] == "progress":
            latest[message["worker"]] = message
            # One line per interval, once every worker has reported in it.
            if time.time() - started - last[0] >= cfg.progress_interval_s * 0.8:
                log(_progress_line(started, latest, last))
        elif message["kind"] == "final":
            finals[message["worker"]] = WorkerStats.from_json(message["stats"])
        else:
            failures.append(f"worker {message['worker']}: {message['error']}")
    elapsed = time.time() - started
    if sampler:
        sampler.finish()
    for process in workers:
        process.join(5)
        if process.is_alive():
            process.terminate()
    if failures or len(finals) < cfg.processes:
        raise RuntimeError("load generator workers failed: " + "; ".join(failures or ["timeout"]))
    result = summarize(cfg, merge(list(finals.values())), elapsed, sampler, started)
    # The generator shares the machine with the CSMS: show what it cost.
    result["generator_cpu_s"] = round(_children_cpu_s() - children_cpu_before, 3)
    return result


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def parse_args(argv: list[str] | None = None) -> RunConfig:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--url", default=RunConfig.url, help="CSMS base URL; station id appended")
    p.add_argument(
        "--stations",
        "-n",
        type=int,
        default=RunConfig.stations,
        help=f"station connections (1..{MAX_STATIONS})",
    )
    p.add_argument("--processes", type=int, default=1, help="worker processes")
    p.add_argument("--id-prefix", default=RunConfig.id_prefix)
    p.add_argument("--password", default=None, help="Basic auth password (user = station id)")
    p.add_argument("--scenario", choices=SCENARIOS, default="mix")
    p.add_argument("--duration", type=float, default=RunConfig.duration_s, help="seconds")
    p.add_argument(
        "--max-messages",
        type=int,
        default=None,
        help="stop after this many station-initiated messages (whole run)",
    )
    p.add_argument("--meter-interval", type=float, default=RunConfig.meter_interval_s)
    p.add_argument(
        "--heartbeat-interval",
        type=float,
        default=None,
        help="override the interval the CSMS gives at boot",
    )
    p.add_argument(
        "--idle-mean",
        type=float,
        default=RunConfig.idle_mean_s,
        help="mix: mean seconds between transactions",
    )
    p.add_argument(
        "--transaction-mean",
        type=float,
        default=RunConfig.transaction_mean_s,
        help="mix: mean transaction length, seconds",
    )
    p.add_argument(
        "--end-transactions",
        action="store_true",
        help="mix: when the run ends, end every open transaction (a burst; outside the "
        "steady-state window) instead of leaving them open",
    )
    p.add_argument(
        "--connect-rate",
        type=float,
        default=RunConfig.connect_rate,
        help="new connections per second (0 = all at once; boot-storm ignores it)",
    )
    p.add_argument("--call-timeout", type=float, default=RunConfig.call_timeout_s)
    p.add_argument("--api-url", default=None, help="CSMS REST API base, e.g. http://127.0.0.1:8000")
    p.add_argument("--api-token", default=None, help="bearer token for the REST API")
    p.add_argument(
        "--commands-per-s",
        type=float,
        default=0.0,
        help="CSMS-initiated commands per second through the REST API",
    )
    p.add_argument(
        "--command-path",
        default=RunConfig.command_path,
        help="API path template with {station_id} and {action}",
    )
    p.add_argument(
        "--server-pid",
        type=int,
        default=None,
        help="CSMS PID: report its CPU s per 1,000 messages and peak RSS",
    )
    p.add_argument("--progress-interval", type=float, default=RunConfig.progress_interval_s)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", dest="json_path", default=None, help="write the result here")
    p.add_argument("--no-uvloop", dest="use_uvloop", action="store_false")
    p.add_argument(
        "--reconnect",
        action="store_true",
        help="a dropped station reconnects, boots again and re-sends its unanswered call",
    )
    p.add_argument(
        "--acks",
        dest="acks_path",
        default=None,
        help="write acknowledged TransactionEvent/MeterValues to ACKS.w<worker> (TSV)",
    )
    a = p.parse_args(argv)
    return RunConfig(
        url=a.url,
        stations=a.stations,
        processes=a.processes,
        id_prefix=a.id_prefix,
        password=a.password,
        scenario=a.scenario,
        duration_s=a.duration,
        max_messages=a.max_messages,
        meter_interval_s=a.meter_interval,
        heartbeat_interval_s=a.heartbeat_interval,
        idle_mean_s=a.idle_mean,
        transaction_mean_s=a.transaction_mean,
        end_transactions=a.end_transactions,
        connect_rate=a.connect_rate,
        call_timeout_s=a.call_timeout,
        api_url=a.api_url,
        api_token=a.api_token,
        commands_per_s=a.commands_per_s,
        command_path=a.command_path,
        server_pid=a.server_pid,
        progress_interval_s=a.progress_interval,
        seed=a.seed,
        json_path=a.json_path,
        use_uvloop=a.use_uvloop,
        reconnect=a.reconnect,
        acks_path=a.acks_path,
    )


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    try:
        validate_config(cfg)
    except ValueError as refused:
        print(f"loadgen: {refused}", file=sys.stderr)
        return 2
    result = run(cfg, log=lambda line: print(line, file=sys.stderr, flush=True))
    print(format_table(result))
    if cfg.json_path:
        with open(cfg.json_path, "w") as f:
            json.dump(result, f, indent=2, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
