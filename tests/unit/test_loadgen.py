"""The load generator against the bare websockets responder, small N, on loopback."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from benchmarks.bare_responder import BareResponder
from benchmarks.loadgen import (
    LatencyHistogram,
    RemoteTargetRefused,
    RunConfig,
    ServerSampler,
    WorkerStats,
    _watch_collections,
    main,
    merge,
    require_loopback,
    run_in_process,
)

REPO = Path(__file__).resolve().parents[2]
STATION_ACTIONS = {"BootNotification", "StatusNotification", "TransactionEvent", "Heartbeat"}


def _quiet(_line: str) -> None:
    pass


def test_histogram_percentiles_are_within_two_percent_and_merge() -> None:
    whole, low, high = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    for ms in range(1, 1001):
        whole.add(ms / 1000)
        (low if ms <= 500 else high).add(ms / 1000)
    low.merge(high)
    for p, expected in ((50, 0.5), (95, 0.95), (99, 0.99)):
        assert whole.percentile(p) == pytest.approx(expected, rel=0.02)
        assert low.percentile(p) == whole.percentile(p)
    assert whole.percentile(100) == pytest.approx(1.0)
    assert (low.count, low.max_s) == (1000, 1.0)
    assert LatencyHistogram.from_json(json.loads(json.dumps(whole.to_json()))) == whole


@pytest.mark.parametrize(
    "url",
    [
        "ws://10.0.0.1:9000/ocpp",
        "ws://192.168.1.20/ocpp",
        "ws://example.com/ocpp",
        "ws://[2001:db8::1]:9000/ocpp",
        "http://0.0.0.0:8000",
    ],
)
def test_non_loopback_targets_are_refused(url: str) -> None:
    with pytest.raises(RemoteTargetRefused):
        require_loopback(url)


@pytest.mark.parametrize(
    "url", ["ws://127.0.0.1:9000/ocpp", "ws://127.0.0.2/ocpp", "ws://[::1]:9000/ocpp"]
)
def test_loopback_targets_are_allowed(url: str) -> None:
    require_loopback(url)


@pytest.mark.parametrize(
    "argv",
    [
        ["--url", "ws://10.1.2.3:9000/ocpp"],
        ["--api-url", "http://10.1.2.3:8000", "--commands-per-s", "1"],
        ["--stations", "10001"],
        ["--commands-per-s", "5"],  # needs --api-url
    ],
)
def test_cli_refuses_bad_runs_before_connecting(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--url", "ws://127.0.0.1:1/ocpp", *argv]) == 2
    assert "loadgen:" in capsys.readouterr().err


async def test_mix_counts_add_up_with_api_commands() -> None:
    async with BareResponder(api_port=0, api_token="t0ken", heartbeat_interval=1) as responder:
        cfg = RunConfig(
            url=f"ws://127.0.0.1:{responder.port}/ocpp",
            stations=20,
            scenario="mix",
            duration_s=3.0,
            meter_interval_s=0.3,
            idle_mean_s=0.4,
            transaction_mean_s=1.0,
            connect_rate=0,
            api_url=f"http://127.0.0.1:{responder.api_port}",
            api_token="t0ken",
            commands_per_s=10,
            server_pid=os.getpid(),  # the responder runs in this process
            progress_interval_s=1.0,
        )
        result = await run_in_process(cfg, log=_quiet)
        received = dict(responder.received)
        answered = dict(responder.csms_calls_answered)

    assert (result["connected"], result["boots_accepted"]) == (20, 20)
    assert result["time_to_all_booted_s"] is not None
    assert result["unexpected_disconnects"] == 0
    assert result["call_errors"] == {} and result["call_timeouts"] == {}
    # Every CALL the stations sent was received by the server and answered.
    assert result["calls_sent"] == result["calls_completed"] == received
    assert set(received) == STATION_ACTIONS
    assert received["BootNotification"] == 20
    assert received["TransactionEvent"] >= 3  # at least one Started/Updated/Ended
    # Every API command reached a station and its answer came back through the API.
    assert result["csms_calls_answered"] == answered == result["api_ok"]
    assert sum(answered.values()) > 0 and result["api_failed"] == {}
    assert result["messages_handled"] == sum(received.values()) + sum(answered.values())
    assert sum(result["per_second"]) == result["messages_handled"]
    for action, n in received.items():
        assert result["latency"][action]["count"] == n
        assert 0 < result["latency"][action]["p50_ms"] <= result["latency"][action]["p99_ms"]
    assert result["server"]["cpu_s"] > 0 and result["server"]["peak_rss_mb"] > 0


async def test_boot_heartbeat_sends_back_to_back_and_counts_add_up() -> None:
    async with BareResponder() as responder:
        cfg = RunConfig(
            url=f"ws://127.0.0.1:{responder.port}/ocpp",
            stations=10,
            scenario="boot-heartbeat",
            duration_s=2.5,
            connect_rate=0,
        )
        result = await run_in_process(cfg, log=_quiet)
        received = dict(responder.received)
    assert received == result["calls_completed"] == result["calls_sent"]
    assert set(received) == {"BootNotification", "Heartbeat"}
    assert received["Heartbeat"] > 10 * 20  # back-to-back: far more than one per station
    assert result["steady_calls_per_s"] is not None and result["steady_calls_per_s"] > 0


async def test_max_messages_stops_the_run_early() -> None:
    async with BareResponder() as responder:
        cfg = RunConfig(
            url=f"ws://127.0.0.1:{responder.port}/ocpp",
            stations=5,
            scenario="boot-heartbeat",
            duration_s=60,
            max_messages=100,
            connect_rate=0,
        )
        result = await run_in_process(cfg, log=_quiet)
    assert result["calls_completed"]["Heartbeat"] <= 100
    assert result["duration_s"] < 30


async def test_boot_storm_ends_when_all_are_accepted() -> None:
    async with BareResponder() as responder:
        cfg = RunConfig(
            url=f"ws://127.0.0.1:{responder.port}/ocpp",
            stations=30,
            scenario="boot-storm",
            duration_s=60,
        )
        result = await run_in_process(cfg, log=_quiet)
        total_connections = responder.connections_total
    assert result["boots_accepted"] == 30 == total_connections
    assert result["time_to_all_booted_s"] is not None
    assert result["duration_s"] < 30  # it did not wait for --duration
    assert result["calls_completed"] == {"BootNotification": 30}


async def test_connection_refused_is_counted_not_fatal() -> None:
    async with BareResponder() as responder:
        port = responder.port
    cfg = RunConfig(
        url=f"ws://127.0.0.1:{port}/ocpp",
        stations=3,
        scenario="boot-storm",
        duration_s=5,
        call_timeout_s=2,
    )
    result = await run_in_process(cfg, log=_quiet)
    assert result["connected"] == 0
    assert sum(result["connect_failures"].values()) == 3


async def test_cli_with_two_processes_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    async with BareResponder() as responder:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(REPO / "benchmarks" / "loadgen.py"),
            "--url", f"ws://127.0.0.1:{responder.port}/ocpp",
            "--stations", "20", "--processes", "2", "--scenario", "boot-heartbeat",
            "--duration", "2", "--progress-interval", "1", "--json", str(out),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
        received = dict(responder.received)
    assert process.returncode == 0, stderr.decode()
    result = json.loads(out.read_text())
    assert (result["processes"], result["connected"], result["boots_accepted"]) == (2, 20, 20)
    assert result["calls_completed"] == received
    assert "Heartbeat" in stdout.decode() and "p99 ms" in stdout.decode()
    assert "round trips" in stderr.decode()  # progress lines
    # The generator's own collections are reported (their pauses would count as latency).
    assert set(result["generator_gc"]) == {"full_collections", "longest_pause_ms"}
    assert "load generator GC:" in stdout.decode()


def test_each_workers_collections_are_recorded_and_merged() -> None:
    first, second = WorkerStats(), WorkerStats()
    undo = _watch_collections(first)
    try:
        gc.collect()
        gc.collect()
    finally:
        undo()
    gc.collect()  # after the undo: not recorded
    assert first.gc_full_collections == 2 and first.gc_longest_pause_ms > 0
    second.gc_full_collections, second.gc_longest_pause_ms = 3, 1e6
    total = merge([first, second])
    assert (total.gc_full_collections, total.gc_longest_pause_ms) == (5, 1e6)


@pytest.mark.parametrize(("given", "connected"), [("s3cret-s3cret-16", 4), ("wrong-password!!", 0)])
async def test_password_is_sent_as_basic_auth(given: str, connected: int) -> None:
    async with BareResponder(password="s3cret-s3cret-16") as responder:
        cfg = RunConfig(
            url=f"ws://127.0.0.1:{responder.port}/ocpp",
            stations=4,
            scenario="boot-storm",
            duration_s=10,
            password=given,
        )
        result = await run_in_process(cfg, log=_quiet)
        rejected = responder.auth_rejected
    assert result["connected"] == connected
    assert rejected == 4 - connected
    if connected == 0:
        assert result["connect_failures"] == {"InvalidStatus:401": 4}


async def test_pending_boot_is_retried_after_the_interval() -> None:
    async with BareResponder(pending_boots=1) as responder:
        cfg = RunConfig(
            url=f"ws://127.0.0.1:{responder.port}/ocpp",
            stations=3,
            scenario="boot-storm",
            duration_s=20,
        )
        result = await run_in_process(cfg, log=_quiet)
        boots = dict(responder.boots)
    assert result["boots_accepted"] == 3
    assert result["boot_not_accepted"] == {"Pending": 3}
    assert boots == {f"LOAD{i}": 2 for i in range(3)}
    assert result["time_to_all_booted_s"] >= 1.0  # waited the Pending interval (1 s)


def _mix_at_random_phases(
    port: int,
    *,
    end_transactions: bool,
    stations: int,
    duration_s: float = 1.5,
    connect_rate: float = 0,
) -> RunConfig:
    # Half the time in a transaction (equal means), nothing periodic within the run: what is
    # sent shows where each station's cycle started and what happens at the end.
    return RunConfig(
        url=f"ws://127.0.0.1:{port}/ocpp",
        stations=stations,
        scenario="mix",
        duration_s=duration_s,
        meter_interval_s=1e6,
        heartbeat_interval_s=1e6,
        idle_mean_s=1000.0,
        transaction_mean_s=1000.0,
        connect_rate=connect_rate,
        end_transactions=end_transactions,
    )


async def test_mix_starts_each_station_at_a_random_point_of_its_cycle() -> None:
    async with BareResponder() as responder:
        # Paced (200 connections over 2 s, not one burst of 200 handshakes) and a run long
        # enough for a loaded 2-core box (it booted 138 of 200 in 1.5 s all at once): nothing
        # is periodic (means of 1000 s), so the spare seconds cost no CPU.
        cfg = _mix_at_random_phases(
            responder.port, end_transactions=False, stations=200, duration_s=10.0, connect_rate=100
        )
        result = await run_in_process(cfg, log=_quiet)
    booted = result["boots_accepted"]
    seen = {
        key: result[key]
        for key in (
            "connected",
            "connect_failures",
            "unexpected_disconnects",
            "boot_not_accepted",
            "call_errors",
            "call_timeouts",
            "duration_s",
            "time_to_all_booted_s",
        )
    }
    # Nothing failed, and every station that connected booted.
    for failure_kind in ("connect_failures", "boot_not_accepted", "call_errors", "call_timeouts"):
        assert not result[failure_kind], seen
    assert booted == result["connected"], seen
    # CI once booted 151 of 200 within the run (the failure kinds were not reported then; they
    # are now): all 200 on an idle box, and the phase check below needs only enough of them.
    assert booted >= 150, seen
    started = result["calls_completed"].get("TransactionEvent", 0)
    # P(in a transaction) = 1000 / (1000 + 1000): about half of them (binomial, 4.5 sd).
    spread = 4.5 * (booted**0.5) / 2
    assert booted / 2 - spread <= started <= booted / 2 + spread
    # One Available after each boot and one Occupied before each Started (an Ended would
    # add one of each); that no Ended burst comes at the end: the test below.
    assert result["calls_completed"]["StatusNotification"] == booted + started
    assert result["calls_completed"].get("Heartbeat", 0) == 0


async def test_end_transactions_ends_the_open_ones_after_the_steady_window() -> None:
    results = {}
    for end in (False, True):
        async with BareResponder() as responder:
            cfg = _mix_at_random_phases(
                responder.port, end_transactions=end, stations=60, duration_s=2.5
            )
            results[end] = await run_in_process(cfg, log=_quiet)
    completed = results[True]["calls_completed"]
    booted = results[True]["boots_accepted"]
    started = completed["TransactionEvent"] // 2
    assert started > 0
    assert completed["TransactionEvent"] == 2 * started  # Started, then Ended at the end
    assert completed["StatusNotification"] == booted + 2 * started  # ... and Available again
    if results[False]["boots_accepted"] == booted == 60:
        # Same seed, everyone booted in both runs: the same stations were in a transaction.
        assert results[False]["calls_completed"]["TransactionEvent"] == started
    # The Ended burst is sent after --duration: outside the steady window, in the whole run.
    result = results[True]
    first, end_s = result["steady_window_s"]
    assert first > result["time_to_all_booted_s"] and end_s <= cfg.duration_s
    assert result["steady_latency"].get("TransactionEvent", {"count": 0})["count"] <= started
    assert result["latency"]["TransactionEvent"]["count"] == 2 * started


async def test_steady_state_figures_cover_the_window_only() -> None:
    async with BareResponder() as responder:
        cfg = RunConfig(
            url=f"ws://127.0.0.1:{responder.port}/ocpp",
            stations=10,
            scenario="boot-heartbeat",
            duration_s=3.5,
            connect_rate=0,
            server_pid=os.getpid(),
        )
        result = await run_in_process(cfg, log=_quiet)
    first, end = result["steady_window_s"]
    assert (first, end) == (int(result["time_to_all_booted_s"]) + 1, 3)
    steady, whole = result["steady_latency"], result["latency"]
    assert "BootNotification" not in steady  # all boots were before the window
    assert 0 < steady["Heartbeat"]["count"] < whole["Heartbeat"]["count"]
    window_messages = sum(result["per_second"][first:end])
    assert result["steady_calls_per_s"] == pytest.approx(window_messages / (end - first))
    server = result["server"]
    assert "steady_cpu_error" not in server, server
    assert server["steady_cpu_s_per_1000_messages"] > 0, server
    # Second 0 of the run, for other samplers to cut the same window (bench_csms.py).
    assert time.time() - 60 < result["started_wall"] < time.time() - cfg.duration_s


def test_cpu_rate_interpolates_when_the_sampling_thread_was_starved() -> None:
    # Under load the 0.25 s sampling thread may not run at all inside the steady window: the
    # samples taken by start() and finish() still give a figure (CPU time is cumulative).
    sampler = ServerSampler(os.getpid())
    sampler.cpu_samples = [(100.0, 10.0), (110.0, 30.0)]
    assert sampler.cpu_rate(102.0, 104.0) == pytest.approx(2.0)
    sampler.cpu_samples = [(100.0, 10.0), (103.0, 13.0), (110.0, 27.0)]
    assert sampler.cpu_rate(102.0, 104.0) == pytest.approx((15.0 - 12.0) / 2.0)
    # Outside the sampled run, or an empty window: a clear error, never None.
    with pytest.raises(ValueError, match="outside"):
        sampler.cpu_rate(99.0, 104.0)
    with pytest.raises(ValueError, match="empty"):
        sampler.cpu_rate(104.0, 104.0)


def test_k01_fr06_load_generator_profiles_replace_one_another() -> None:
    """The load generator's SetChargingProfile commands pass the CSMS's K01 check one after the
    other on the same EVSE: the same id replaces (FR.05), never a second id at the same stack
    level and purpose (FR.06), so the CSMS's correct 422s are not counted as failures."""
    import random

    from benchmarks.loadgen import api_payload
    from csms.domain.models import ChargingProfileRecord
    from csms.services.profiles_check import check_set_charging_profile

    rng = random.Random(3)
    stored: list[ChargingProfileRecord] = []
    for _ in range(20):
        payload = api_payload("SetChargingProfile", rng)
        check_set_charging_profile(
            payload,
            known_evse_ids=[1],
            active_transactions={},
            stored=stored,
            negative_limit_is_discharge=True,
        )
        profile = payload["chargingProfile"]
        stored = [r for r in stored if r.profile_id != profile["id"]]
        stored.append(
            ChargingProfileRecord(
                "CS1",
                1,
                profile["id"],
                profile["chargingProfilePurpose"],
                profile["stackLevel"],
                profile["chargingProfileKind"],
                profile,
            )
        )
    assert len(stored) == 1


