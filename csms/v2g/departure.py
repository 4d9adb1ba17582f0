"""Departure prediction from a vehicle's own session history (pure).

Time of day is circular (23:50 and 00:10 are 20 minutes apart), so the typical departure is
the circular mean of past plug-out times, per weekday when that weekday has enough history and
over all days otherwise. The SoC needed is the reserve plus a high quantile of the SoC used
between unplugging and the next plug-in.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

import numpy as np

from csms.v2g.prices import AEST

MINUTES_PER_DAY = 1440.0


@dataclass(frozen=True)
class SessionRecord:
    plug_in: datetime
    plug_out: datetime
    soc_at_plug_in: float | None = None
    soc_at_plug_out: float | None = None


@dataclass(frozen=True)
class DeparturePrediction:
    departure: datetime  # most likely time
    earliest: datetime  # lower quantile: plan to be ready by then to be safe
    confidence: float  # P(leaves that day) x share of past departures within the window
    basis: str  # "weekday" or "all_days"
    samples: int
    needed_soc: float | None  # None without SoC history


@dataclass(frozen=True)
class DepartureModel:
    min_samples: int = 3
    window: timedelta = timedelta(minutes=30)
    early_quantile: float = 0.10
    consumption_quantile: float = 0.90
    driving_reserve_soc: float = 0.20
    min_day_rate: float = 0.5  # weekdays it leaves on fewer than half of are skipped
    tz: timezone = AEST


def _minutes(moment: datetime, tz: timezone) -> float:
    local = moment.astimezone(tz)
    return local.hour * 60 + local.minute + local.second / 60.0


def circular_mean_minutes(minutes: Sequence[float]) -> float:
    angles = np.asarray(minutes, dtype=float) * 2 * math.pi / MINUTES_PER_DAY
    mean = math.atan2(float(np.sin(angles).mean()), float(np.cos(angles).mean()))
    return (mean * MINUTES_PER_DAY / (2 * math.pi)) % MINUTES_PER_DAY


def _deviations(minutes: Sequence[float], centre: float) -> np.ndarray:
    """Signed minutes from `centre`, wrapped to [-720, 720)."""
    d = np.asarray(minutes, dtype=float) - centre
    return (d + MINUTES_PER_DAY / 2) % MINUTES_PER_DAY - MINUTES_PER_DAY / 2


def _at(day: date, minutes: float, tz: timezone) -> datetime:
    whole = round(minutes) % int(MINUTES_PER_DAY)
    return datetime.combine(day, time(whole // 60, whole % 60), tzinfo=tz)


def days_by_weekday(first_day: date, span_days: int) -> dict[int, int]:
    """How many of the `span_days` days from `first_day` fall on each weekday (0 = Monday).
    Arithmetic: the span comes from station timestamps, so no loop over its days."""
    weeks, rest = divmod(max(0, span_days), 7)
    start = first_day.weekday()
    return {w: weeks + (1 if (w - start) % 7 < rest else 0) for w in range(7)}


def predict_departure(
    history: Sequence[SessionRecord], now: datetime, model: DepartureModel | None = None
) -> DeparturePrediction | None:
    """The next departure after `now`, or None without enough history."""
    model = model or DepartureModel()
    tz = model.tz
    records = sorted(history, key=lambda r: r.plug_in)
    if len(records) < model.min_samples:
        return None
    by_weekday: dict[int, list[float]] = {w: [] for w in range(7)}
    for r in records:
        by_weekday[r.plug_out.astimezone(tz).weekday()].append(_minutes(r.plug_out, tz))
    every = [m for ms in by_weekday.values() for m in ms]
    first_day = records[0].plug_in.astimezone(tz).date()
    last_day = records[-1].plug_out.astimezone(tz).date()
    span_days = (last_day - first_day).days + 1
    days_of = days_by_weekday(first_day, span_days)

    usage = _usage_by_weekday(records, tz)
    local_now = now.astimezone(tz)
    for k in range(15):
        day = local_now.date() + timedelta(days=k)
        w = day.weekday()
        rate = len(by_weekday[w]) / days_of[w] if days_of[w] else 0.0
        if days_of[w] >= 2 and rate < model.min_day_rate:
            continue  # it rarely leaves on this weekday
        own = len(by_weekday[w]) >= model.min_samples
        sample = by_weekday[w] if own else every
        centre = circular_mean_minutes(sample)
        departure = _at(day, centre, tz)
        if departure <= now:
            continue
        dev = _deviations(sample, centre)
        window_min = model.window / timedelta(minutes=1)
        within = float(np.mean(np.abs(dev) <= window_min))
        early = _at(day, centre + float(np.quantile(dev, model.early_quantile)), tz)
        if early > departure:  # never later than the most likely time
            early = departure
        used = usage[w] if len(usage[w]) >= model.min_samples else usage[-1]
        needed = (
            min(
                1.0,
                model.driving_reserve_soc + float(np.quantile(used, model.consumption_quantile)),
            )
            if used
            else None
        )
        return DeparturePrediction(
            departure=departure.astimezone(now.tzinfo),
            earliest=early.astimezone(now.tzinfo),
            confidence=min(1.0, rate if days_of[w] >= 2 else 1.0) * within,
            basis="weekday" if own else "all_days",
            samples=len(sample),
            needed_soc=needed,
        )
    return None


def _usage_by_weekday(records: Sequence[SessionRecord], tz: timezone) -> dict[int, list[float]]:
    """SoC used between unplugging and the next plug-in, by weekday of departure (-1 = all)."""
    usage: dict[int, list[float]] = {w: [] for w in range(-1, 7)}
    for before, after in itertools.pairwise(records):
        if before.soc_at_plug_out is None or after.soc_at_plug_in is None:
            continue
        used = before.soc_at_plug_out - after.soc_at_plug_in
        if used < 0:
            continue  # charged elsewhere: says nothing about need
        usage[before.plug_out.astimezone(tz).weekday()].append(used)
        usage[-1].append(used)
    return usage
