"""The CACTUS CONTROL procedures (cactus_test_definitions 1.15, SA TS 5573) with the CSMS's
CSIP-AUS aggregator client (CsipSiteClient) as the client under test: the runner proxies to
envoy and judges every step and criterion; each test asserts all of them passed.

The site obeys its envelope: `ObeyingSite` gives the client the live state of a site whose
chargers follow the envelope the client stored (csms.domain.envelopes.envelope_at and
charger_bounds): de-energise -> not operating (genConnectStatus bit 2 clear), disconnect -> not
connected (bit 0 clear), otherwise operating and discharging up to its bounds. So the DERStatus
the procedures check reflects what the stored envelope allows, as the enforcement path would.

The client runs with its ordinary poll bounds (the server's pollRate, 60 s in these procedures):
each procedure takes as long as its waits plus a poll or two. They run concurrently, one CACTUS
runner (and its own envoy database) per procedure, started by the module fixture for the
procedures the session selected (at most CSMS_TEST_CSIP_RUNNERS, default 7, at once: each
runner and its envoy hold PostgreSQL connections); each test awaits its own.

Default set (together about 4 minutes of procedure time, plus the runners' start-up):
GEN-01 export limit, GEN-02 generation limit, LOA-01 import limit, LOA-02 load limit (the
control reached: GET of the control list, then of the program list after a zero limit is made),
ALL-13 default ramp rate (DERSettings.setGradW follows the DefaultDERControl's), ALL-26
de-energise, ALL-27 disconnect (DERStatus follows the control both ways; the last step is the
operator's "proceed" after observing the DER again operating, sent once the client's live state
shows it).
Opt-in (real minutes: CSMS_TEST_CSIP_LONG=1): ALL-11 energise (about 10 min), ALL-12 connect
(about 16 min), ALL-18 responses (received/started/completed/cancelled/superseded, about 8 min),
GEN-09 / LOA-09 responses to cancelled export / import controls (about 6 min), GEN-11/12 and
LOA-11/12 variable limits (five 2-minute controls, every Response; the stored limit followed
each, about 11 min), GEN-03/04 and LOA-03/04 default controls (about 18 min), ALL-21
scheduling (24 back-to-back controls, about 26 min; 3 of the 24 got Cancelled, not Completed,
when a poll fetched the list just after envoy dropped an ended control but before our clock
estimate reached its end: fixed by csip_controls.VANISHED_AT_END_TOLERANCE, not re-run live
since), ALL-22 randomisation (the runner leaves "random enough"
to a human: the test checks each effective start lies in its window, about 12 min), ALL-23
communication loss (the stored schedule followed while the server is unreachable, about 10
min), ALL-24 scaling factors (multipliers 2 and 1 scaled back to W, about 11 min), ALL-25
a control's rampTms (the envelope carries 60 s; the procedure ends itself with finish-test,
after which the runner answers 410: the loop stops there and finalize judges; about 8 min),
ALL-28 changing ramp rates (setGradW 0.27 -> 1 %/s, controls without and with rampTms,
cancelled then started; about 24 min).
Command (concurrently, one runner each, CSMS_TEST_CSIP_RUNNERS at once; -k picks some):
  CSMS_TEST_CSIP_LONG=1 CSMS_TEST_POSTGRES_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/test \\
    .venv/bin/python -m pytest tests/integration/test_csip_cactus_controls.py -q

Needs CSMS_TEST_POSTGRES_URL (skips without it); the envoy venv is made when missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from csms.domain.csip_controls import ControlRecord
from csms.domain.envelopes import charger_bounds, envelope_at
from csms.domain.sites import Site
from csms.integrations.csip.client import CsipSiteClient, PollBounds
from csms.integrations.csip.convert import SiteLiveState, SiteRatings
from csms.integrations.csip.transport import CsipTransport, TransportConfig
from csms.persistence.database import Database
from csms.persistence.repositories import sites as sites_repo
from tests.support.csip_cactus import (
    CactusRunner,
    ProcedureSummary,
    field_of,
    parse_status,
    running_cactus,
)
from tests.support.csip_server import make_identity, venv_and_postgres_or_skip
from tests.support.v2g_nodes import node_databases

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.timeout(2400),
    pytest.mark.asyncio(loop_scope="module"),
]

LONG = os.environ.get("CSMS_TEST_CSIP_LONG") == "1"
long_only = pytest.mark.skipif(not LONG, reason="real minutes: set CSMS_TEST_CSIP_LONG=1")
BOUNDS = PollBounds(min_s=1, max_s=3600, retry_s=1)
RATED_W = 7200.0
TICK_S = 1.0
LIMIT_FIELDS = (
    "export_limit_w",
    "import_limit_w",
    "generation_limit_w",
    "load_limit_w",
    "ramp_time_s",
)
MIGRATIONS = asyncio.Lock()
# Each runner and its envoy hold about six PostgreSQL connections (the server allows 100,
# shared): at most this many runners at once, the others wait for a free one.
MAX_RUNNERS = max(1, int(os.environ.get("CSMS_TEST_CSIP_RUNNERS", "7")))


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class ObeyingSite:
    """A home whose chargers follow the envelope the client stored for it."""

    db: Database

    async def ratings(self, site: Site) -> SiteRatings:
        return SiteRatings(max_charge_w=RATED_W, max_discharge_w=RATED_W)

    async def live_state(self, site: Site) -> SiteLiveState:
        async with self.db.read() as conn:
            envelopes = await sites_repo.site_envelopes(conn, site.id)
        envelope = envelope_at(envelopes, now())
        bounds = charger_bounds(envelope, RATED_W, RATED_W)
        connected = envelope is None or envelope.connect is not False
        # Energised at a zero limit is still operating; de-energised is not.
        operating = connected and (envelope is None or envelope.energize is not False)
        return SiteLiveState(
            connected=connected,
            operating=operating,
            discharging=operating and bounds.max_discharge_w > 0,
            charging=operating and bounds.max_discharge_w <= 0 and bounds.max_charge_w > 0,
        )


@dataclass(frozen=True)
class Plan:
    """How long a procedure may take, and whether its last step is the operator's proceed
    (sent once the live state shows `proceed_when`)."""

    timeout_s: float
    proceed_when_operating: bool = False
    long: bool = False
    comm_loss: bool = False  # the runner cuts communications: failed ticks are expected
    # Criteria judged at finalize on Responses: after the steps, tick until this many
    # controls reached their end (the terminal Response sent).
    controls_ended: int = 0


PLANS: dict[str, Plan] = {
    "GEN-01": Plan(300),
    "GEN-02": Plan(300),
    "LOA-01": Plan(300),
    "LOA-02": Plan(300),
    "ALL-13": Plan(300),
    "ALL-26": Plan(480, proceed_when_operating=True),
    "ALL-27": Plan(480, proceed_when_operating=True),
    "ALL-11": Plan(900, long=True),
    "ALL-12": Plan(1200, long=True),
    "ALL-18": Plan(900, long=True),
    "GEN-09": Plan(600, long=True),
    "LOA-09": Plan(600, long=True),
    "ALL-22": Plan(1000, long=True),
    "ALL-23": Plan(900, long=True, comm_loss=True),
    "GEN-03": Plan(1500, long=True),
    "GEN-04": Plan(1500, long=True),
    "LOA-03": Plan(1500, long=True),
    "LOA-04": Plan(1500, long=True),
    "ALL-21": Plan(1900, long=True, controls_ended=24),
    "ALL-24": Plan(1200, long=True),
    "ALL-25": Plan(700, long=True),
    "ALL-28": Plan(1800, long=True),
    "GEN-11": Plan(900, long=True, controls_ended=5),
    "GEN-12": Plan(900, long=True, controls_ended=5),
    "LOA-11": Plan(900, long=True, controls_ended=5),
    "LOA-12": Plan(900, long=True, controls_ended=5),
}


@dataclass
class Run:
    summary: ProcedureSummary
    live_after: SiteLiveState
    # Each change of the limits in force, as (ticks failed so far, {field: W or None}).
    limits: list[tuple[int, dict[str, float | None]]]
    failed_ticks: int
    records: list[ControlRecord]


def assert_passed(summary: ProcedureSummary, test_id: str) -> None:
    assert summary.test_procedure == test_id
    assert summary.steps and all(summary.steps.values()), summary.steps
    assert summary.criteria and all(c.success for c in summary.criteria), summary.criteria
    assert summary.passed


async def _send_proceed(runner: CactusRunner) -> None:
    answer = await runner._call("GET", "/proceed")
    assert answer.status_code == 200, f"proceed: {answer.status_code} {answer.text}"


async def run_procedure(test_id: str, plan: Plan, venv: Path, url: str, workdir: Path) -> Run:
    """One procedure on its own runner: the site registers and reports during init, the
    procedure starts, the client ticks every second until every step is done, then finalize."""
    identity = make_identity(f"cactus-{test_id.lower()}")
    async with RUNNERS, contextlib.AsyncExitStack() as stack:
        runner = await stack.enter_async_context(running_cactus(venv, url, workdir, identity))
        async with MIGRATIONS:  # alembic's context is process-global: one at a time
            dbs = await stack.enter_async_context(
                node_databases(f"sqlite+aiosqlite:///{workdir / 'csms.db'}", 1)
            )
        db = dbs[0]
        site = Site(id="home-1", name="Home", csip_enabled=True)
        await db.write(lambda conn: sites_repo.insert_site(conn, site, now()))
        source = ObeyingSite(db)
        client = CsipSiteClient(
            CsipTransport(
                TransportConfig(
                    runner.url + "/dcap", identity.cert_pem.encode(), cert_header_mode=True
                )
            ),
            db,
            source,
            clock=now,
            bounds=BOUNDS,
        )

        limits: list[tuple[int, dict[str, float | None]]] = []
        failed = 0
        runner_finished = False

        async def tick() -> SiteLiveState:
            nonlocal failed, runner_finished
            async with db.read() as conn:
                fresh = await sites_repo.get_site(conn, site.id)
                envelopes = await sites_repo.site_envelopes(conn, site.id)
            assert fresh is not None
            state = await client.tick(fresh)
            if state.last_error is not None and "HTTP 410" in state.last_error:
                # The procedure's own finish-test action (ALL-25): the runner answers 410 to
                # everything after it; finalize judges the steps and criteria.
                runner_finished = True
            elif state.last_error is not None:
                assert plan.comm_loss, f"{test_id}: {state.last_error}"
                failed += 1
            envelope = envelope_at(envelopes, now())
            limit = {f: getattr(envelope, f, None) for f in LIMIT_FIELDS}
            if not limits or limits[-1][1] != limit:
                limits.append((failed, limit))
            return await source.live_state(fresh)

        async def ended() -> int:
            records = (await client.load(site.id)).control_records
            return sum(
                1
                for r in map(ControlRecord.from_json, records)
                if r.end_status is not None and r.end_status in r.responses_sent
            )

        init = await runner.initialise(test_id, identity.cert_pem)
        live = await tick()  # registered, capability and settings reported during init
        if not field_of(init, "is_started"):
            await runner.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + plan.timeout_s
        proceeded = False
        while loop.time() < deadline:
            live = await tick()
            if runner_finished:
                break
            status = await runner.status()
            steps, _ = parse_status(status)
            if steps and all(steps.values()) and await ended() >= plan.controls_ended:
                break
            pending = [name for name, done in steps.items() if not done]
            # The operator's observation step (ALL-26/27): sent once the DER operates again.
            if (
                plan.proceed_when_operating
                and not proceeded
                and len(pending) == 1
                and "PROCEED" in pending[0]
                and live.operating
                and live.connected
            ):
                await _send_proceed(runner)
                proceeded = True
            await asyncio.sleep(TICK_S)
        summary = await runner.finalize()
        records = [ControlRecord.from_json(r) for r in (await client.load(site.id)).control_records]
        return Run(summary, live, limits, failed, records)


RUNNERS = asyncio.Semaphore(MAX_RUNNERS)


def _procedure_of(name: str) -> str | None:
    match = re.match(r"test_([a-z]{3})_(\d{2})_", name)
    return f"{match[1].upper()}-{match[2]}" if match else None


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, asyncio.Task[Run]]]:
    """Every selected procedure of this module started at once, each on its own runner."""
    venv, url = venv_and_postgres_or_skip()
    selected = {
        test_id
        for item in request.session.items
        if item.module is request.module
        and (test_id := _procedure_of(item.name)) is not None
        and test_id in PLANS
        and (LONG or not PLANS[test_id].long)
    }
    tasks = {
        test_id: asyncio.create_task(
            run_procedure(
                test_id, PLANS[test_id], venv, url, tmp_path_factory.mktemp(test_id.lower())
            )
        )
        for test_id in sorted(selected)
    }
    try:
        yield tasks
    finally:
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)


async def _passed(runs: dict[str, asyncio.Task[Run]], test_id: str) -> Run:
    run = await runs[test_id]
    assert_passed(run.summary, test_id)
    return run


async def test_gen_01_active_control_export_limit(runs: dict[str, asyncio.Task[Run]]) -> None:
    await _passed(runs, "GEN-01")


async def test_gen_02_active_control_generation_limit(runs: dict[str, asyncio.Task[Run]]) -> None:
    await _passed(runs, "GEN-02")


async def test_loa_01_active_control_import_limit(runs: dict[str, asyncio.Task[Run]]) -> None:
    await _passed(runs, "LOA-01")


async def test_loa_02_active_control_load_limit(runs: dict[str, asyncio.Task[Run]]) -> None:
    await _passed(runs, "LOA-02")


async def test_all_13_default_control_ramp_rate(runs: dict[str, asyncio.Task[Run]]) -> None:
    await _passed(runs, "ALL-13")


async def test_all_26_de_energization_of_der(runs: dict[str, asyncio.Task[Run]]) -> None:
    run = await _passed(runs, "ALL-26")
    assert run.live_after.operating


async def test_all_27_disconnection_of_der(runs: dict[str, asyncio.Task[Run]]) -> None:
    run = await _passed(runs, "ALL-27")
    assert run.live_after.connected


@long_only
async def test_all_11_energise_de_energise(runs: dict[str, asyncio.Task[Run]]) -> None:
    await _passed(runs, "ALL-11")


@long_only
async def test_all_12_disconnect(runs: dict[str, asyncio.Task[Run]]) -> None:
    await _passed(runs, "ALL-12")


@long_only
async def test_all_18_control_responses(runs: dict[str, asyncio.Task[Run]]) -> None:
    await _passed(runs, "ALL-18")


@long_only
async def test_gen_09_response_to_cancelled_export_control(
    runs: dict[str, asyncio.Task[Run]],
) -> None:
    await _passed(runs, "GEN-09")


@long_only
async def test_loa_09_response_to_cancelled_import_control(
    runs: dict[str, asyncio.Task[Run]],
) -> None:
    await _passed(runs, "LOA-09")


@long_only
async def test_all_22_randomisation(runs: dict[str, asyncio.Task[Run]]) -> None:
    run = await _passed(runs, "ALL-22")
    # The runner leaves "random enough" to a human: each control's effective start is within
    # its 60 s randomizeStart window after the scheduled one (2 min controls), not all alike.
    offsets = [
        (r.effective_start - (r.scheduled_end - dt.timedelta(seconds=120))).total_seconds()
        for r in run.records
        if r.scheduled_end is not None
    ]
    assert len(offsets) == 5, run.records
    assert all(0 <= o <= 60 for o in offsets), offsets
    assert len(set(offsets)) > 1, offsets


@long_only
async def test_all_23_communication_loss(runs: dict[str, asyncio.Task[Run]]) -> None:
    run = await _passed(runs, "ALL-23")
    assert run.failed_ticks > 0  # the outage was real
    assert run.live_after.operating
    # While the server was unreachable the stored schedule went on: DERC4 (0.7 of the rating)
    # then DERC5 (1.3) then the DefaultDERControl's 0 W.
    during = [limit["export_limit_w"] for failed, limit in run.limits if failed > 0]
    expected = [round(RATED_W * 0.7), round(RATED_W * 1.3), 0]
    found = [round(x) for x in during if x is not None and round(x) in expected]
    assert found[-3:] == expected, run.limits


def _limits_followed(run: Run, name: str) -> None:
    """The limit in force went through each control's value in order: 200 %, 100 %, 40 %,
    25 % and 0 of the 7200 W rating (GEN-11/12, LOA-11/12)."""
    seen = [round(x) for _, limit in run.limits if (x := limit[name]) is not None]
    expected = [round(RATED_W * f) for f in (2, 1, 0.4, 0.25, 0)]
    it = iter(seen)
    assert all(value in it for value in expected), (expected, run.limits)


@long_only
async def test_gen_11_variable_export_limit(runs: dict[str, asyncio.Task[Run]]) -> None:
    _limits_followed(await _passed(runs, "GEN-11"), "export_limit_w")


@long_only
async def test_gen_12_variable_generation_limit(runs: dict[str, asyncio.Task[Run]]) -> None:
    _limits_followed(await _passed(runs, "GEN-12"), "generation_limit_w")


@long_only
async def test_loa_11_variable_import_limit(runs: dict[str, asyncio.Task[Run]]) -> None:
    _limits_followed(await _passed(runs, "LOA-11"), "import_limit_w")


@long_only
async def test_loa_12_variable_load_limit(runs: dict[str, asyncio.Task[Run]]) -> None:
    _limits_followed(await _passed(runs, "LOA-12"), "load_limit_w")


def _default_followed(run: Run, name: str) -> None:
    """After the controls, the DefaultDERControl's 30 % of the rating was the limit in force."""
    seen = [round(x) for _, limit in run.limits if (x := limit[name]) is not None]
    assert round(RATED_W * 0.3) in seen, run.limits


