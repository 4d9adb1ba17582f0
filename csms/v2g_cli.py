"""`csms v2g ...`: what-if V2G planning from the command line (prints JSON).

    csms v2g plan --prices PRICE_AND_DEMAND_202408_VIC1.csv --capacity-kwh 40 --soc 50 \
        --target-soc 80 --departure 2024-08-06T07:30 --max-charge-kw 7 --max-discharge-kw 7 \
        --start 2024-08-05T06:00

SoC values are percent (0-100). Times are ISO 8601; without an offset they are read in
`--tz` (default +10:00, NEM time: UTC+10 all year, no daylight saving), and the plan's times
are printed in that zone. Prices are read in c/kWh; the summary's costs are AUD (dollars) and
include battery wear (negative = a profit).

Every number is checked before use (csms/v2g/bounds.py): NaN, infinities and values outside
the physical range named in the error stop the command with exit code 2. The departure may be
at most --max-horizon-h hours (default 168) after the start.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from csms.v2g import bounds as b
from csms.v2g.baselines import cost_plan, plain_charging, threshold_rules
from csms.v2g.optimizer import PlanError, plan_vehicle
from csms.v2g.prices import (
    NemTariff,
    PriceFileError,
    is_nem_price_and_demand,
    parse_nem_price_and_demand,
    parse_simple_prices,
)
from csms.v2g.vehicle import Chemistry, Vehicle, VehicleSession


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(f"{self.prog}: {message}")


def _number(bound: b.Bound, what: str | None = None) -> Callable[[str], float]:
    """An argparse type: a finite float within `bound` (argparse names the option)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if (
            not math.isfinite(value)
            or not bound.low <= value <= bound.high
            or (bound.low_open and value == bound.low)
        ):
            limits = what or f"a finite number in {bound.describe()}"
            raise argparse.ArgumentTypeError(f"{limits}, got {text}")
        return value

    return parse


_PERCENT = _number(b.SOC_PERCENT, "SoC is a percentage 0-100")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="csms v2g", description="V2G what-if tools (JSON out).")
    sub = parser.add_subparsers(dest="command", required=True)
    plan = sub.add_parser(
        "plan",
        help="plan one vehicle against a price file and compare with the baselines",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    plan.add_argument(
        "--prices",
        required=True,
        type=Path,
        help="NEM PRICE_AND_DEMAND CSV or start,import_c_kwh[,export_c_kwh] CSV",
    )
    plan.add_argument(
        "--capacity-kwh", required=True, type=_number(b.CAPACITY_KWH), help="1-1000 kWh"
    )
    plan.add_argument("--soc", required=True, type=_PERCENT, help="SoC now, percent")
    plan.add_argument("--target-soc", required=True, type=_PERCENT, help="SoC at departure, %%")
    plan.add_argument("--departure", required=True, help="ISO time")
    kw = _number(b.VEHICLE_POWER_KW)
    plan.add_argument("--max-charge-kw", required=True, type=kw, help="0-1000 kW")
    plan.add_argument("--max-discharge-kw", required=True, type=kw, help="0-1000 kW")
    plan.add_argument("--reserve-soc", type=_PERCENT, default=20.0, help="driving reserve, %%")
    plan.add_argument(
        "--efficiency",
        type=_number(
            b.ROUND_TRIP_EFFICIENCY,
            f"round-trip efficiency in {b.ROUND_TRIP_EFFICIENCY.describe()}",
        ),
        default=0.90,
        help="round trip, 0.5-1",
    )
    plan.add_argument("--start", help="ISO time (default: first price interval)")
    plan.add_argument(
        "--retail-margin",
        type=_number(b.TARIFF_ADDER_C_KWH),
        default=0.0,
        help="NEM files: retail margin added to RRP/10 before GST, c/kWh (+-1000)",
    )
    plan.add_argument(
        "--gst", type=_number(b.GST_RATE), default=0.10, help="NEM files: GST on import, 0-0.5"
    )
    plan.add_argument(
        "--export-offset",
        type=_number(b.TARIFF_ADDER_C_KWH),
        default=0.0,
        help="NEM files: added to RRP/10 for the export price, c/kWh (+-1000)",
    )
    plan.add_argument("--chemistry", default="NMC", help="LFP, NMC (NCM) or NCA")
    plan.add_argument(
        "--degradation-c-kwh",
        type=_number(b.DEGRADATION_C_KWH),
        default=None,
        help="wear per kWh of throughput, 0-1000 c/kWh (default: from the chemistry)",
    )
    plan.add_argument(
        "--max-horizon-h",
        type=_number(b.MAX_HORIZON_H),
        default=b.DEFAULT_MAX_HORIZON_H,
        help=f"refuse departures further than this after the start "
        f"(default {b.DEFAULT_MAX_HORIZON_H:g} h, at most {b.MAX_HORIZON_H.high:g})",
    )
    plan.add_argument("--tz", default="+10:00", help="offset for times without one")
    return parser


def _offset(text: str) -> timezone:
    try:
        sign = -1 if text.startswith("-") else 1
        hours, _, minutes = text.lstrip("+-").partition(":")
        return timezone(sign * timedelta(hours=int(hours), minutes=int(minutes or 0)))
    except ValueError as exc:
        raise _UsageError(f"--tz: not an offset like +10:00: {text!r}") from exc


def _time(text: str, name: str, tz: timezone) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise _UsageError(f"{name}: not an ISO 8601 time: {text!r}") from exc
    moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=tz)
    try:
        return b.check_time(moment, name)
    except b.BoundError as exc:
        raise _UsageError(str(exc)) from exc


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """HiGHS prints a banner on file descriptor 1 the first time; keep the JSON clean."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _iso(moment: datetime, tz: timezone) -> str:
    """ISO 8601 in the input's zone (NEM time by default), with its offset."""
    return moment.astimezone(tz).isoformat().replace("+00:00", "Z")


