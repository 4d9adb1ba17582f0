"""The CSIP-AUS / IEEE 2030.5 control life cycle (issue 18), pure: scenarios from the CACTUS
client procedures (cactus_test_definitions 1.15: ALL-18 responses, ALL-21/22 scheduling and
randomisation, ALL-23 communication loss, GEN-10 primacy) and property tests."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csms.domain.csip_controls import (
    MAX_CONTROLS,
    MAX_RECORDS,
    ControlRecord,
    CsipControl,
    CsipDefaultControl,
    DerLimits,
    DueResponse,
    Evaluation,
    evaluate,
    unsent,
)
from csms.domain.envelopes import OperatingEnvelope, envelope_at

T0 = datetime(2026, 12, 6, 17, 0, tzinfo=UTC)
REPLY = "/edev/1/rsps/site_control/rsp"
MAX_W = 7000.0


def ctl(
    mrid: str,
    start_s: int = 0,
    duration_s: int = 60,
    *,
    program: str = "/derp/1",
    primacy: int = 0,
    created_s: int = -60,
    status: int = 0,
    rand_start: int = 0,
    rand_duration: int = 0,
    reply_to: str | None = REPLY,
    required: int = 0x03,
    **limits: object,
) -> CsipControl:
    return CsipControl(
        mrid=mrid,
        href=f"{program}/derc/{mrid}",
        program_href=program,
        primacy=primacy,
        creation_time=T0 + timedelta(seconds=created_s),
        start=T0 + timedelta(seconds=start_s),
        duration_s=duration_s,
        randomize_start_s=rand_start,
        randomize_duration_s=rand_duration,
        current_status=status,
        reply_to=reply_to,
        response_required=required,
        limits=DerLimits(**limits),  # type: ignore[arg-type]
    )


def dflt(
    mrid: str, primacy: int = 0, program: str = "/derp/1", **limits: object
) -> CsipDefaultControl:
    return CsipDefaultControl(
        mrid=mrid,
        href=f"{program}/dderc",
        program_href=program,
        primacy=primacy,
        limits=DerLimits(**limits),  # type: ignore[arg-type]
    )


def no_random(bound: int) -> int:
    return 0


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


class Client:
    """Drives evaluate like the CSIP client: keeps records, collects every response sent."""

    def __init__(
        self,
        defaults: Sequence[CsipDefaultControl] = (),
        random_seconds: Callable[[int], int] = no_random,
    ) -> None:
        self.defaults = list(defaults)
        self.random_seconds = random_seconds
        self.records: Mapping[str, ControlRecord] = {}
        self.sent: list[DueResponse] = []
        self.last: Evaluation | None = None

    def tick(self, seconds: float, controls: Sequence[CsipControl], **kwargs: object) -> Evaluation:
        result = evaluate(
            "home-1", controls, self.defaults, self.records, at(seconds), self.random_seconds,
            **kwargs,  # type: ignore[arg-type]
        )  # fmt: skip
        self.records = result.records
        self.sent.extend(result.responses)
        self.last = result
        return result

    def statuses(self, mrid: str) -> list[int]:
        return [r.status for r in self.sent if r.subject_mrid == mrid]

    def in_force(self, seconds: float) -> OperatingEnvelope | None:
        assert self.last is not None
        return envelope_at(self.last.envelopes, at(seconds))


# --- responses (ALL-18) -----------------------------------------------------------------------


def test_all_18_received_started_completed_in_order_each_once() -> None:
    client = Client([dflt("d", export_limit_w=0.0, import_limit_w=0.0, ramp_rate_pct_per_s=0.27)])
    derc1 = ctl("DERC1", 0, 120, export_limit_w=2 * MAX_W, import_limit_w=2 * MAX_W)
    client.tick(0, [derc1])
    assert client.statuses("DERC1") == [1, 2]
    client.tick(60, [derc1])
    assert client.statuses("DERC1") == [1, 2]  # nothing new mid-control
    client.tick(120, [derc1])
    assert client.statuses("DERC1") == [1, 2, 3]
    completed = client.sent[-1]
    assert completed.created_at == at(120) and completed.reply_to == REPLY


def test_all_18_received_then_cancelled_while_active_and_before_start() -> None:
    """ALL-18 (j)-(p): DERC2 cancelled after it started, DERC3 before it started: status 6."""
    client = Client()
    derc2 = ctl("DERC2", 0, 600, export_limit_w=MAX_W)
    derc3 = ctl("DERC3", 600, 120, export_limit_w=0.0)
    client.tick(1, [derc2, derc3])
    envoy_cancelled = [replace(derc2, current_status=2), replace(derc3, current_status=2)]
    result = client.tick(30, envoy_cancelled)
    assert client.statuses("DERC2") == [1, 2, 6]
    assert client.statuses("DERC3") == [1, 6]
    assert envelope_at(result.envelopes, at(40)) is None  # no longer in force
    assert envelope_at(result.envelopes, at(700)) is None


def test_all_18_same_program_newer_control_supersedes_the_older() -> None:
    """ALL-18 (q)-(s): DERC4 (+10 min, 600 s) then a newer control (+10 min, 60 s) in the same
    program: DERC4 gets 7 and never starts; the newer one runs. envoy also marks DERC4
    currentStatus 4; the client reaches the same verdict on its own."""
    client = Client([dflt("d", export_limit_w=0.0)])
    derc4 = ctl("DERC4", 600, 600, created_s=0, export_limit_w=2 * MAX_W, import_limit_w=2 * MAX_W)
    newer = ctl("NEW", 600, 60, created_s=5, export_limit_w=0.0, import_limit_w=0.0)
    client.tick(1, [derc4])
    result = client.tick(10, [derc4, newer])
    assert client.statuses("DERC4") == [1]  # not superseded before the overlap begins
    in_force = envelope_at(result.envelopes, at(630))
    assert in_force is not None and in_force.control_id == "NEW"
    assert envelope_at(result.envelopes, at(700)).control_id == "d"  # type: ignore[union-attr]
    client.tick(600, [derc4, newer])
    assert client.statuses("DERC4") == [1, 7]
    assert client.statuses("NEW") == [1, 2]
    client.tick(800, [derc4, newer])
    assert client.statuses("DERC4") == [1, 7]  # never resumed nor completed
    assert client.statuses("NEW") == [1, 2, 3]


def test_all_18_server_marked_superseded_is_answered_at_once() -> None:
    client = Client()
    derc4 = ctl("DERC4", 600, 600, export_limit_w=MAX_W)
    client.tick(1, [derc4])
    client.tick(10, [replace(derc4, current_status=4)])
    assert client.statuses("DERC4") == [1, 7]
    assert client.records["DERC4"].end_status == 7


def test_all_18_criteria_every_control_received_even_if_rejected() -> None:
    client = Client()
    expired = ctl("OLD", -600, 60, export_limit_w=MAX_W)
    invalid = ctl("BAD", 0, 60, export_limit_w=-5.0)
    client.tick(0, [expired, invalid])
    assert client.statuses("OLD") == [1, 254]  # Rejected: event expired on receipt
    assert client.statuses("BAD") == [1, 253]  # Rejected: invalid event
    assert client.last is not None and client.last.envelopes == ()


@pytest.mark.parametrize(
    ("required", "reply_to", "expected"),
    [
        (0x00, REPLY, []),
        (0x01, REPLY, [1]),  # bit 0: message received
        (0x02, REPLY, [2, 3]),  # bit 1: specific responses
        (0x03, REPLY, [1, 2, 3]),  # envoy's "03"
        (0x07, REPLY, [1, 2, 3]),  # bit 2 (user response) does not apply
        (0x03, None, []),
        (0x03, "", []),
    ],
)
def test_response_required_bits(required: int, reply_to: str | None, expected: list[int]) -> None:
    client = Client()
    control = ctl("C", 0, 60, required=required, reply_to=reply_to, export_limit_w=1.0)
    client.tick(0, [control])
    client.tick(60, [control])
    assert client.statuses("C") == expected


def test_responses_offered_again_after_a_failed_post() -> None:
    client = Client()
    control = ctl("C", 0, 60, export_limit_w=1.0)
    first = client.tick(0, [control])
    assert [r.status for r in first.responses] == [1, 2]
    client.records = {"C": unsent(client.records["C"], [2])}  # the POST of 2 failed
    again = client.tick(5, [control])
    assert [r.status for r in again.responses] == [2]


class FakeEnvoy:
    """What envoy 1.5 lists (envoy/server/crud/doe.py, mapper/csip_aus/doe.py): controls whose
    scheduled end is after now; deleted ones as Cancelled; older controls of the same program
    with a common field overlapping a new one as Superseded; the rest Active or Scheduled."""

    def __init__(self) -> None:
        self.controls: list[CsipControl] = []
        self.deleted: set[str] = set()
        self.superseded: set[str] = set()

    def create(self, control: CsipControl) -> None:
        def span(c: CsipControl) -> tuple[datetime, datetime]:
            return c.start, c.start + timedelta(seconds=c.duration_s)

        for old in self.controls:
            if (
                old.program_href == control.program_href
                and old.limits.fields_set() & control.limits.fields_set()
                and span(old)[0] < span(control)[1]
                and span(control)[0] < span(old)[1]
            ):
                self.superseded.add(old.mrid)
        self.controls.append(control)

    def cancel_all(self) -> None:
        self.deleted.update(c.mrid for c in self.controls)

    def listing(self, now: datetime) -> list[CsipControl]:
        out = []
        for c in self.controls:
            end = c.start + timedelta(seconds=c.duration_s)
            if end <= now:
                continue
            status = 1 if c.start <= now else 0
            if c.mrid in self.superseded:
                status = 4
            if c.mrid in self.deleted:
                status = 2
            out.append(replace(c, current_status=status))
        return out


def test_all_18_walk_through_against_an_envoy_like_listing() -> None:
    """ALL-18 steps (a)-(s) in order, polling every 10 s, and its criterion: every control,
    cancelled ones included, has a received (1) response."""
    envoy = FakeEnvoy()
    client = Client([dflt("d", export_limit_w=0.0, import_limit_w=0.0, ramp_rate_pct_per_s=0.27)])
    clock = 0

    def poll_until(predicate: Callable[[], bool], limit: int = 3600) -> None:
        nonlocal clock
        while not predicate():
            assert clock < limit, client.sent
            clock += 10
            client.tick(clock, envoy.listing(at(clock)))

    def c(mrid: str, start: int, duration: int, **limits: object) -> CsipControl:
        return ctl(mrid, start, duration, created_s=clock, **limits)

    envoy.create(c("DERC1", 0, 120, export_limit_w=2 * MAX_W, import_limit_w=2 * MAX_W))
    client.tick(clock, envoy.listing(at(clock)))
    poll_until(lambda: client.statuses("DERC1") == [1, 2, 3])  # (b)-(f)
    envoy.create(c("DERC2", clock + 300, 600, export_limit_w=2 * MAX_W, import_limit_w=2 * MAX_W))
    poll_until(lambda: client.statuses("DERC2") == [1, 2])  # (h)-(i)
    envoy.cancel_all()  # (j)
    poll_until(lambda: client.statuses("DERC2") == [1, 2, 6])  # (k)-(l)
    assert client.in_force(clock).is_default  # type: ignore[union-attr]
    envoy.create(c("DERC3", clock + 600, 120, export_limit_w=0.0, import_limit_w=0.0))
    poll_until(lambda: client.statuses("DERC3") == [1])  # (m)
    envoy.cancel_all()  # (n)
    poll_until(lambda: client.statuses("DERC3") == [1, 6])  # (o)-(p)
    envoy.create(c("DERC4", clock + 600, 600, export_limit_w=2 * MAX_W, import_limit_w=2 * MAX_W))
    poll_until(lambda: client.statuses("DERC4") == [1])  # (q)
    envoy.create(c("DERC5", clock + 600, 60, export_limit_w=0.0, import_limit_w=0.0))  # (r)
    poll_until(lambda: client.statuses("DERC4") == [1, 7])  # (s)
    assert client.statuses("DERC5") == [1]
    received = {r.subject_mrid for r in client.sent if r.status == 1}
    assert received == {"DERC1", "DERC2", "DERC3", "DERC4", "DERC5"}  # criterion


# --- scheduling and randomisation (ALL-21, ALL-22) --------------------------------------------


def test_all_21_sequential_controls_each_received_started_completed() -> None:
    client = Client([dflt("d", export_limit_w=0.0, import_limit_w=0.0)])
    factors = [0.3, 0.6, 0.4, 0.5, 0.2]
    controls = [
        ctl(f"DERC{i + 1}", 60 * i, 60, export_limit_w=MAX_W * f, import_limit_w=MAX_W * f)
        for i, f in enumerate(factors)
    ]
    for second in range(0, 6 * 60, 20):
        result = client.tick(second, controls)
        if second < 5 * 60:
            in_force = envelope_at(result.envelopes, at(second))
            assert in_force is not None
            assert in_force.export_limit_w == pytest.approx(MAX_W * factors[second // 60])
    for control in controls:
        assert client.statuses(control.mrid) == [1, 2, 3]
    assert client.in_force(400) is not None and client.in_force(400).is_default  # type: ignore[union-attr]


def test_all_21_control_dropped_at_its_end_just_before_our_clock_reaches_it_completes() -> None:
    """envoy drops a control once its end passes on the server's clock; the client's idea of
    server time lags that by up to a second (Time.currentTime is whole seconds) plus the time
    from the tick's clock read to the list fetch. Gone then is the end, not a cancel."""
    client = Client()
    a = ctl("DERC1", 0, 60, export_limit_w=1.0)
    b = ctl("DERC2", 60, 60, export_limit_w=2.0)
    client.tick(30, [a, b])
    client.tick(59.3, [b])  # fetched at 60.2 server time: DERC1 already dropped
    assert client.statuses("DERC1") == [1, 2, 3]
    assert client.records["DERC1"].end_status == 3


