"""The CSIP-AUS / IEEE 2030.5 control life cycle of one site (issue 18), pure: no I/O, no clock.

Over 600 lines because the life cycle is one rule set (first sight, server status, supersede,
responses, the timeline sweep) whose parts only make sense together, and half of it is this
docstring citing where each rule comes from.

The CSIP client fetches a site's DERControls and DefaultDERControls, converts them into
`CsipControl` / `CsipDefaultControl`, and calls `evaluate` with the `ControlRecord`s it persisted
last time and the current time. It gets back the resolved `OperatingEnvelope`s, the `Response`s
that are now due (POST each to its `reply_to`) and the records to persist. `random_seconds` is
injected so that tests are deterministic; it is drawn once per control and kept in the record.

Rules and their sources (2030.5 = IEEE 2030.5-2018; CACTUS ids are the client procedures in
cactus_test_definitions 1.15, which encode SA TS 5573; envoy 1.5 is the reference server):
- Effective interval (2030.5 RandomizableEvent): start + a randomizeStart offset drawn in
  [0, randomizeStart] (or [randomizeStart, 0] when negative), lasting duration + a
  randomizeDuration offset drawn likewise; at least one second. Both are OneHourRangeType
  (|x| <= 3600). Drawn once, kept in the record (ALL-22).
- Priority between controls: lower DERProgram primacy first, then the newer creationTime
  (2030.5 event rules; envoy orders the same), then mRID for a stable order.
- Resolution is per control field (opModExpLimW, ImpLimW, GenLimW, LoadLimW, Energize, Connect):
  at any instant each field comes from the highest-priority control in force that sets it.
  Controls setting different fields apply together (GEN-10 (m)-(q): DERC4 GenLimW/Connect and
  DERC5 ExpLimW both start; (y)-(z): DERC9 and DERC10 both in force); a lower-priority control
  keeps the fields nobody above it sets (GEN-10 (v)-(w): DERC8 starts beside DERC7).
- Superseded (Response 7, terminal: 2030.5 EventStatus "terminate execution of the event
  immediately"): a control is superseded at the first instant where every field it sets is
  taken by higher-priority controls whose *scheduled* intervals overlap its own - from the same
  program (newer creationTime: ALL-18 (q)-(s), GEN-10 (s)-(u); envoy marks these
  currentStatus 4 itself) or from a program of lower primacy (GEN-10 (e)-(g): DERC1 gets 7).
  It is not resumed when the other control ends (SunSpec CSIP BASIC-021..023 read the same).
  The 7 is sent when that instant is reached (the other control may still be cancelled before
  then), or at once when the server marks it Superseded (currentStatus 4). Overlaps caused
  only by randomisation do not supersede (a judgement: 2030.5 has servers mark Superseded on
  scheduled intervals): there the higher-priority control simply holds the fields, and the
  other completes normally. The simpler reading "another program's control is not superseded,
  just not in force during the overlap" fails GEN-10/LOA-10, which expect 7 for it.
- A control is never in force before the client received it, nor supersedes another then.
  Controls are not edited (2030.5: only their status changes), so the interval drawn at first
  sight is kept for the mRID.
- Cancelled (Response 6): currentStatus 2 ends the control at once; currentStatus 3 (Cancelled
  with randomization) ends it after a random delay up to max(|randomizeStart|,
  |randomizeDuration|) (2030.5 EventStatus). A control that disappears from the server list
  before its scheduled end is taken as cancelled too (2030.5 requires servers to keep cancelled
  events listed; envoy lists deleted controls as Cancelled, and drops any control after its
  scheduled end, ALL-18 (j)-(p)). One that disappears after its scheduled end, or less than
  VANISHED_AT_END_TOLERANCE before it on our estimate of the server's clock (ALL-21: envoy drops
  it at its end on its clock, ahead of ours), completes then;
  a client that wants the randomised tail enforced passes the last fetched control again.
- Responses (2030.5 Table 27, ResponseType): 1 received, 2 started, 3 completed, 6 cancelled,
  7 superseded, 252 rejected (control parameter not applicable), 253 rejected (invalid event),
  254 rejected (event expired: its effective end had passed on receipt). Sent only when
  `reply_to` is set and `responseRequired` asks: bit 0 (0x01) "message received" -> 1; bit 1
  (0x02) "specific response" -> all the others; bit 2 (user response) is not applicable to an
  automated client. Each status at most once per control (`responses_sent`). Every control
  gets 1 on first sight, even one that is then rejected or already cancelled (ALL-18 criterion
  "every control has a received response"); 2 at its effective start, 3 at its effective end
  (ALL-21 criteria: every control 1, 2 and 3).
- DefaultDERControls: per field, the value of the default of lowest primacy that sets it
  (GEN-10 (b), (ee): the DERP1 default wins). A field no control in force sets keeps its
  default value while controls run (GEN-10 comments on the import default during export tests);
  setGradW (as ramp_rate_pct_per_s) therefore carries into controls too. The default envelope
  is open-ended with start and received_at at the epoch, so it does not change between
  evaluations; fields a default supplies during a control come as a non-default envelope with
  the default's mRID as control_id.
- rampTms (2030.5 DERControlBase: the time to move from the current setting to the control's;
  ALL-25, ALL-28): not a field of its own; the envelopes of the fields a control holds carry
  its `ramp_time_s`, and the enforcement steps the stations' bounds over it
  (csms.domain.envelope_ramps). A control with one is answered like any other.
- Communication loss (ALL-23: "DER should continue to follow the DERControl schedule and then
  reduce to the DefaultDERControl value"): by default nothing changes when the server cannot be
  reached. A DNSP that wants a reversion to defaults after a timeout sets `comm_loss_timeout_s`
  with `last_server_contact` (the last successful exchange): controls are then not in force from
  last contact + timeout; the envelopes already end there, so an agent holding them offline
  reverts on time. Records and responses are unaffected: a control cut off this way is not
  cancelled and is back in force once the server is reached again.
- Bounds (every number from the server): duration 1 s .. MAX_DURATION_S (366 days); start at
  most MAX_START_AHEAD_S (366 days) ahead; randomisation |x| <= 3600; primacy 0..255 (UInt8);
  currentStatus 0..4; mRID 1..64 characters; limits as OperatingEnvelope validates them (0..10
  MW, ramp in (0, 100] %/s, rampTms in (0, 1 h]). A control outside these is rejected (253) and
  never applied; a
  default outside them is ignored; a control without a usable mRID cannot be answered and is
  left out, and a replyTo over 1024 characters is not used. A control that sets none of the
  fields above but modes the client could not map (`unsupported_modes`, e.g. opModFixedW) is
  rejected 252. At most MAX_CONTROLS controls are looked at per evaluation (those already
  recorded first, then the earliest starts; CSIP asks for at least 24) and MAX_DEFAULTS
  defaults; duplicate mRIDs keep the first. Records of controls no longer listed are dropped
  RECORD_RETENTION after they end, and at most MAX_RECORDS are returned.

Output envelopes are already resolved: at any instant no two non-default envelopes set the same
field, so `envelopes.envelope_at` only merges disjoint fields. Past segments are left out.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from typing import Any

from csms.domain.envelopes import MAX_RAMP_TIME_S, OperatingEnvelope

SOURCE = "csip-aus"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_CONTROLS = 256
MAX_DEFAULTS = 64
MAX_DURATION_S = 366 * 86400
MAX_START_AHEAD_S = 366 * 86400
MAX_RANDOMIZE_S = 3600  # OneHourRangeType
MAX_PRIMACY = 255  # UInt8
MAX_MRID_CHARS = 64
MAX_REPLY_TO_CHARS = 1024
MAX_RECORDS = 4 * MAX_CONTROLS
RECORD_RETENTION = timedelta(days=1)
# A control gone from the list this close before its scheduled end ended, not cancelled: the
# server dropped it on its own clock, which ours trails by Time's whole-second resolution and
# by the time between the client's clock read and the list fetch (ALL-21).
VANISHED_AT_END_TOLERANCE = timedelta(seconds=5)
RESPONSE_RECEIVED_BIT = 0x01
RESPONSE_SPECIFIC_BIT = 0x02


class ResponseStatus(IntEnum):
    """2030.5 Table 27 (ResponseType) codes this client sends."""

    RECEIVED = 1
    STARTED = 2
    COMPLETED = 3
    CANCELLED = 6
    SUPERSEDED = 7
    REJECTED_NOT_APPLICABLE = 252
    REJECTED_INVALID = 253
    REJECTED_EXPIRED = 254


class EventStatus(IntEnum):
    """2030.5 EventStatus.currentStatus."""

    SCHEDULED = 0
    ACTIVE = 1
    CANCELLED = 2
    CANCELLED_WITH_RANDOMIZATION = 3
    SUPERSEDED = 4


REJECTIONS = frozenset(
    {
        ResponseStatus.REJECTED_NOT_APPLICABLE,
        ResponseStatus.REJECTED_INVALID,
        ResponseStatus.REJECTED_EXPIRED,
    }
)
TERMINAL_STATUSES = frozenset(
    {
        ResponseStatus.COMPLETED,
        ResponseStatus.CANCELLED,
        ResponseStatus.SUPERSEDED,
        ResponseStatus.REJECTED_NOT_APPLICABLE,
        ResponseStatus.REJECTED_INVALID,
        ResponseStatus.REJECTED_EXPIRED,
    }
)


@dataclass(frozen=True)
class DerLimits:
    """Values already scaled by their 2030.5 multiplier, in W; magnitudes >= 0."""

    export_limit_w: float | None = None  # csipaus:opModExpLimW
    import_limit_w: float | None = None  # csipaus:opModImpLimW
    generation_limit_w: float | None = None  # csipaus:opModGenLimW
    load_limit_w: float | None = None  # csipaus:opModLoadLimW
    energize: bool | None = None  # opModEnergize
    connect: bool | None = None  # opModConnect
    ramp_rate_pct_per_s: float | None = None  # DefaultDERControl setGradW / 100

    def fields_set(self) -> frozenset[str]:
        return frozenset(f.name for f in fields(self) if getattr(self, f.name) is not None)


LIMIT_FIELDS = tuple(f.name for f in fields(DerLimits))


@dataclass(frozen=True)
class CsipControl:
    """One DERControl as fetched."""

    mrid: str
    href: str
    program_href: str
    primacy: int
    creation_time: datetime
    start: datetime
    duration_s: int
    randomize_start_s: int
    randomize_duration_s: int
    current_status: int  # EventStatus
    reply_to: str | None
    response_required: int  # 2030.5 responseRequired bitmap
    limits: DerLimits
    # Added: DERControlBase modes the client found but cannot map (e.g. opModFixedW).
    # A control with nothing but these is rejected 252 (control parameter not applicable).
    unsupported_modes: frozenset[str] = frozenset()
    # DERControlBase.rampTms / 100: the time to move from the limits in force before it to its
    # own (csms.domain.envelope_ramps); carried by its envelopes, not a field of its own.
    ramp_time_s: float | None = None


@dataclass(frozen=True)
class CsipDefaultControl:
    """One DefaultDERControl."""

    mrid: str
    href: str
    program_href: str
    primacy: int
    limits: DerLimits


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _parse_moment(value: Any, name: str, optional: bool = False) -> datetime | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name} must be an ISO 8601 string")
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware")
    return moment


def _parse_small_int(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 255:
        raise ValueError(f"{name} must be an integer 0..255")
    return value


@dataclass(frozen=True)
class ControlRecord:
    """What the client persists per control mRID between evaluations."""

    mrid: str
    effective_start: datetime
    effective_end: datetime
    responses_sent: frozenset[int]
    # Added for the life cycle (all optional so older rows still load):
    received_at: datetime | None = None  # first sight
    scheduled_end: datetime | None = None  # start + duration, as the server scheduled it
    reply_to: str | None = None  # kept to answer a control after it left the server list
    response_required: int = 0
    ended_at: datetime | None = None  # set once the control reached a terminal state
    end_status: int | None = None  # the terminal ResponseStatus (3, 6, 7, 252..254)

    @property
    def terminal(self) -> bool:
        return self.end_status is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "mrid": self.mrid,
            "effective_start": _iso(self.effective_start),
            "effective_end": _iso(self.effective_end),
            "responses_sent": sorted(self.responses_sent),
            "received_at": _iso(self.received_at),
            "scheduled_end": _iso(self.scheduled_end),
            "reply_to": self.reply_to,
            "response_required": self.response_required,
            "ended_at": _iso(self.ended_at),
            "end_status": self.end_status,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ControlRecord:
        if not isinstance(data, dict):
            raise ValueError("a control record must be an object")
        mrid = data.get("mrid")
        if not isinstance(mrid, str) or not 0 < len(mrid) <= MAX_MRID_CHARS:
            raise ValueError("mrid must be a string of 1..64 characters")
        sent = data.get("responses_sent", [])
        if not isinstance(sent, list) or len(sent) > 16:
            raise ValueError("responses_sent must be a short list")
        reply_to = data.get("reply_to")
        if reply_to is not None and not isinstance(reply_to, str):
            raise ValueError("reply_to must be a string")
        end_status = data.get("end_status")
        start = _parse_moment(data.get("effective_start"), "effective_start")
        end = _parse_moment(data.get("effective_end"), "effective_end")
        assert start is not None and end is not None
        return cls(
            mrid=mrid,
            effective_start=start,
            effective_end=end,
            responses_sent=frozenset(_parse_small_int(s, "responses_sent") for s in sent),
            received_at=_parse_moment(data.get("received_at"), "received_at", True),
            scheduled_end=_parse_moment(data.get("scheduled_end"), "scheduled_end", True),
            reply_to=reply_to,
            response_required=_parse_small_int(
                data.get("response_required", 0), "response_required"
            ),
            ended_at=_parse_moment(data.get("ended_at"), "ended_at", True),
            end_status=None if end_status is None else _parse_small_int(end_status, "end_status"),
        )


@dataclass(frozen=True)
class DueResponse:
    reply_to: str
    subject_mrid: str
    status: int
    created_at: datetime


@dataclass(frozen=True)
class Evaluation:
    envelopes: tuple[OperatingEnvelope, ...]
    responses: tuple[DueResponse, ...]
    records: Mapping[str, ControlRecord]


def unsent(record: ControlRecord, statuses: Sequence[int]) -> ControlRecord:
    """The record as if `statuses` had not been sent: for a client whose POST failed, so the
    next evaluation offers them again."""
    return replace(record, responses_sent=record.responses_sent - frozenset(statuses))


# --- validation -------------------------------------------------------------------------------


def _aware(moment: datetime) -> bool:
    return isinstance(moment, datetime) and moment.tzinfo is not None


def _limits_error(limits: DerLimits) -> str | None:
    """Validate the limits the way an envelope will (0..10 MW, ramp in (0, 100])."""
    try:
        OperatingEnvelope(
            site_id="-",
            source=SOURCE,
            control_id=None,
            is_default=False,
            start=EPOCH,
            end=None,
            received_at=EPOCH,
            **{n: getattr(limits, n) for n in LIMIT_FIELDS},
        )
    except (ValueError, TypeError) as error:
        return str(error)
    return None


def _mrid_ok(mrid: object) -> bool:
    return isinstance(mrid, str) and 0 < len(mrid) <= MAX_MRID_CHARS


def control_error(control: CsipControl, now: datetime) -> str | None:
    """Why `control` is rejected as invalid (Response 253), or None."""
    if not (_aware(control.start) and _aware(control.creation_time)):
        return "times must be timezone-aware"
    if not 0 <= control.primacy <= MAX_PRIMACY:
        return "primacy out of range"
    if not 0 < control.duration_s <= MAX_DURATION_S:
        return "duration out of range"
    if control.start - now > timedelta(seconds=MAX_START_AHEAD_S):
        return "start too far ahead"
    if max(abs(control.randomize_start_s), abs(control.randomize_duration_s)) > MAX_RANDOMIZE_S:
        return "randomisation out of range"
    if not EventStatus.SCHEDULED <= control.current_status <= EventStatus.SUPERSEDED:
        return "unknown currentStatus"
    ramp = control.ramp_time_s
    if ramp is not None and not (math.isfinite(ramp) and 0 < ramp <= MAX_RAMP_TIME_S):
        return "rampTms out of range"
    return _limits_error(control.limits)


def _default_ok(default: CsipDefaultControl) -> bool:
    return (
        _mrid_ok(default.mrid)
        and 0 <= default.primacy <= MAX_PRIMACY
        and _limits_error(default.limits) is None
    )


def _draw(random_seconds: Callable[[int], int], bound: int) -> int:
    """A random offset between 0 and `bound` inclusive (either sign), clamped to that range."""
    if bound == 0:
        return 0
    value = int(random_seconds(bound))
    return max(min(0, bound), min(max(0, bound), value))


def _reply_to_ok(reply_to: object) -> bool:
    return isinstance(reply_to, str) and 0 < len(reply_to) <= MAX_REPLY_TO_CHARS


def _wants(record: ControlRecord, status: int) -> bool:
    if not record.reply_to:
        return False
    bit = RESPONSE_RECEIVED_BIT if status == ResponseStatus.RECEIVED else RESPONSE_SPECIFIC_BIT
    return bool(record.response_required & bit)


class _Responder:
    """Collects due responses, each status at most once per control."""

    def __init__(self) -> None:
        self.due: list[DueResponse] = []

    def send(self, record: ControlRecord, status: int, at: datetime) -> ControlRecord:
        if status in record.responses_sent or not _wants(record, status):
            return record
        assert record.reply_to is not None
        if record.received_at is not None:
            at = max(at, record.received_at)
        self.due.append(DueResponse(record.reply_to, record.mrid, int(status), at))
        return replace(record, responses_sent=record.responses_sent | {int(status)})


# --- selection --------------------------------------------------------------------------------


def _select(
    controls: Sequence[CsipControl], records: Mapping[str, ControlRecord]
) -> list[CsipControl]:
    """Deduplicated by mRID (first wins), at most MAX_CONTROLS: recorded ones first, then the
    earliest starts. A control without a usable mRID cannot be answered and is left out."""
    seen: dict[str, CsipControl] = {}
    for control in controls:
        if _mrid_ok(control.mrid) and control.mrid not in seen:
            seen[control.mrid] = control
    unique = list(seen.values())
    if len(unique) <= MAX_CONTROLS:
        return unique

    def rank(control: CsipControl) -> tuple[int, float]:
        start = control.start.timestamp() if _aware(control.start) else math.inf
        return (0 if control.mrid in records else 1, start)

    return sorted(unique, key=rank)[:MAX_CONTROLS]


def _first_sight(
    control: CsipControl,
    now: datetime,
    random_seconds: Callable[[int], int],
    responder: _Responder,
) -> ControlRecord:
    """The record of a control seen for the first time: received, maybe rejected."""
    error = control_error(control, now)
    base = ControlRecord(
        mrid=control.mrid,
        effective_start=now,
        effective_end=now,
        responses_sent=frozenset(),
        received_at=now,
        reply_to=control.reply_to if _reply_to_ok(control.reply_to) else None,
        response_required=int(control.response_required) & 0xFF,
    )
    record = responder.send(base, ResponseStatus.RECEIVED, now)
    if error is not None:
        record = replace(record, ended_at=now, end_status=ResponseStatus.REJECTED_INVALID)
        return responder.send(record, ResponseStatus.REJECTED_INVALID, now)
    start = control.start + timedelta(seconds=_draw(random_seconds, control.randomize_start_s))
    lasting = control.duration_s + _draw(random_seconds, control.randomize_duration_s)
    record = replace(
        record,
        effective_start=start,
        effective_end=start + timedelta(seconds=max(1, lasting)),
        scheduled_end=control.start + timedelta(seconds=control.duration_s),
    )
    if record.effective_end <= now:
        record = replace(record, ended_at=now, end_status=ResponseStatus.REJECTED_EXPIRED)
        return responder.send(record, ResponseStatus.REJECTED_EXPIRED, now)
    if control.unsupported_modes and not control.limits.fields_set():
        status = ResponseStatus.REJECTED_NOT_APPLICABLE
        return responder.send(replace(record, ended_at=now, end_status=status), status, now)
    return record


def _apply_server_status(
    control: CsipControl,
    record: ControlRecord,
    now: datetime,
    random_seconds: Callable[[int], int],
) -> ControlRecord:
    """currentStatus Cancelled / Cancelled with randomization / Superseded ends the control. One
    that arrives so on first sight never starts."""
    if record.terminal or record.effective_end <= now:
        return record
    stop = min(now, record.effective_start) if record.received_at == now else now
    if control.current_status == EventStatus.CANCELLED:
        return replace(record, ended_at=stop, end_status=ResponseStatus.CANCELLED)
    if control.current_status == EventStatus.CANCELLED_WITH_RANDOMIZATION:
        bound = max(abs(control.randomize_start_s), abs(control.randomize_duration_s))
        end = stop + timedelta(seconds=_draw(random_seconds, bound))
        return replace(record, ended_at=end, end_status=ResponseStatus.CANCELLED)
    if control.current_status == EventStatus.SUPERSEDED:
        return replace(record, ended_at=stop, end_status=ResponseStatus.SUPERSEDED)
    return record


def _vanished(record: ControlRecord, now: datetime) -> ControlRecord:
    """A recorded control the server no longer lists: cancelled if before its scheduled end
    (less the clock tolerance), else completed now (its limits are no longer known)."""
    if record.terminal:
        return record
    scheduled_end = record.scheduled_end or record.effective_end
    if now < scheduled_end - VANISHED_AT_END_TOLERANCE:
        return replace(record, ended_at=now, end_status=ResponseStatus.CANCELLED)
    return replace(
        record, ended_at=min(now, record.effective_end), end_status=ResponseStatus.COMPLETED
    )


# --- resolution -------------------------------------------------------------------------------

Interval = tuple[datetime, datetime]


@dataclass
class _Item:
    control: CsipControl
    record: ControlRecord
    fields: frozenset[str]
    scheduled: Interval
    window_end: datetime  # effective end, cut by a terminal state or a supersede

    @property
    def key(self) -> tuple[int, float, str]:
        c = self.control
        return (c.primacy, -c.creation_time.timestamp(), c.mrid)

    @property
    def window(self) -> Interval:
        """When it is in force: never before it was received (nor can it supersede then)."""
        start = self.record.effective_start
        if self.record.received_at is not None:
            start = max(start, self.record.received_at)
        return (start, max(start, self.window_end))


def _union(intervals: list[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _intersect(a: list[Interval], b: list[Interval]) -> list[Interval]:
    out: list[Interval] = []
    i = j = 0
    while i < len(a) and j < len(b):
        start, end = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if start < end:
            out.append((start, end))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def _overlap(a: Interval, b: Interval) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def _supersede_instant(item: _Item, above: list[_Item]) -> datetime | None:
    """The first instant of `item`'s window where every field it sets is taken by
    higher-priority controls whose scheduled intervals overlap its own, or None."""
    if not item.fields or item.window[0] >= item.window[1]:
        return None
    covered: list[Interval] = [item.window]
    for name in item.fields:
        takers = [
            other.window
            for other in above
            if name in other.fields
            and _overlap(other.scheduled, item.scheduled)
            and other.window[0] < other.window[1]
        ]
        covered = _intersect(covered, _union(takers))
        if not covered:
            return None
    return covered[0][0]


def _resolve(items: list[_Item], now: datetime) -> None:
    """Cut each item's window where it is superseded; record supersedes that have happened."""
    ordered = sorted(items, key=lambda i: i.key)
    for index, item in enumerate(ordered):
        if item.record.terminal:
            continue
        instant = _supersede_instant(item, ordered[:index])
        if instant is None:
            continue
        item.window_end = min(item.window_end, instant)
        if instant <= now:
            item.record = replace(
                item.record, ended_at=instant, end_status=ResponseStatus.SUPERSEDED
            )