def _read_acks(folder: Path) -> list[str]:
    return [line for path in folder.glob("acks.w*") for line in path.read_text().splitlines()]


async def test_reconnect_resends_the_unanswered_call_and_acks_every_seq_once(
    tmp_path: Path,
) -> None:
    """--reconnect/--acks (failover runs): a server that drops the connection instead of
    answering every 40th write message; each station reconnects, boots again and re-sends the
    unanswered call with the same seqNo, so the acknowledged seqNos of every transaction run
    0..n with no gap and no repeat, and the dropped messages were received twice."""
    import orjson
    import websockets

    class DroppingResponder(BareResponder):
        writes = 0
        dropped = 0

        async def _handle(self, connection: Any) -> None:
            station_id = connection.request.path.rstrip("/").rsplit("/", 1)[-1]
            try:
                async for raw in connection:
                    message = orjson.loads(raw)
                    if message[0] != 2:
                        continue
                    self.received[message[2]] += 1
                    if message[2] in ("TransactionEvent", "MeterValues"):
                        self.writes += 1
                        if self.writes % 40 == 0:
                            self.dropped += 1
                            await connection.close()  # the answer is lost
                            return
                    answer = self.answer(station_id, message[2], message[3])
                    await connection.send(orjson.dumps([3, message[1], answer]).decode())
            except websockets.ConnectionClosed:
                pass

    acks = tmp_path / "acks"
    async with DroppingResponder() as responder:
        cfg = RunConfig(
            url=f"ws://127.0.0.1:{responder.port}/ocpp",
            stations=6,
            scenario="tx-meter",
            duration_s=3.0,
            connect_rate=0,
            reconnect=True,
            acks_path=str(acks),
        )
        result = await run_in_process(cfg, log=_quiet)
    assert responder.dropped >= 5
    # A drop while the run is ending is not reconnected: at most one per station.
    assert result["reconnects"] >= responder.dropped - 6
    lines = [line.split("\t") for line in _read_acks(tmp_path)]
    seqs: dict[str, list[int]] = {}
    for _station, action, tx, seq, _stamp in lines:
        if action == "TransactionEvent":
            seqs.setdefault(tx, []).append(int(seq))
    assert len(seqs) == 6
    for tx, acked in seqs.items():
        # tx-meter alternates TransactionEvent (odd seqNo) and MeterValues after Started (0).
        expected = [0, *range(1, 2 * len(acked) - 1, 2)]
        assert acked == expected, f"{tx}: gap or repeat in {acked[:20]}"
    acked_writes = len(lines)
    assert sum(responder.received[a] for a in ("TransactionEvent", "MeterValues")) >= (
        acked_writes + responder.dropped - 6  # the last call of each station may be unanswered
    )