def test_all_21_scheduling_with_the_client_poll_cadence_every_control_completes() -> None:
    """ALL-21 as the CSIP client drives it: 24 back-to-back 1-minute controls (each start read
    at its own instant, sent in whole seconds), ticks every ~1 s, the list fetched at the
    server's 60 s pollRate about 1 s after the tick's clock read and with the client's clock
    offset whole-second truncated; envoy lists a control while its end is after the fetch.
    Before the fix a poll landing just after a control's end gave it 6, not 3."""
    client = Client([dflt("d", export_limit_w=0.0, import_limit_w=0.0)])
    precise = [60 * k + 0.55 + 0.01 * k for k in range(24)]  # the runner's $(now + k min)
    mrids = [f"DERC{k + 1}" for k in range(24)]

    def listing(fetched_at: float) -> list[CsipControl]:
        return [
            ctl(mrid, int(start), 60, export_limit_w=MAX_W * 0.3, import_limit_w=MAX_W * 0.3)
            for mrid, start in zip(mrids, precise, strict=True)
            if start + 60 > fetched_at
        ]

    # The poll phase against the controls is arbitrary; this one drifts onto DERC12-13's ends.
    now, due, listed, lag = 0.0, 50.0, listing(0.0), 0.0
    while now < 25 * 60:
        real = now
        if now >= due:  # dcap (Time) and derp are due together at the same 60 s rate
            lag = real + 0.05 - int(real + 0.05)  # currentTime is whole seconds
            real += 1.0  # the walk up to the DERControl list
            listed, due = listing(real), now + 60
        client.tick(now - lag, listed)
        now = real + 1.0 + 0.05  # TICK_S plus the tick's own work
    assert {m: client.statuses(m) for m in mrids} == {m: [1, 2, 3] for m in mrids}