def _resolved_default(defaults: Sequence[CsipDefaultControl]) -> tuple[str | None, dict[str, Any]]:
    """Per field, the value of the lowest-primacy default that sets it."""
    valid = [d for d in defaults[:MAX_DEFAULTS] if _default_ok(d)]
    valid.sort(key=lambda d: (d.primacy, d.program_href, d.mrid))
    values: dict[str, Any] = {}
    for default in valid:
        for name in LIMIT_FIELDS:
            value = getattr(default.limits, name)
            if value is not None and name not in values:
                values[name] = value
    return (valid[0].mrid if valid else None), values


def _envelopes(
    site_id: str,
    items: list[_Item],
    default_id: str | None,
    default_values: dict[str, Any],
    now: datetime,
    cutoff: datetime | None,
) -> list[OperatingEnvelope]:
    """Sweep the timeline: per segment and field, the highest-priority control in force."""
    ordered = sorted((i for i in items if i.window[0] < i.window[1]), key=lambda i: i.key)
    live = [i for i in ordered if i.window[1] > now and (cutoff is None or i.window[0] < cutoff)]
    bounds = sorted({t for i in live for t in i.window} | ({cutoff} if cutoff else set()))
    # (control_id, received_at, frozen values) -> list of [start, end] kept contiguous
    runs: dict[tuple[str, datetime, tuple[tuple[str, Any], ...]], list[list[datetime]]] = {}
    for start, end in itertools.pairwise(bounds):
        if end <= now or (cutoff is not None and start >= cutoff):
            continue
        taken: dict[str, dict[str, Any]] = {}
        holders: dict[str, datetime] = {}
        for item in live:
            if not (item.window[0] <= start and end <= item.window[1]):
                continue
            for name in item.fields:
                if all(name not in v for v in taken.values()):
                    taken.setdefault(item.control.mrid, {})[name] = getattr(
                        item.control.limits, name
                    )
                    holders[item.control.mrid] = item.record.received_at or EPOCH
            if item.control.mrid in taken and item.control.ramp_time_s is not None:
                taken[item.control.mrid]["ramp_time_s"] = item.control.ramp_time_s
        if not taken:
            continue
        claimed = {name for v in taken.values() for name in v}
        fill = {n: v for n, v in default_values.items() if n not in claimed}
        if fill and default_id is not None:
            taken[default_id] = fill
            holders[default_id] = EPOCH
        for mrid, values in taken.items():
            run = runs.setdefault((mrid, holders[mrid], tuple(sorted(values.items()))), [])
            if run and run[-1][1] == start:
                run[-1][1] = end
            else:
                run.append([start, end])
    envelopes = [
        OperatingEnvelope(
            site_id=site_id,
            source=SOURCE,
            control_id=mrid,
            is_default=False,
            start=start,
            end=end,
            received_at=received,
            **dict(values),
        )
        for (mrid, received, values), spans in runs.items()
        for start, end in spans
    ]
    # A default's fill after the controls, so envelope_at names a control as the one in force.
    envelopes.sort(key=lambda e: (e.control_id == default_id, e.start, e.control_id or ""))
    if default_values:
        envelopes.append(
            OperatingEnvelope(
                site_id=site_id,
                source=SOURCE,
                control_id=default_id,
                is_default=True,
                start=EPOCH,
                end=None,
                received_at=EPOCH,
                **default_values,
            )
        )
    return envelopes