@long_only
async def test_gen_03_default_control_export_limit(runs: dict[str, asyncio.Task[Run]]) -> None:
    _default_followed(await _passed(runs, "GEN-03"), "export_limit_w")


@long_only
async def test_gen_04_default_control_generation_limit(
    runs: dict[str, asyncio.Task[Run]],
) -> None:
    _default_followed(await _passed(runs, "GEN-04"), "generation_limit_w")


@long_only
async def test_loa_03_default_control_import_limit(runs: dict[str, asyncio.Task[Run]]) -> None:
    _default_followed(await _passed(runs, "LOA-03"), "import_limit_w")


@long_only
async def test_loa_04_default_control_load_limit(runs: dict[str, asyncio.Task[Run]]) -> None:
    _default_followed(await _passed(runs, "LOA-04"), "load_limit_w")


@long_only
async def test_all_21_scheduling(runs: dict[str, asyncio.Task[Run]]) -> None:
    run = await _passed(runs, "ALL-21")
    assert len(run.records) == 24 and all(r.end_status == 3 for r in run.records), run.records


@long_only
async def test_all_24_validation_of_scaling_factors(runs: dict[str, asyncio.Task[Run]]) -> None:
    run = await _passed(runs, "ALL-24")
    # 30 % and 40 % of the rating sent with power-of-ten multipliers 2 and 1: scaled back to W
    # (within the server's rounding of the scaled value: 1 % of the rating).
    for name in ("export_limit_w", "import_limit_w"):
        seen = [x for _, limit in run.limits if (x := limit[name]) is not None]
        for fraction in (0.3, 0.4):
            assert any(abs(x - RATED_W * fraction) <= RATED_W / 100 for x in seen), run.limits