def test_all_22_randomised_start_drawn_once_within_bounds() -> None:
    draws: list[int] = []

    def random_seconds(bound: int) -> int:
        draws.append(bound)
        return 42

    client = Client(random_seconds=random_seconds)
    control = ctl("DERC1", 0, 120, rand_start=60, export_limit_w=MAX_W)
    client.tick(0, [control])
    client.tick(30, [control])
    assert draws == [60]  # once, kept in the record
    record = client.records["DERC1"]
    assert (record.effective_start, record.effective_end) == (at(42), at(162))
    assert client.statuses("DERC1") == [1]
    client.tick(42, [control])
    assert client.statuses("DERC1") == [1, 2]
    assert client.in_force(161) is not None and client.in_force(162) is None


def test_randomize_duration_negative_bound_and_clamped_draw() -> None:
    client = Client(random_seconds=lambda bound: 10_000)  # a misbehaving source is clamped
    client.tick(0, [ctl("C", 0, 120, rand_start=-30, rand_duration=-20, export_limit_w=1.0)])
    record = client.records["C"]
    assert record.effective_start == at(0)  # clamped to [-30, 0]
    assert record.effective_end == at(120)  # clamped to [-20, 0]


def test_randomisation_overlap_in_a_program_completes_rather_than_supersedes() -> None:
    """ALL-22: DERC1 randomised past DERC2's randomised start; DERC2 (newer) takes the field
    during the overlap, DERC1 still completes (no 7: the schedules do not overlap)."""
    offsets = {"DERC1": 50, "DERC2": 10}
    current: list[str] = []
    client = Client(random_seconds=lambda bound: offsets[current[0]])
    derc1 = ctl("DERC1", 0, 120, created_s=-60, rand_start=60, export_limit_w=1000.0)
    derc2 = ctl("DERC2", 120, 120, created_s=-59, rand_start=60, export_limit_w=2000.0)
    current.append("DERC1")
    client.tick(0, [derc1])
    current[0] = "DERC2"
    result = client.tick(1, [derc1, derc2])
    assert envelope_at(result.envelopes, at(140)).control_id == "DERC2"  # type: ignore[union-attr]
    assert envelope_at(result.envelopes, at(125)).control_id == "DERC1"  # type: ignore[union-attr]
    client.tick(300, [derc1, derc2])
    assert client.statuses("DERC1") == [1, 2, 3]
    assert client.statuses("DERC2") == [1, 2, 3]