def _aud(cents: float) -> float:
    return round(cents / 100.0, 2)


def _offset_text(tz: timezone) -> str:
    return datetime(2000, 1, 1, tzinfo=tz).isoformat()[-6:].replace("+00:00", "Z")


def _plan(args: argparse.Namespace) -> dict[str, object]:
    tz = _offset(args.tz)
    path: Path = args.prices
    if not path.is_file():
        raise _UsageError(f"--prices: no such file: {path}")
    text = path.read_text(encoding="utf-8-sig")
    tariff = NemTariff(args.retail_margin, args.gst, args.export_offset)
    try:
        prices = (
            parse_nem_price_and_demand(text, tariff)
            if is_nem_price_and_demand(text)
            else parse_simple_prices(text, default_tz=tz)
        )
    except PriceFileError as exc:
        raise _UsageError(f"--prices {path}: {exc}") from exc
    start = prices.start if args.start is None else _time(args.start, "--start", tz)
    departure = _time(args.departure, "--departure", tz)
    if departure <= start:
        raise _UsageError(
            f"--departure {departure.isoformat()} is not after the start {start.isoformat()}"
        )
    try:
        b.check_horizon(start, departure, args.max_horizon_h, "--departure")
    except b.BoundError as exc:
        raise _UsageError(f"{exc} (--max-horizon-h)") from exc
    if not prices.start <= start < prices.end:
        raise _UsageError(
            f"--start {start.isoformat()} is outside the prices "
            f"({prices.start.isoformat()} to {prices.end.isoformat()})"
        )
    try:
        chemistry = Chemistry.parse(args.chemistry)
    except ValueError as exc:
        raise _UsageError(f"--chemistry: {args.chemistry!r} is not LFP, NMC or NCA") from exc
    try:
        vehicle = Vehicle(
            vehicle_id="vehicle",
            capacity_kwh=args.capacity_kwh,
            max_charge_kw=args.max_charge_kw,
            max_discharge_kw=args.max_discharge_kw,
            chemistry=chemistry,
            round_trip_efficiency=args.efficiency,
            driving_reserve_soc=args.reserve_soc / 100.0,
            degradation_c_kwh=args.degradation_c_kwh,
        )
    except ValueError as exc:
        raise _UsageError(str(exc)) from exc
    session = VehicleSession(
        vehicle,
        soc=args.soc / 100.0,
        departure=departure,
        target_soc=args.target_soc / 100.0,
    )
    with _quiet_stdout():
        plan = plan_vehicle(session, prices, start)
    planned = cost_plan(plan, session, prices, start)
    plain = plain_charging(session, prices, start)
    rules = threshold_rules(session, prices, start)
    intervals = [
        {
            "start": _iso(max(s, start), tz),
            "power_kw": round(p, 4),
            "soc_after": round(100 * soc, 3),
        }
        for s, p, soc in zip(plan.interval_starts, plan.power_kw, plan.soc_after, strict=True)
    ]
    warnings = list(plan.warnings)
    if prices.end < departure:
        warnings.append(f"prices end at {_iso(prices.end, tz)}, before departure: planned to there")
    return {
        "intervals": intervals,
        "summary": {
            "plan_cost_aud": _aud(planned.total_cost_c),
            "plain_charging_cost_aud": _aud(plain.total_cost_c),
            "threshold_rules_cost_aud": _aud(rules.total_cost_c),
            "plan_wear_cost_aud": _aud(planned.wear_cost_c),
            "saving_vs_plain_charging_aud": _aud(plain.total_cost_c - planned.total_cost_c),
            "saving_vs_threshold_rules_aud": _aud(rules.total_cost_c - planned.total_cost_c),
            "soc_at_departure": round(100 * plan.soc_at_departure, 3),
            "target_soc": round(100 * session.target_soc, 3),
            "target_met": plan.target_met,
            "energy_charged_kwh": round(
                float(np.sum(np.clip(planned.power_kw, 0, None) * np.asarray(planned.hours))), 4
            ),
            "energy_discharged_kwh": round(
                float(np.sum(np.clip(planned.power_kw, None, 0) * -np.asarray(planned.hours))), 4
            ),
            "currency": "AUD",
            "unit": "AUD (dollars; energy plus battery wear; negative = profit)",
            "timezone": _offset_text(tz),
            "soc_unit": "%",
            "warnings": warnings,
        },
    }


def main(argv: list[str] | None = None) -> int:
    """Entry point for `csms v2g ...`; argv excludes the leading `v2g`."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        try:
            args = _build_parser().parse_args(argv)
        except SystemExit as done:  # --help printed its text
            return done.code if isinstance(done.code, int) else 0
        if args.command == "plan":
            result = _plan(args)
        else:  # pragma: no cover - argparse limits the choices
            raise _UsageError(f"unknown command {args.command}")
    except (
        _UsageError,
        b.BoundError,
        PriceFileError,
        PlanError,
        OSError,
        UnicodeDecodeError,
    ) as exc:
        print(f"csms v2g: error: {exc}", file=sys.stderr)
        return 2
    try:
        print(json.dumps(result, indent=2), flush=True)
    except BrokenPipeError:
        # The reader left early (`| head`): not an error of ours. Point stdout at /dev/null so
        # that the interpreter's own flush at exit does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