# --- evaluation -------------------------------------------------------------------------------


def evaluate(
    site_id: str,
    controls: Sequence[CsipControl],
    defaults: Sequence[CsipDefaultControl],
    records: Mapping[str, ControlRecord],
    now: datetime,
    random_seconds: Callable[[int], int],
    *,
    last_server_contact: datetime | None = None,
    comm_loss_timeout_s: int | None = None,
) -> Evaluation:
    """The site's resolved envelopes, the responses now due and the records to persist.

    `controls` is every DERControl of every DERProgram of the site's FunctionSetAssignments as
    last fetched (during a communication loss, or when one program's list failed to fetch:
    the last list fetched for it, since a recorded control missing here is taken as removed by
    the server). `records` are those this function returned last time (after `unsent` for any
    POST that failed); persist the returned records only once the responses are handed over.
    Call it on every poll or notification and at least at each envelope boundary, so started /
    completed go out on time. With
    `comm_loss_timeout_s` and `last_server_contact` set, controls stop being in force once the
    server has not been reached for that long (defaults stay); without them the stored schedule
    is followed (ALL-23)."""
    if not _aware(now):
        raise ValueError("now must be timezone-aware")
    cutoff: datetime | None = None
    if last_server_contact is not None and comm_loss_timeout_s is not None:
        if not _aware(last_server_contact):
            raise ValueError("last_server_contact must be timezone-aware")
        timeout = max(0, min(int(comm_loss_timeout_s), MAX_DURATION_S))
        cutoff = last_server_contact + timedelta(seconds=timeout)

    responder = _Responder()
    listed = _select(controls, records)
    out: dict[str, ControlRecord] = {}
    items: list[_Item] = []
    for control in listed:
        record = records.get(control.mrid)
        if record is None:
            record = _first_sight(control, now, random_seconds, responder)
        if record.end_status in REJECTIONS:
            out[control.mrid] = _respond(record, now, responder)
            continue
        record = _apply_server_status(control, record, now, random_seconds)
        end = record.effective_end if record.ended_at is None else record.ended_at
        items.append(
            _Item(
                control=control,
                record=record,
                fields=control.limits.fields_set(),
                scheduled=(control.start, control.start + timedelta(seconds=control.duration_s)),
                window_end=max(record.effective_start, min(record.effective_end, end)),
            )
        )
    _resolve(items, now)

    for item in items:
        out[item.control.mrid] = _respond(item.record, now, responder)
    listed_ids = {c.mrid for c in controls}  # listed beyond the cap is not "gone"
    gone: list[ControlRecord] = []
    for mrid, record in records.items():
        if mrid in listed_ids:
            out.setdefault(mrid, record)
            continue
        record = _respond(_vanished(record, now), now, responder)
        if now < _finished(record) + RECORD_RETENTION:
            gone.append(record)
    # Bounded: the records of controls no longer listed that finished last are kept.
    gone.sort(key=_finished, reverse=True)
    for record in gone[: max(0, MAX_RECORDS - len(out))]:
        out[record.mrid] = record

    default_id, default_values = _resolved_default(defaults)
    envelopes = _envelopes(site_id, items, default_id, default_values, now, cutoff)
    responses = sorted(responder.due, key=lambda r: (r.created_at, r.subject_mrid, r.status))
    return Evaluation(envelopes=tuple(envelopes), responses=tuple(responses), records=out)


def _finished(record: ControlRecord) -> datetime:
    return max(record.effective_end, record.ended_at or record.effective_end)


def _respond(record: ControlRecord, now: datetime, responder: _Responder) -> ControlRecord:
    """Started / completed / the terminal response, in event order."""
    start, end = record.effective_start, record.effective_end
    if record.end_status is None and end <= now:
        record = replace(record, ended_at=end, end_status=ResponseStatus.COMPLETED)
    ended = record.ended_at
    # Started unless rejected or ended at or before its own start (cancelled/superseded early).
    rejected = record.end_status in REJECTIONS
    if not rejected and start <= now and (ended is None or ended > start):
        record = responder.send(record, ResponseStatus.STARTED, start)
    if record.end_status in TERMINAL_STATUSES:
        record = responder.send(record, record.end_status, min(ended or now, now))
    return record