def test_cancelled_with_randomization_ends_after_the_drawn_delay() -> None:
    client = Client(random_seconds=lambda bound: bound)
    control = ctl("C", 0, 600, rand_start=0, rand_duration=30, export_limit_w=1.0)
    client.tick(0, [control])
    result = client.tick(100, [replace(control, current_status=3)])
    assert client.statuses("C") == [1, 2, 6]
    assert envelope_at(result.envelopes, at(129)) is not None
    assert envelope_at(result.envelopes, at(130)) is None


def test_control_leaving_the_list_before_its_end_is_cancelled_after_it_completed() -> None:
    client = Client()
    a = ctl("A", 0, 600, export_limit_w=1.0)
    b = ctl("B", 0, 60, import_limit_w=2.0, program="/derp/2", primacy=1)
    client.tick(0, [a, b])
    client.tick(100, [])  # envoy drops B after its scheduled end; A was deleted without trace
    assert client.statuses("A") == [1, 2, 6]
    assert client.statuses("B") == [1, 2, 3]
    client.tick(200, [])
    assert len(client.sent) == 6
    assert set(client.records) == {"A", "B"}  # kept a while, then dropped
    client.tick(700 + 86400, [])
    assert client.records == {}


# --- primacy (GEN-10) -------------------------------------------------------------------------


def test_gen_10_higher_priority_program_supersedes_a_running_control() -> None:
    """GEN-10 (c)-(h): DERC1 (primacy 2, ExpLimW 200 %) runs; DERC2 (primacy 1, ExpLimW 0)
    starts: DERC1 gets 7 at that instant, DERC2 2 then 3; DERC1 does not come back."""
    client = Client([dflt("dderc1", primacy=1, program="/derp/1", export_limit_w=0.3 * MAX_W)])
    derc1 = ctl("DERC1", 0, 600, program="/derp/6", primacy=2, export_limit_w=2 * MAX_W)
    derc2 = ctl("DERC2", 60, 840, program="/derp/1", primacy=1, created_s=60, export_limit_w=0.0)
    client.tick(0, [derc1])
    assert client.in_force(30).export_limit_w == 2 * MAX_W  # type: ignore[union-attr]
    result = client.tick(60, [derc1, derc2])
    assert client.statuses("DERC1") == [1, 2, 7]
    assert client.statuses("DERC2") == [1, 2]
    assert envelope_at(result.envelopes, at(61)).export_limit_w == 0.0  # type: ignore[union-attr]
    client.tick(900, [derc1, derc2])
    assert client.statuses("DERC2") == [1, 2, 3]
    assert client.in_force(901).control_id == "dderc1"  # type: ignore[union-attr]


