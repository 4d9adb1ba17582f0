"""The control life cycle the client uses: csms.domain.csip_controls (branch i18-controls).

INTERIM: until that module is on this branch, a minimal stand-in with its API (no
randomisation, primacy then latest start wins, Responses received/started/completed/cancelled/
superseded). Replace the body of this module by re-exports when merging i18-controls.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta

from csms.domain.envelopes import OperatingEnvelope

SOURCE = "csip-aus"
RECEIVED, STARTED, COMPLETED, CANCELLED, SUPERSEDED = 1, 2, 3, 6, 7


@dataclass(frozen=True)
class DerLimits:
    export_limit_w: float | None = None
    import_limit_w: float | None = None
    generation_limit_w: float | None = None
    load_limit_w: float | None = None
    energize: bool | None = None
    connect: bool | None = None
    ramp_rate_pct_per_s: float | None = None


@dataclass(frozen=True)
class CsipControl:
    mrid: str
    href: str | None
    program_href: str
    primacy: int
    creation_time: datetime
    start: datetime
    duration_s: int
    randomize_start_s: int
    randomize_duration_s: int
    current_status: (
        int  # EventStatus: 0 scheduled, 1 active, 2 cancelled, 3 cancelled+rand, 4 superseded
    )
    reply_to: str | None
    response_required: int
    limits: DerLimits


@dataclass(frozen=True)
class CsipDefaultControl:
    mrid: str
    href: str | None
    program_href: str
    primacy: int
    limits: DerLimits


@dataclass(frozen=True)
class ControlRecord:
    mrid: str
    effective_start: datetime
    effective_end: datetime
    responses_sent: tuple[int, ...] = ()

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["effective_start"] = self.effective_start.isoformat()
        data["effective_end"] = self.effective_end.isoformat()
        data["responses_sent"] = list(self.responses_sent)
        return data

    @classmethod
    def from_json(cls, data: dict[str, object]) -> ControlRecord:
        return cls(
            mrid=str(data["mrid"]),
            effective_start=datetime.fromisoformat(str(data["effective_start"])),
            effective_end=datetime.fromisoformat(str(data["effective_end"])),
            responses_sent=tuple(int(s) for s in json.loads(json.dumps(data["responses_sent"]))),
        )


@dataclass(frozen=True)
class DueResponse:
    reply_to: str
    subject_mrid: str
    status: int
    created_at: datetime


@dataclass(frozen=True)
class Evaluation:
    envelopes: list[OperatingEnvelope] = field(default_factory=list)
    responses: list[DueResponse] = field(default_factory=list)
    records: list[ControlRecord] = field(default_factory=list)


def _envelope(
    site_id: str,
    mrid: str,
    start: datetime,
    end: datetime | None,
    limits: DerLimits,
    now: datetime,
    *,
    is_default: bool,
) -> OperatingEnvelope:
    return OperatingEnvelope(
        site_id=site_id,
        source=SOURCE,
        control_id=mrid,
        is_default=is_default,
        start=start,
        end=end,
        received_at=now,
        **asdict(limits),
    )


def evaluate(
    site_id: str,
    controls: Sequence[CsipControl],
    defaults: Sequence[CsipDefaultControl],
    records: Sequence[ControlRecord],
    now: datetime,
    random_seconds: object = None,
) -> Evaluation:
    known = {r.mrid: r for r in records}
    out_records: list[ControlRecord] = []
    responses: list[DueResponse] = []
    envelopes: list[OperatingEnvelope] = []
    live = [c for c in controls if c.current_status in (0, 1)]
    best_primacy = min((c.primacy for c in live), default=None)
    for control in controls:
        start = control.start
        end = start + timedelta(seconds=control.duration_s)
        record = known.get(control.mrid) or ControlRecord(control.mrid, start, end)
        sent = list(record.responses_sent)

        def due(status: int, control: CsipControl = control, sent: list[int] = sent) -> None:
            if status not in sent and control.reply_to and control.response_required:
                responses.append(DueResponse(control.reply_to, control.mrid, status, now))
            sent.append(status) if status not in sent else None

        due(RECEIVED)
        if control.current_status in (2, 3):
            if STARTED in sent:
                due(CANCELLED)
        elif control.current_status == 4 or (
            best_primacy is not None and control.primacy > best_primacy and start <= now < end
        ):
            if STARTED in sent:
                due(SUPERSEDED)
        else:
            if end > now:
                envelopes.append(
                    _envelope(
                        site_id, control.mrid, start, end, control.limits, now, is_default=False
                    )
                )
            if start <= now < end:
                due(STARTED)
            elif now >= end and STARTED in sent:
                due(COMPLETED)
        out_records.append(replace(record, responses_sent=tuple(sent)))
    if defaults:
        best = min(defaults, key=lambda d: d.primacy)
        envelopes.append(
            _envelope(site_id, best.mrid, now, None, best.limits, now, is_default=True)
        )
    return Evaluation(envelopes=envelopes, responses=responses, records=out_records)