def test_database_cpu_of_the_steady_window_is_cut_from_its_own_samples() -> None:
    """bench_csms.py: the database server's CPU per message in the load generator's steady
    window (the messages sent in it), interpolated between its one-a-second samples."""
    from benchmarks.bench_csms import DatabaseCpu, _steady_db_cpu_us

    db = DatabaseCpu("postgresql://unused", "unused")  # samples set by hand: never connects
    db.samples = [(1000.0, 0.0), (1002.0, 2.0), (1010.0, 10.0), (1020.0, 30.0)]
    # 1.0 at 1001 (0..2 over 1000..1002), 12.0 at 1011 (10..30 over 1010..1020).
    assert db.cpu_between(1001.0, 1011.0) == pytest.approx(12.0 - 1.0)
    assert db.cpu_between(999.0, 1011.0) is None  # before the first sample
    assert db.cpu_between(1011.0, 1011.0) is None  # empty
    result = {"steady_window_s": [3, 13], "started_wall": 998.0, "steady_calls_per_s": 500.0}
    # 1001..1011: 11 s of CPU for 500 messages/s x 10 s.
    assert _steady_db_cpu_us(db, result) == pytest.approx(11.0 / 5000 * 1e6)
    assert _steady_db_cpu_us(db, {**result, "steady_window_s": None}) is None
    assert _steady_db_cpu_us(db, {**result, "started_wall": 1015.0}) is None  # past the end