def test_gen_10_walk_through_against_an_envoy_like_listing() -> None:
    """GEN-10 (a)-(ee) in order, polling every 10 s: DERP1 (primacy 1) and DERP6 (primacy 2),
    each with a default; the responses and the export limit each step expects."""
    envoy = FakeEnvoy()
    ramp = {"import_limit_w": 0.0, "ramp_rate_pct_per_s": 1.67}
    defaults = [
        dflt("dd1", 1, "/derp/1", export_limit_w=0.3 * MAX_W, **ramp),
        dflt("dd6", 2, "/derp/6", **ramp),
    ]
    client = Client(defaults)
    clock = 0

    def poll(seconds: int) -> None:
        nonlocal clock
        for _ in range(seconds // 10):
            clock += 10
            client.tick(clock, envoy.listing(at(clock)))

    def c(mrid: str, duration: int, derp: int, **limits: object) -> CsipControl:
        return ctl(mrid, clock, duration, program=f"/derp/{derp}", primacy=1 if derp == 1 else 2,
                   created_s=clock, **limits)  # fmt: skip

    def export_now() -> float | None:
        return client.in_force(clock).export_limit_w  # type: ignore[union-attr]

    poll(10)
    assert export_now() == 0.3 * MAX_W  # (b) the DERP1 default
    envoy.create(c("DERC1", 600, 6, export_limit_w=2 * MAX_W))  # (c)
    poll(60)
    assert client.statuses("DERC1") == [1, 2] and export_now() == 2 * MAX_W  # (d)
    envoy.create(c("DERC2", 840, 1, export_limit_w=0.0))  # (e)
    poll(10)
    assert client.statuses("DERC2") == [1, 2] and client.statuses("DERC1") == [1, 2, 7]  # (f, g)
    assert export_now() == 0.0
    poll(840)
    assert client.statuses("DERC2") == [1, 2, 3] and export_now() == 0.3 * MAX_W  # (h)
    envoy.create(c("DERC3", 300, 6, export_limit_w=2 * MAX_W))  # (i)
    poll(310)
    assert client.statuses("DERC3") == [1, 2, 3] and export_now() == 0.3 * MAX_W  # (j)-(l)
    envoy.create(c("DERC4", 300, 1, generation_limit_w=0.0, connect=False))  # (m)
    envoy.create(c("DERC5", 1200, 6, export_limit_w=2 * MAX_W))  # (n)
    poll(10)
    assert client.statuses("DERC4") == [1, 2] and client.statuses("DERC5") == [1, 2]  # (o)
    assert client.in_force(clock).no_transfer  # type: ignore[union-attr]
    poll(300)
    assert client.statuses("DERC4") == [1, 2, 3] and export_now() == 2 * MAX_W  # (p)-(q)
    envoy.create(c("DERC6", 300, 6, export_limit_w=0.5 * MAX_W))  # (s)
    poll(10)
    assert client.statuses("DERC5") == [1, 2, 7] and client.statuses("DERC6") == [1, 2]  # (t, u)
    assert export_now() == 0.5 * MAX_W
    poll(300)
    envoy.create(c("DERC7", 300, 1, export_limit_w=0.0))  # (v)
    envoy.create(c("DERC8", 300, 6, export_limit_w=0.5 * MAX_W, generation_limit_w=0.3 * MAX_W))
    poll(10)
    assert client.statuses("DERC7") == [1, 2] and client.statuses("DERC8") == [1, 2]  # (w)
    both = client.in_force(clock)
    assert both is not None and (both.export_limit_w, both.generation_limit_w) == (0.0, 0.3 * MAX_W)
    poll(300)
    assert client.statuses("DERC7") == [1, 2, 3]  # (x)
    envoy.create(c("DERC9", 300, 1, generation_limit_w=0.5 * MAX_W))  # (y)
    envoy.create(c("DERC10", 300, 6, export_limit_w=0.2 * MAX_W))
    poll(10)
    assert client.statuses("DERC9") == [1, 2] and client.statuses("DERC10") == [1, 2]  # (z)
    assert export_now() == 0.2 * MAX_W
    client.defaults = [  # (bb): DERP1 default 50 %, DERP6 default 20 %
        replace(defaults[0], limits=replace(defaults[0].limits, export_limit_w=0.5 * MAX_W)),
        replace(defaults[1], limits=replace(defaults[1].limits, export_limit_w=0.2 * MAX_W)),
    ]
    envoy.cancel_all()  # (dd)
    poll(10)
    assert client.statuses("DERC9") == [1, 2, 6] and client.statuses("DERC10") == [1, 2, 6]
    assert export_now() == 0.5 * MAX_W  # (ee)
    pairs = [(r.subject_mrid, r.status) for r in client.sent]
    assert len(pairs) == len(set(pairs))


def test_gen_10_supersede_takes_effect_when_the_other_control_is_received() -> None:
    """DERC2's start (30 s) precedes the poll that finds it (60 s): DERC1 ran until then."""
    client = Client()
    derc1 = ctl("DERC1", 0, 600, program="/derp/6", primacy=2, export_limit_w=2 * MAX_W)
    derc2 = ctl("DERC2", 30, 840, program="/derp/1", primacy=1, created_s=30, export_limit_w=0.0)
    client.tick(0, [derc1])
    client.tick(60, [derc1, derc2])
    superseded = [r for r in client.sent if r.status == 7]
    assert [(r.subject_mrid, r.created_at) for r in superseded] == [("DERC1", at(60))]
    assert client.records["DERC1"].ended_at == at(60)


def test_gen_10_independent_fields_of_two_programs_apply_together() -> None:
    """GEN-10 (m)-(q): DERC4 (primacy 1: GenLimW 0, Connect false) and DERC5 (primacy 2:
    ExpLimW 200 %) both start; after DERC4 completes DERC5 is still in force."""
    client = Client()
    derc4 = ctl("DERC4", 0, 300, primacy=1, generation_limit_w=0.0, connect=False)
    derc5 = ctl("DERC5", 0, 1200, program="/derp/6", primacy=2, export_limit_w=2 * MAX_W)
    result = client.tick(0, [derc4, derc5])
    assert client.statuses("DERC4") == [1, 2] and client.statuses("DERC5") == [1, 2]
    both = envelope_at(result.envelopes, at(10))
    assert both is not None
    assert (both.generation_limit_w, both.connect, both.export_limit_w) == (0.0, False, 2 * MAX_W)
    client.tick(400, [derc4, derc5])
    assert client.statuses("DERC4") == [1, 2, 3] and client.statuses("DERC5") == [1, 2]
    assert client.in_force(401).export_limit_w == 2 * MAX_W  # type: ignore[union-attr]


def test_gen_10_lower_priority_control_keeps_fields_nobody_above_sets() -> None:
    """GEN-10 (v)-(w): DERC7 (primacy 1, ExpLimW 0) and DERC8 (primacy 2, ExpLimW 50 %,
    GenLimW 30 %): both start; export from DERC7, generation from DERC8; nobody gets 7."""
    client = Client()
    derc7 = ctl("DERC7", 0, 300, primacy=1, export_limit_w=0.0)
    derc8 = ctl(
        "DERC8", 0, 300, program="/derp/6", primacy=2,
        export_limit_w=0.5 * MAX_W, generation_limit_w=0.3 * MAX_W,
    )  # fmt: skip
    result = client.tick(0, [derc7, derc8])
    merged = envelope_at(result.envelopes, at(10))
    assert merged is not None
    assert (merged.export_limit_w, merged.generation_limit_w) == (0.0, 0.3 * MAX_W)
    client.tick(300, [derc7, derc8])
    assert client.statuses("DERC7") == [1, 2, 3] and client.statuses("DERC8") == [1, 2, 3]


def test_gen_10_defaults_lowest_primacy_wins_per_field_and_fills_control_gaps() -> None:
    """GEN-10 (b), (ee): DERP1's default (primacy 1) wins over DERP6's; a field only DERP6's
    default sets still applies; default fields no control sets stay in force under a control."""
    defaults = [
        dflt("dderc6", primacy=2, program="/derp/6", export_limit_w=0.2 * MAX_W, load_limit_w=5.0),
        dflt("dderc1", primacy=1, program="/derp/1", export_limit_w=0.5 * MAX_W,
             import_limit_w=0.0, ramp_rate_pct_per_s=1.67),
    ]  # fmt: skip
    client = Client(defaults)
    result = client.tick(0, [ctl("C", 10, 60, export_limit_w=MAX_W)])
    idle = envelope_at(result.envelopes, at(0))
    assert idle is not None and idle.is_default and idle.control_id == "dderc1"
    assert (idle.export_limit_w, idle.import_limit_w, idle.load_limit_w) == (0.5 * MAX_W, 0.0, 5.0)
    assert idle.ramp_rate_pct_per_s == 1.67
    busy = envelope_at(result.envelopes, at(20))
    assert busy is not None and not busy.is_default
    assert (busy.export_limit_w, busy.import_limit_w, busy.ramp_rate_pct_per_s) == (
        MAX_W, 0.0, 1.67,
    )  # fmt: skip


def test_invalid_defaults_are_ignored() -> None:
    client = Client(
        [dflt("bad", primacy=0, export_limit_w=-1.0), dflt("ok", primacy=5, export_limit_w=9.0)]
    )
    result = client.tick(0, [])
    assert [e.control_id for e in result.envelopes] == ["ok"]


# --- communication loss (ALL-23) --------------------------------------------------------------


def test_all_23_comm_loss_follows_the_stored_schedule_then_the_default() -> None:
    client = Client([dflt("d", export_limit_w=0.0, import_limit_w=0.0)])
    controls = [ctl(f"DERC{i}", 60 * i, 60, export_limit_w=100.0 * (i + 1)) for i in range(5)]
    client.tick(0, controls)
    # server unreachable from 10 s: the client keeps evaluating with the last list fetched
    result = client.tick(200, controls, last_server_contact=at(10))
    in_force = envelope_at(result.envelopes, at(250))
    assert in_force is not None and in_force.control_id == "DERC4"
    assert (in_force.export_limit_w, in_force.import_limit_w) == (500.0, 0.0)
    assert envelope_at(result.envelopes, at(301)).is_default  # type: ignore[union-attr]


def test_all_23_comm_loss_timeout_reverts_to_the_default() -> None:
    client = Client([dflt("d", export_limit_w=0.0)])
    controls = [ctl("LONG", 0, 3600, export_limit_w=5000.0)]
    client.tick(0, controls)
    kwargs = {"last_server_contact": at(10), "comm_loss_timeout_s": 600}
    before = client.tick(300, controls, **kwargs)
    assert envelope_at(before.envelopes, at(300)).export_limit_w == 5000.0  # type: ignore[union-attr]
    after = client.tick(700, controls, **kwargs)
    assert envelope_at(after.envelopes, at(700)).is_default  # type: ignore[union-attr]
    assert client.statuses("LONG") == [1, 2]  # not cancelled: it resumes when the server is back
    back = client.tick(800, controls, last_server_contact=at(790), comm_loss_timeout_s=600)
    assert envelope_at(back.envelopes, at(800)).export_limit_w == 5000.0  # type: ignore[union-attr]
    # the envelopes already end at last contact + timeout, for an agent holding them offline
    assert envelope_at(back.envelopes, at(1389)).export_limit_w == 5000.0  # type: ignore[union-attr]
    assert envelope_at(back.envelopes, at(1390)).is_default  # type: ignore[union-attr]


# --- bounds -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"duration_s": 0},
        {"duration_s": 366 * 86400 + 1},
        {"start": T0 + timedelta(days=367)},
        {"randomize_start_s": 3601},
        {"randomize_duration_s": -3601},
        {"primacy": 256},
        {"current_status": 5},
        {"limits": DerLimits(import_limit_w=float("nan"))},
        {"limits": DerLimits(export_limit_w=2e7)},
        {"start": datetime(2026, 12, 6, 17, 0)},  # naive
    ],
)
def test_absurd_controls_are_rejected_invalid(bad: dict[str, object]) -> None:
    control = replace(ctl("C", 0, 60, export_limit_w=1.0), **bad)  # type: ignore[arg-type]
    client = Client()
    result = client.tick(0, [control])
    assert [r.status for r in result.responses] == [1, 253]
    assert result.envelopes == ()