def _ramped(run: Run, fraction: float, ramp_s: float | None) -> None:
    """A limit of `fraction` of the rating on export and import was in force with the ramp
    time `ramp_s` (rampTms / 100; None: none, the default's setGradW applies)."""
    assert any(
        limit["ramp_time_s"] == ramp_s
        and limit["export_limit_w"] is not None
        and round(limit["export_limit_w"]) == round(RATED_W * fraction)
        and limit["import_limit_w"] is not None
        and round(limit["import_limit_w"]) == round(RATED_W * fraction)
        for _, limit in run.limits
    ), run.limits


@long_only
async def test_all_25_active_control_ramp_rates(runs: dict[str, asyncio.Task[Run]]) -> None:
    run = await _passed(runs, "ALL-25")
    # (a) 30 % with rampTms 60 s carried by its envelope; (c) 50 % without rampTms.
    _ramped(run, 0.3, 60.0)
    _ramped(run, 0.5, None)
    assert all(r.end_status == 3 for r in run.records), run.records


@long_only
async def test_all_28_response_to_changing_ramp_rates(runs: dict[str, asyncio.Task[Run]]) -> None:
    run = await _passed(runs, "ALL-28")
    # DERC1 30 % and DERC2 10 % without rampTms, DERC3 50 % with 60 s, DERC4 30 % again.
    _ramped(run, 0.1, None)
    _ramped(run, 0.5, 60.0)
    assert sorted(r.end_status for r in run.records if r.end_status is not None).count(6) == 1