def test_control_count_is_capped_recorded_first_and_the_rest_not_cancelled() -> None:
    many = [ctl(f"C{i:04}", i, 600, export_limit_w=1.0) for i in range(MAX_CONTROLS + 50)]
    client = Client()
    result = client.tick(0, many[50:])  # the first MAX_CONTROLS by start are looked at
    assert set(result.records) == {c.mrid for c in many[50 : 50 + MAX_CONTROLS]}
    result = client.tick(1, many)
    # the recorded ones keep their places; the earlier-starting newcomers wait, and the
    # recorded-but-unlooked-at ones are not taken for removed
    assert set(result.records) == set(c.mrid for c in many[50 : 50 + MAX_CONTROLS])
    assert all(r.status != 6 for r in client.sent)


def test_records_of_vanished_controls_are_bounded() -> None:
    client = Client()
    for batch in range(6):
        controls = [ctl(f"B{batch}-{i}", 0, 600, export_limit_w=1.0) for i in range(MAX_CONTROLS)]
        client.tick(batch, controls)
    assert len(client.records) <= MAX_RECORDS
    assert all(mrid in client.records for mrid in (f"B5-{i}" for i in range(MAX_CONTROLS)))


def test_control_with_only_unsupported_modes_is_rejected_not_applicable() -> None:
    client = Client()
    fixed_w = replace(ctl("FIXED", 0, 60), unsupported_modes=frozenset({"opModFixedW"}))
    mixed = replace(
        ctl("MIXED", 0, 60, export_limit_w=9.0), unsupported_modes=frozenset({"opModFixedVar"})
    )
    result = client.tick(0, [fixed_w, mixed])
    assert client.statuses("FIXED") == [1, 252]
    assert client.statuses("MIXED") == [1, 2]
    assert envelope_at(result.envelopes, at(1)).export_limit_w == 9.0  # type: ignore[union-attr]


def test_controls_without_a_usable_mrid_or_reply_to_are_bounded() -> None:
    client = Client()
    result = client.tick(
        0,
        [ctl("", 0, 60, export_limit_w=1.0), ctl("x" * 65, 0, 60, export_limit_w=1.0),
         ctl("LONGREPLY", 0, 60, reply_to="/" * 1025, export_limit_w=2.0)],
    )  # fmt: skip
    assert set(result.records) == {"LONGREPLY"}
    assert result.responses == ()  # no usable replyTo
    assert envelope_at(result.envelopes, at(1)).export_limit_w == 2.0  # type: ignore[union-attr]


def test_duplicate_mrids_keep_the_first() -> None:
    client = Client()
    result = client.tick(
        0, [ctl("C", 0, 60, export_limit_w=1.0), ctl("C", 0, 60, export_limit_w=2.0)]
    )
    assert envelope_at(result.envelopes, at(1)).export_limit_w == 1.0  # type: ignore[union-attr]
    assert [r.status for r in result.responses] == [1, 2]


def test_record_json_round_trip_and_rejects_garbage() -> None:
    client = Client()
    client.tick(0, [ctl("C", 0, 60, rand_start=5, export_limit_w=1.0)])
    record = client.records["C"]
    assert ControlRecord.from_json(record.to_json()) == record
    old_row = {"mrid": "C", "effective_start": T0.isoformat(), "effective_end": T0.isoformat(),
               "responses_sent": [1]}  # fmt: skip
    assert ControlRecord.from_json(old_row).end_status is None
    for garbage in (
        {**record.to_json(), "effective_start": "2026-12-06T17:00:00"},  # naive
        {**record.to_json(), "responses_sent": [1, 999]},
        {**record.to_json(), "mrid": ""},
        {**record.to_json(), "end_status": "3"},
    ):
        with pytest.raises(ValueError):
            ControlRecord.from_json(garbage)


def test_all_30_restart_resumes_from_persisted_records() -> None:
    """ALL-30: after a restart (records through JSON) nothing is answered twice, the drawn
    randomisation is kept, and the control in force is the same."""
    control = ctl("DERC1", -60, 900, rand_start=30, export_limit_w=0.5 * MAX_W)
    client = Client(random_seconds=lambda bound: 17)
    before = client.tick(0, [control])
    assert client.statuses("DERC1") == [1, 2]
    stored = {mrid: r.to_json() for mrid, r in client.records.items()}
    restarted = Client(random_seconds=lambda bound: pytest.fail("drawn again"))  # type: ignore[arg-type,return-value]
    restarted.records = {mrid: ControlRecord.from_json(row) for mrid, row in stored.items()}
    after = restarted.tick(0, [control])
    assert after.responses == () and after.envelopes == before.envelopes
    restarted.tick(900, [control])
    assert restarted.statuses("DERC1") == [3]


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError):
        evaluate("s", [], [], {}, datetime(2026, 1, 1), no_random)


# --- properties -------------------------------------------------------------------------------

PROGRAMS = {"/derp/a": 0, "/derp/b": 1, "/derp/c": 1}  # two programs share a primacy
TERMINAL = {3, 6, 7, 252, 253, 254}
FIELD_VALUES = {
    "export_limit_w": st.sampled_from([0.0, 1500.0, 5000.0]),
    "import_limit_w": st.sampled_from([0.0, 2000.0]),
    "generation_limit_w": st.sampled_from([0.0, 3000.0]),
    "energize": st.booleans(),
}


@st.composite
def scripted_control(
    draw: st.DrawFn, index: int
) -> tuple[CsipControl, int, int | None, int | None]:
    """A control, the tick it appears at, and the ticks it is cancelled / leaves the list at."""
    program = draw(st.sampled_from(sorted(PROGRAMS)))
    names = draw(st.sets(st.sampled_from(sorted(FIELD_VALUES)), min_size=1, max_size=3))
    limits = {name: draw(FIELD_VALUES[name]) for name in names}
    control = ctl(
        f"C{index}",
        draw(st.integers(-200, 900)),
        draw(st.integers(1, 500)),
        program=program,
        primacy=PROGRAMS[program],
        created_s=draw(st.integers(-100, 100)),
        status=draw(st.sampled_from([0, 0, 0, 1, 4])),
        rand_start=draw(st.sampled_from([0, 0, 60, -60, 3600])),
        rand_duration=draw(st.sampled_from([0, 0, 30, -30])),
        required=draw(st.sampled_from([0x00, 0x01, 0x03])),
        **limits,
    )
    appears = draw(st.integers(0, 5))
    cancelled = draw(st.none() | st.integers(appears, 8))
    leaves = draw(st.none() | st.integers(appears, 8))
    return control, appears, cancelled, leaves


@st.composite
def scenario(
    draw: st.DrawFn,
) -> tuple[list[tuple[CsipControl, int, int | None, int | None]], list[int]]:
    count = draw(st.integers(1, 7))
    scripts = [draw(scripted_control(i)) for i in range(count)]
    steps = draw(st.lists(st.integers(1, 200), min_size=3, max_size=9))
    times = [sum(steps[: i + 1]) - 100 for i in range(len(steps))]
    return scripts, times


def listed_at(
    scripts: list[tuple[CsipControl, int, int | None, int | None]], tick: int
) -> list[CsipControl]:
    out = []
    for control, appears, cancelled, leaves in scripts:
        if tick < appears or (leaves is not None and tick >= leaves):
            continue
        out.append(
            replace(control, current_status=2)
            if cancelled is not None and tick >= cancelled
            else control
        )
    return out


def instants(envelopes: Sequence[OperatingEnvelope]) -> list[datetime]:
    points = {e.start for e in envelopes if not e.is_default} | {
        e.end for e in envelopes if e.end is not None
    }
    ordered = sorted(points)
    return ordered + [a + (b - a) / 2 for a, b in itertools.pairwise(ordered)]


def assert_resolved(envelopes: Sequence[OperatingEnvelope]) -> None:
    """At any instant each field is set by at most one non-default envelope."""
    for t in instants(envelopes):
        holders: dict[str, str | None] = {}
        for e in envelopes:
            if e.is_default or not e.covers(t):
                continue
            for name in ("export_limit_w", "import_limit_w", "generation_limit_w", "energize"):
                if getattr(e, name) is not None:
                    assert name not in holders, (t, name, holders[name], e.control_id)
                    holders[name] = e.control_id


@settings(max_examples=150, deadline=None)
@given(scenario(), st.randoms(use_true_random=False))
def test_property_life_cycle_invariants(plan: object, rng: object) -> None:
    """Over any run: no response twice, responses in life-cycle order with one terminal at
    most, created_at within [received, now], fields resolved at every instant, randomised
    intervals within their bounds, and evaluate idempotent given its own records."""
    scripts, times = plan  # type: ignore[misc]
    client = Client(
        [dflt("d", export_limit_w=100.0)],
        random_seconds=lambda b: rng.randint(min(0, b), max(0, b)),  # type: ignore[attr-defined]
    )
    by_mrid = {c.mrid: c for c, *_ in scripts}
    for tick, second in enumerate(times):
        listed = listed_at(scripts, tick)
        result = client.tick(second, listed)
        assert_resolved(result.envelopes)
        for response in result.responses:
            record = result.records.get(response.subject_mrid)
            assert response.created_at <= at(second)
            assert (
                record is None
                or record.received_at is None
                or response.created_at >= record.received_at
            )
        for envelope in result.envelopes:
            assert envelope.end is None or envelope.end > at(second)  # the past is left out
            if envelope.control_id in by_mrid and not envelope.is_default:
                control = by_mrid[envelope.control_id]
                record = result.records[control.mrid]
                assert record.effective_start <= envelope.start
                assert envelope.end is not None and envelope.end <= record.effective_end
                for name in FIELD_VALUES:
                    if getattr(envelope, name) is not None:
                        assert getattr(envelope, name) == getattr(control.limits, name)
                if record.end_status in (6, 7):  # nothing in force after it was ended
                    assert record.ended_at is not None and envelope.end <= record.ended_at
        for mrid, record in result.records.items():
            control = by_mrid[mrid]
            if record.end_status in (253, 254) or record.scheduled_end is None:
                continue
            shift = (record.effective_start - control.start).total_seconds()
            bound = control.randomize_start_s
            assert min(0, bound) <= shift <= max(0, bound)
            stretch = (
                record.effective_end - record.effective_start
            ).total_seconds() - control.duration_s
            bound = control.randomize_duration_s
            assert min(0, bound) <= stretch <= max(
                0, bound
            ) or record.effective_end - record.effective_start == timedelta(seconds=1)
        again = evaluate(
            "home-1", listed, client.defaults, result.records, at(second), client.random_seconds
        )
        assert again.responses == ()
        assert again.envelopes == result.envelopes
        assert dict(again.records) == dict(result.records)
    pairs = [(r.subject_mrid, r.status) for r in client.sent]
    assert len(pairs) == len(set(pairs))
    for mrid in by_mrid:
        statuses = client.statuses(mrid)
        assert statuses == sorted(statuses)
        assert len(TERMINAL.intersection(statuses)) <= 1


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.integers(-300, 300), st.integers(1, 400)),
        min_size=1,
        max_size=8,
    )
)
def test_property_single_program_newest_holds_the_field(specs: list[tuple[int, int, int]]) -> None:
    """One program, one field, no randomisation: at any instant the export limit in force is
    that of the newest control whose interval covers it and which nothing newer superseded
    (2030.5 event rules); with nothing covering it, the default."""
    controls = [
        ctl(f"C{i}", start, duration, created_s=i, export_limit_w=float(1000 * (i + 1)))
        for i, (_, start, duration) in enumerate(specs)
    ]
    client = Client([dflt("d", export_limit_w=1.0)])
    result = client.tick(-400, controls)
    assert_resolved(result.envelopes)

    # Superseded at the first instant a newer control with an overlapping schedule is in force
    # (a newer one that was itself superseded before it started takes nothing).
    def interval(c: CsipControl) -> tuple[datetime, datetime]:
        return c.start, c.start + timedelta(seconds=c.duration_s)

    def alive_until(c: CsipControl) -> datetime:
        start, end = interval(c)
        cut = end
        for other in controls:
            if other.creation_time <= c.creation_time or not (
                interval(other)[0] < end and start < interval(other)[1]
            ):
                continue
            from_, until = max(start, other.start), min(end, alive_until(other))
            if other.start < alive_until(other) and from_ < until:
                cut = min(cut, from_)
        return cut

    for second in range(-350, 800, 25):
        t = at(second)
        covering = [c for c in controls if c.start <= t < alive_until(c)]
        expected = (
            max(covering, key=lambda c: c.creation_time).limits.export_limit_w if covering else 1.0
        )
        in_force = envelope_at(result.envelopes, t)
        assert in_force is not None and in_force.export_limit_w == expected, second


# --- rampTms (ALL-25, ALL-28) -----------------------------------------------------------------


def test_all_25_a_control_with_ramp_time_is_answered_like_any_other_and_carries_it() -> None:
    """rampTms is supported: received, started, completed (no 252), and the control's
    envelope carries the ramp time; the default's fill during it does not."""
    client = Client([dflt("d", export_limit_w=0.0, import_limit_w=0.0, ramp_rate_pct_per_s=1.0)])
    derc = replace(
        ctl("DERC1", 0, 120, export_limit_w=0.3 * MAX_W, import_limit_w=0.3 * MAX_W),
        ramp_time_s=60.0,
    )
    result = client.tick(0, [derc])
    assert client.statuses("DERC1") == [1, 2]
    mine = [e for e in result.envelopes if e.control_id == "DERC1"]
    assert mine and all(e.ramp_time_s == 60.0 for e in mine)
    assert all(e.ramp_time_s is None for e in result.envelopes if e.control_id == "d")
    in_force = client.in_force(1)
    assert in_force is not None and in_force.ramp_time_s == 60.0
    assert in_force.ramp_rate_pct_per_s == 1.0  # the default's setGradW carries in too
    client.tick(121, [derc])
    assert client.statuses("DERC1") == [1, 2, 3]
    after = client.in_force(122)
    assert after is not None and after.ramp_time_s is None and after.export_limit_w == 0.0


@pytest.mark.parametrize("ramp_s", [-1.0, 0.0, float("nan"), 3601.0])
def test_a_control_with_an_absurd_ramp_time_is_rejected_invalid(ramp_s: float) -> None:
    client = Client()
    bad = replace(ctl("BAD", 0, 60, export_limit_w=1.0), ramp_time_s=ramp_s)
    result = client.tick(0, [bad])
    assert client.statuses("BAD") == [1, 253]
    assert not any(e.control_id == "BAD" for e in result.envelopes)
