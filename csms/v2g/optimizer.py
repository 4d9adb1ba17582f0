"""Arbitrage and solar-soaking planner: one linear program for a site of many vehicles (pure).

Over 600 lines because the LP is built, solved and read back in one place: the variable
layout the builder chooses is what the reader indexes, and splitting them would spread it.

Per vehicle v and interval t (kW, meter side): charge c >= 0, discharge d >= 0, stored energy s
(kWh, after t). Per interval: site import and export (kW averaged over the interval).

    minimise  sum_t hours_t (p_import_t imp_t - p_export_t exp_t)
              + sum_vt wear_v h_vt (c_vt + d_vt) + PENALTY_v x shortfall_v
    s_vt = s_v,t-1 + (eta_c h_vt c_vt - h_vt d_vt / eta_d) / cap_v  (SoC dynamics, s a fraction)
    imp_t - exp_t = base_t + sum_v (h_vt / hours_t)(c_vt - d_vt)   (site meter; base = load - solar)
    0 <= c <= max charge, 0 <= d <= max discharge, floor_v <= s <= soc_max
    s_v,last + shortfall_v >= target_v                            (departure SoC)
    imp <= import limit, exp <= export limit

h_vt is the time the vehicle is plugged in during interval t (0 after departure: absent).
floor_v is the vehicle's reserve (max of window minimum, driving and backup reserves); a
vehicle plugged in below it only charges in this plan. The shortfall is used only when the
target cannot be met: its penalty dwarfs every price, so the solver meets the target whenever
it can and otherwise gets as close as it can. Site limits bound interval-average power.

Numerics: the penalty is not a constant but a multiple of the largest price and wear of the
plan, divided by the efficiencies (more than any kWh of stored energy can be worth), so a
reachable target is met for every price the bounds accept (csms/v2g/bounds.py: +-20,000 c/kWh);
stored energy is a fraction of capacity, so the solver's absolute tolerances (1e-7) are relative
to the battery whatever its size; and the objective is divided by the largest price, so its
coefficients stay within a few orders of magnitude of each other (HiGHS mis-solves, or calls
infeasible, LPs whose costs span 1e12). The size of one LP is capped (MAX_PLAN_CELLS).

Two LP relaxation artefacts are closed off: (1) when an interval's import price is below its
export price (negative wholesale price with GST on import) the LP would import and export at
once, so the export price used is min(export, import); (2) when a price is negative the LP
would charge and discharge at once to burn energy in losses, so discharge is off then. The
same burning also pays when a full battery needs room for a later negative price or behind
an export limit; those cells are found after the solve and re-solved one direction only
(_solve_without_simultaneous_flows).

Solver: HiGHS through highspy by default (`backend="highspy"`), scipy's
`linprog(method="highs")` as the alternative. Both run the same HiGHS dual simplex; highspy
takes the model as built here (row bounds, column-wise sparse matrix) with no conversion into
A_ub/A_eq and no extra copies, and has no first-call cost (scipy: +0.3-0.5 s), so it is the
faster choice for the many small plans a CSMS makes (1 vehicle x 288: 9-22 ms vs 12-26 ms
measured). For 1,000 vehicles x 96 intervals the simplex itself dominates (model built in about
0.35 s, solved in 5-12 s on 2 shared cores by either backend, within noise of each other);
HiGHS IPM (30 s) and PDLP (300 s) were slower on this LP. See benchmarks/bench_v2g.py.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from csms.v2g.bounds import MAX_PLAN_CELLS, SITE_LIMIT_KW, SITE_POWER_KW
from csms.v2g.prices import PriceSeries, hours_overlap
from csms.v2g.vehicle import VehicleSession, tightest

# The shortfall penalty per kWh: this many times the most a kWh at departure can be worth.
SHORTFALL_PENALTY_FACTOR = 100.0
# Target met when the SoC at departure is within this of it (a fraction of capacity).
TARGET_TOLERANCE_SOC = 1e-6
Backend = Literal["highspy", "scipy"]
# The solver stops after this long (PlanError): a last bound on a plan's cost.
SOLVER_TIME_LIMIT_S = 60.0
# Site powers and limits smaller than this (kW, 1 mW) are taken as 0. HiGHS's feasibility
# tolerance is 1e-7: its presolve fixes a column whose bounds are that close, so an import
# bound of max(0 kW limit, 1e-7 kW base) became 0 while the row still asked for 1e-7 kW, and
# a feasible plan was called infeasible. 1 mW is 10x that tolerance and far below any meter.
NEGLIGIBLE_KW = 1e-3 * 1e-3
# Re-solves allowed to undo charging and discharging one vehicle in the same interval.
MAX_DIRECTION_REPAIRS = 4
# c and d both above this (kW) in one cell = charging and discharging at once.
SIMULTANEOUS_KW = 1e-6


class PlanError(RuntimeError):
    """The solver could not produce a plan (the message says why)."""


@dataclass(frozen=True)
class SiteLimits:
    import_limit_kw: float | None = None
    export_limit_kw: float | None = None

    def __post_init__(self) -> None:
        for name in ("import_limit_kw", "export_limit_kw"):
            value = getattr(self, name)
            if value is not None:
                SITE_LIMIT_KW.check(value, name)


@dataclass(frozen=True)
class PlanInputs:
    now: datetime
    prices: PriceSeries
    sessions: tuple[VehicleSession, ...]
    site_limits: SiteLimits = SiteLimits()
    # Site load minus solar (kW) for each interval of `prices`; None = no other load.
    site_base_kw: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        if self.site_base_kw is not None:
            if len(self.site_base_kw) != len(self.prices):
                raise ValueError("site_base_kw needs one value per price interval")
            base = np.asarray(self.site_base_kw, dtype=float)
            bad = ~np.isfinite(base) | (np.abs(base) > SITE_POWER_KW.high)
            if bad.any():
                k = int(np.argmax(bad))
                SITE_POWER_KW.check(float(base[k]), f"site_base_kw[{k}]")
        ids = [s.vehicle_id for s in self.sessions]
        if len(set(ids)) != len(ids):
            raise ValueError("vehicle ids must be unique within a plan")


@dataclass(frozen=True)
class VehiclePlan:
    vehicle_id: str
    start: datetime  # when the first period begins (now or arrival)
    departure: datetime
    interval_starts: tuple[datetime, ...]  # start of each planned interval (the first may be
    # before `start` when `start` falls inside it)
    hours: tuple[float, ...]  # plugged-in hours within each interval
    power_kw: tuple[float, ...]  # signed: negative = discharge
    soc_start: float
    soc_after: tuple[float, ...]
    target_soc: float
    target_met: bool
    warnings: tuple[str, ...] = ()

    @property
    def soc_at_departure(self) -> float:
        return self.soc_after[-1] if self.soc_after else self.soc_start


@dataclass(frozen=True)
class SitePlan:
    now: datetime
    interval_starts: tuple[datetime, ...]
    hours: tuple[float, ...]  # site hours per interval (the first is cut at `now`)
    import_c_kwh: tuple[float, ...]
    export_c_kwh: tuple[float, ...]
    site_net_kw: tuple[float, ...]  # average over each interval, + = import
    vehicles: dict[str, VehiclePlan]
    objective_c: float
    backend: str
    warnings: tuple[str, ...] = field(default=())


@dataclass
class _Model:
    """An LP in HiGHS form: min cost.x, row_lower <= A x <= row_upper, col bounds."""

    cost: np.ndarray
    col_lower: np.ndarray
    col_upper: np.ndarray
    matrix: sp.csc_matrix
    row_lower: np.ndarray
    row_upper: np.ndarray


@dataclass
class _VehicleBlock:
    session: VehicleSession
    first: int  # horizon index of the first plugged-in interval
    hours: np.ndarray
    col: int  # column of c_0; d at col + n, s at col + 2n
    slack_col: int
    target_soc: float  # what the plan aims for (the session's, capped at soc_max)
    warnings: list[str]


def _horizon(inputs: PlanInputs) -> tuple[int, int]:
    prices = inputs.prices
    first = max(0, prices.index_at(inputs.now))
    last_departure = max((s.departure for s in inputs.sessions), default=inputs.now)
    end = min(len(prices), math.ceil((last_departure - prices.start) / prices.interval))
    return first, end


def build_and_solve(inputs: PlanInputs, backend: Backend = "highspy") -> SitePlan:
    """Solve the site LP for all sessions. Raises PlanError when no plan can be made."""
    prices = inputs.prices
    first, end = _horizon(inputs)
    warnings: list[str] = []
    if end <= first:
        raise PlanError("no price intervals between now and the last departure")
    n_t = end - first
    cells = n_t * max(1, len(inputs.sessions))
    if cells > MAX_PLAN_CELLS:
        raise PlanError(
            f"plan too large: {len(inputs.sessions)} vehicle(s) x {n_t} intervals = {cells:,} "
            f"cells > {MAX_PLAN_CELLS:,}; use fewer vehicles, a nearer departure or longer "
            f"intervals"
        )
    starts = [prices.interval_start(first + t) for t in range(n_t)]
    step = prices.interval
    site_hours = np.array([hours_overlap(s, s + step, inputs.now, s + step) for s in starts])
    p_imp = prices.import_array()[first:end]
    p_exp_true = prices.export_array()[first:end]
    p_exp = np.minimum(p_exp_true, p_imp)
    negative_price = np.minimum(p_imp, p_exp_true) < 0
    base = (
        np.zeros(n_t)
        if inputs.site_base_kw is None
        else _negligible_to_zero(np.asarray(inputs.site_base_kw[first:end], dtype=float))
    )
    if prices.end < max((s.departure for s in inputs.sessions), default=inputs.now):
        warnings.append(f"prices end at {prices.end.isoformat()}, before the last departure")

    blocks: list[_VehicleBlock] = []
    col = 0
    for session in inputs.sessions:
        vehicle = session.vehicle
        begin = inputs.now if session.arrival is None else max(inputs.now, session.arrival)
        hours = np.array([hours_overlap(s, s + step, begin, session.departure) for s in starts])
        present = np.flatnonzero(hours > 1e-9)
        notes: list[str] = []
        if present.size == 0:
            notes.append("not plugged in within the price horizon: nothing planned")
            blocks.append(_VehicleBlock(session, 0, np.zeros(0), col, -1, 0.0, notes))
            continue
        lo, hi = int(present[0]), int(present[-1]) + 1
        h = hours[lo:hi]
        target = session.target_soc
        if target > vehicle.soc_max:
            notes.append(f"target {target:.0%} above the usable maximum {vehicle.soc_max:.0%}")
            target = vehicle.soc_max
        reachable = min(
            max(vehicle.soc_max, session.soc),
            session.soc
            + vehicle.charge_efficiency * vehicle.max_charge_kw * h.sum() / vehicle.capacity_kwh,
        )
        if target > reachable + 1e-9:
            notes.append(
                f"departure target {target:.1%} cannot be reached (at most {reachable:.1%} at "
                f"full charge power): the plan maximises SoC at departure instead"
            )
        n = hi - lo
        blocks.append(_VehicleBlock(session, lo, h, col, col + 3 * n, target, notes))
        col += 3 * n + 1
    n_vehicle_cols = col
    imp_col, exp_col = n_vehicle_cols, n_vehicle_cols + n_t
    n_cols = n_vehicle_cols + 2 * n_t

    # Scale: every cost is divided by the largest price or wear of the plan (>= 1 c/kWh).
    planned = [blk for blk in blocks if blk.hours.size]
    wear_max = max((blk.session.vehicle.wear_c_kwh for blk in planned), default=0.0)
    price_max = float(max(np.abs(p_imp).max(), np.abs(p_exp_true).max()))
    scale = max(1.0, price_max, wear_max)
    cost = np.zeros(n_cols)
    col_lower = np.zeros(n_cols)
    col_upper = np.full(n_cols, np.inf)
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    row_lower: list[np.ndarray] = []
    row_upper: list[np.ndarray] = []
    row = 0
    site_rows = np.arange(n_t)  # site balance rows come first
    row = n_t
    for b in blocks:
        n = b.hours.size
        if n == 0:
            continue
        v = b.session.vehicle
        cap = v.capacity_kwh
        s0 = b.session.soc
        eta_c, eta_d = v.charge_efficiency, v.discharge_efficiency
        c_cols = b.col + np.arange(n)
        d_cols = c_cols + n
        s_cols = c_cols + 2 * n
        t_idx = b.first + np.arange(n)
        # bounds
        charge_cap, discharge_cap = _envelope_caps(b.session, [starts[t] for t in t_idx], step)
        col_upper[c_cols] = np.minimum(v.max_charge_kw, charge_cap)
        may_discharge = b.session.soc >= v.reserve_soc  # below the reserve: charge only
        col_upper[d_cols] = np.where(
            negative_price[t_idx] | (not may_discharge),
            0.0,
            np.minimum(v.max_discharge_kw, discharge_cap),
        )
        col_lower[s_cols] = min(v.reserve_soc, b.session.soc)
        col_upper[s_cols] = max(v.soc_max, b.session.soc)
        col_upper[b.slack_col] = np.inf
        cost[c_cols] = v.wear_c_kwh * b.hours / scale
        cost[d_cols] = v.wear_c_kwh * b.hours / scale
        # A kWh stored at departure is worth at most (price + wear) / eta_c to buy, or
        # (price + wear) x eta_d not to sell: the penalty (per unit of SoC) outweighs both.
        worth_c_kwh = (price_max + v.wear_c_kwh + 1.0) / (eta_c * eta_d)
        cost[b.slack_col] = SHORTFALL_PENALTY_FACTOR * worth_c_kwh * cap / scale
        # SoC dynamics rows
        soc_rows = row + np.arange(n)
        rows += [soc_rows, soc_rows[1:], soc_rows, soc_rows]
        cols += [s_cols, s_cols[:-1], c_cols, d_cols]
        vals += [np.ones(n), -np.ones(n - 1), -eta_c * b.hours / cap, b.hours / (eta_d * cap)]
        rhs = np.zeros(n)
        rhs[0] = s0
        row_lower.append(rhs)
        row_upper.append(rhs)
        row += n
        # departure target row: s_last + shortfall >= target
        rows += [np.array([row, row])]
        cols += [np.array([s_cols[-1], b.slack_col])]
        vals += [np.ones(2)]
        row_lower.append(np.array([b.target_soc]))
        row_upper.append(np.array([np.inf]))
        row += 1
        # site balance: imp - exp - share x (c - d) = base
        share = b.hours / site_hours[t_idx]
        rows += [site_rows[t_idx], site_rows[t_idx]]
        cols += [c_cols, d_cols]
        vals += [-share, share]
    rows += [site_rows, site_rows]
    cols += [imp_col + site_rows, exp_col + site_rows]
    vals += [np.ones(n_t), -np.ones(n_t)]
    row_lower.insert(0, base)
    row_upper.insert(0, base)
    cost[imp_col + site_rows] = site_hours * p_imp / scale
    cost[exp_col + site_rows] = -site_hours * p_exp / scale
    limits = inputs.site_limits
    # A negligible limit is 0: stricter than asked, never looser.
    if limits.import_limit_kw is not None:
        import_limit = float(_negligible_to_zero(np.array([limits.import_limit_kw]))[0])
        col_upper[imp_col + site_rows] = np.maximum(import_limit, base)
    if limits.export_limit_kw is not None:
        export_limit = float(_negligible_to_zero(np.array([limits.export_limit_kw]))[0])
        col_upper[exp_col + site_rows] = np.maximum(export_limit, -base)

    matrix = sp.csc_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(row, n_cols)
    )
    model = _Model(
        cost, col_lower, col_upper, matrix, np.concatenate(row_lower), np.concatenate(row_upper)
    )
    _check_finite(model)
    x, objective = _solve_without_simultaneous_flows(model, blocks, backend)
    objective *= scale

    plans: dict[str, VehiclePlan] = {}
    site_net = base.copy()
    for b in blocks:
        s = b.session
        n = b.hours.size
        if n == 0:
            plans[s.vehicle_id] = VehiclePlan(
                s.vehicle_id,
                inputs.now,
                s.departure,
                (),
                (),
                (),
                s.soc,
                (),
                s.target_soc,
                s.soc >= s.target_soc,
                tuple(b.warnings),
            )
            continue
        c = x[b.col : b.col + n]
        d = x[b.col + n : b.col + 2 * n]
        stored = x[b.col + 2 * n : b.col + 3 * n]
        power = np.where(np.abs(c - d) < 1e-7, 0.0, c - d)
        site_net[b.first : b.first + n] += power * b.hours / site_hours[b.first : b.first + n]
        notes = list(b.warnings)
        soc = np.clip(stored, 0.0, 1.0)
        # Judged on the SoC itself, relative to capacity (an absolute kWh tolerance called a
        # 1e-9 kWh battery at 20 % "met" against an 80 % target).
        met = bool(soc[-1] >= b.target_soc - TARGET_TOLERANCE_SOC)
        if not met and not notes:
            limited = limits != SiteLimits() or inputs.site_base_kw is not None
            notes.append(
                f"departure target {s.target_soc:.1%} not met ({soc[-1]:.1%}): "
                + ("site limits" if limited else "the solver found no way to reach it")
            )
        begin = inputs.now if s.arrival is None else max(inputs.now, s.arrival)
        plans[s.vehicle_id] = VehiclePlan(
            vehicle_id=s.vehicle_id,
            start=begin,
            departure=s.departure,
            interval_starts=tuple(starts[b.first : b.first + n]),
            hours=tuple(float(v) for v in b.hours),
            power_kw=tuple(float(v) for v in power),
            soc_start=s.soc,
            soc_after=tuple(float(v) for v in soc),
            target_soc=s.target_soc,
            target_met=bool(met),
            warnings=tuple(notes),
        )
    return SitePlan(
        now=inputs.now,
        interval_starts=tuple(starts),
        hours=tuple(float(v) for v in site_hours),
        import_c_kwh=tuple(float(v) for v in p_imp),
        export_c_kwh=tuple(float(v) for v in p_exp_true),
        site_net_kw=tuple(float(v) for v in site_net),
        vehicles=plans,
        objective_c=objective,
        backend=backend,
        warnings=tuple(warnings),
    )


def _envelope_caps(
    session: VehicleSession, starts: Sequence[datetime], step: timedelta
) -> tuple[np.ndarray, np.ndarray]:
    """Per interval: the tightest envelope caps it overlaps (inf where none applies)."""
    charge = np.full(len(starts), np.inf)
    discharge = np.full(len(starts), np.inf)
    for k, s in enumerate(starts):
        found = tightest(session.power_caps, s, s + step)
        if found is not None:
            charge[k], discharge[k] = found
    return charge, discharge


def _negligible_to_zero(kw: np.ndarray) -> np.ndarray:
    """Powers below NEGLIGIBLE_KW (and subnormal ones) as exactly 0."""
    return np.where(np.abs(kw) < NEGLIGIBLE_KW, 0.0, kw)


def _simultaneous_cells(
    x: np.ndarray, blocks: list[_VehicleBlock]
) -> tuple[np.ndarray, np.ndarray]:
    """The (c, d) column pairs of the cells that both charge and discharge a vehicle."""
    c_found: list[np.ndarray] = [np.zeros(0, dtype=int)]
    d_found: list[np.ndarray] = [np.zeros(0, dtype=int)]
    for b in blocks:
        n = b.hours.size
        c_cols = b.col + np.arange(n)
        both = (x[c_cols] > SIMULTANEOUS_KW) & (x[c_cols + n] > SIMULTANEOUS_KW)
        c_found.append(c_cols[both])
        d_found.append(c_cols[both] + n)
    return np.concatenate(c_found), np.concatenate(d_found)


def _solve_without_simultaneous_flows(
    model: _Model, blocks: list[_VehicleBlock], backend: Backend
) -> tuple[np.ndarray, float]:
    """Solve, then undo the LP's habit of charging and discharging a vehicle at once.

    Doing both in one interval burns energy in the losses at no cost on the meter (c - d is
    all the charger sees), which pays whenever the battery is full and room is worth more
    later: a negative price, or an export limit that blocks selling. No charger can do it:
    the power sent (c - d) would leave the battery fuller than the plan's SoC says, and the
    plan's own SoC would not follow from its powers. Each such cell keeps only its larger
    direction and the LP is solved again; if the burning still moves on after
    MAX_DIRECTION_REPAIRS rounds, every cell of the plan is fixed the way it goes (idle cells:
    charge only) for one last solve, in which no cell can do both: at most
    MAX_DIRECTION_REPAIRS + 1 re-solves, none when the first plan is clean (the usual case).
    c = d = 0 is always feasible (the site bounds admit the base load), so every re-solve is.
    """
    solve = _solve_highspy if backend == "highspy" else _solve_scipy
    x, objective = solve(model)
    for attempt in range(MAX_DIRECTION_REPAIRS + 2):
        c_cols, d_cols = _simultaneous_cells(x, blocks)
        if c_cols.size == 0:
            return x, objective
        if attempt < MAX_DIRECTION_REPAIRS:
            charging = x[c_cols] >= x[d_cols]
            model.col_upper[d_cols[charging]] = 0.0
            model.col_upper[c_cols[~charging]] = 0.0
        else:  # the burning moved on each time: fix every cell of the plan one way
            for blk in blocks:
                c_all = blk.col + np.arange(blk.hours.size)
                charging_or_idle = x[c_all] >= x[c_all + blk.hours.size]
                model.col_upper[c_all[charging_or_idle] + blk.hours.size] = 0.0
                model.col_upper[c_all[~charging_or_idle]] = 0.0
        x, objective = solve(model)
    raise PlanError("internal error: the plan still charges and discharges a vehicle at once")


def _check_finite(model: _Model) -> None:
    """Inputs are bounded before they get here, so this is a bug guard: HiGHS given a NaN
    cost spins without end (seen with a NaN wear cost), so refuse the model instead."""
    bounds = (model.col_lower, model.col_upper, model.row_lower, model.row_upper)
    if (
        not np.isfinite(model.cost).all()
        or not np.isfinite(model.matrix.data).all()
        or any(np.isnan(v).any() for v in bounds)
    ):
        raise PlanError("internal error: the plan's model holds a non-finite number")


@functools.cache
def _quiet_highs_class() -> Any:
    """A `highspy.Highs` that prints nothing. highspy >= 1.8 logs its banner ("Running HiGHS
    ...") to stdout while the constructor enables its callbacks, before any option can be set
    (once per process, into the server's log); so the options are set at that point."""
    import highspy

    class QuietHighs(highspy.Highs):
        def enableCallbacks(self) -> Any:  # highspy's name
            self.setOptionValue("output_flag", False)
            self.setOptionValue("log_to_console", False)
            return super().enableCallbacks()

    return QuietHighs


def _quiet_highs() -> Any:
    solver = _quiet_highs_class()()
    solver.setOptionValue("output_flag", False)  # versions whose constructor logs nothing
    solver.setOptionValue("log_to_console", False)
    return solver


def _solve_highspy(model: _Model) -> tuple[np.ndarray, float]:
    import highspy

    lp = highspy.HighsLp()
    n_rows, n_cols = model.matrix.shape
    lp.num_col_ = n_cols
    lp.num_row_ = n_rows
    lp.col_cost_ = model.cost
    lp.col_lower_ = model.col_lower
    lp.col_upper_ = np.where(np.isinf(model.col_upper), highspy.kHighsInf, model.col_upper)
    lp.row_lower_ = np.where(np.isinf(model.row_lower), -highspy.kHighsInf, model.row_lower)
    lp.row_upper_ = np.where(np.isinf(model.row_upper), highspy.kHighsInf, model.row_upper)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = model.matrix.indptr
    lp.a_matrix_.index_ = model.matrix.indices
    lp.a_matrix_.value_ = model.matrix.data
    lp.a_matrix_.num_col_ = n_cols
    lp.a_matrix_.num_row_ = n_rows
    solver = _quiet_highs()
    solver.setOptionValue("time_limit", SOLVER_TIME_LIMIT_S)
    solver.passModel(lp)
    solver.run()
    status = solver.getModelStatus()
    if status != highspy.HighsModelStatus.kOptimal:
        raise PlanError(f"HiGHS could not solve the plan: {solver.modelStatusToString(status)}")
    x = np.asarray(solver.getSolution().col_value, dtype=float)
    return x, float(solver.getInfo().objective_function_value)


def _solve_scipy(model: _Model) -> tuple[np.ndarray, float]:
    from scipy.optimize import linprog

    a = model.matrix.tocsr()
    equal = model.row_lower == model.row_upper
    upper = ~equal & np.isfinite(model.row_upper)
    lower = ~equal & np.isfinite(model.row_lower)
    a_ub = sp.vstack([a[upper], -a[lower]]).tocsr()
    b_ub = np.concatenate([model.row_upper[upper], -model.row_lower[lower]])
    result = linprog(
        model.cost,
        A_ub=a_ub if a_ub.shape[0] else None,
        b_ub=b_ub if a_ub.shape[0] else None,
        A_eq=a[equal],
        b_eq=model.row_lower[equal],
        bounds=np.column_stack([model.col_lower, model.col_upper]),
        method="highs",
        options={"time_limit": SOLVER_TIME_LIMIT_S},
    )
    if result.status != 0:
        raise PlanError(f"HiGHS (scipy) could not solve the plan: {result.message}")
    return np.asarray(result.x, dtype=float), float(result.fun)


def optimize(inputs: PlanInputs, backend: Backend = "highspy") -> SitePlan:
    """Plan every session of a site. See the module docstring for the model."""
    if not inputs.sessions:
        raise PlanError("no vehicles to plan")
    return build_and_solve(inputs, backend)


def plan_vehicle(
    session: VehicleSession,
    prices: PriceSeries,
    now: datetime,
    site_limits: SiteLimits | None = None,
    site_base_kw: Sequence[float] | None = None,
    backend: Backend = "highspy",
) -> VehiclePlan:
    """Plan one vehicle alone (a household with one charger)."""
    inputs = PlanInputs(
        now=now,
        prices=prices,
        sessions=(session,),
        site_limits=site_limits or SiteLimits(),
        site_base_kw=None if site_base_kw is None else tuple(float(v) for v in site_base_kw),
    )
    return optimize(inputs, backend).vehicles[session.vehicle_id]


# ---------------------------------------------------------------------------------------------
# Sending a plan, and deciding when to make a new one


MAX_PERIODS_PER_SCHEDULE = 1024


def _iso_utc_ms(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def to_tx_profile(
    plan: VehiclePlan,
    profile_id: int,
    transaction_id: str,
    stack_level: int,
    schedule_id: int | None = None,
) -> dict[str, object]:
    """The plan as an OCPP 2.0.1 ChargingProfile (TxProfile, Absolute, W, one period per
    interval, negative limit = discharge), ready for SetChargingProfileRequest.chargingProfile."""
    if not plan.power_kw:
        raise ValueError(f"vehicle {plan.vehicle_id}: empty plan, nothing to send")
    start = max(plan.start, plan.interval_starts[0])
    periods: list[dict[str, object]] = []
    for k, (interval_start, power) in enumerate(
        zip(plan.interval_starts, plan.power_kw, strict=True)
    ):
        offset = 0 if k == 0 else round((interval_start - start).total_seconds())
        limit = round(power * 1000.0, 1)
        if (
            periods
            and periods[-1]["limit"] == limit
            and len(plan.power_kw) > MAX_PERIODS_PER_SCHEDULE
        ):
            continue  # merge equal neighbours only when one period each would not fit
        periods.append({"startPeriod": offset, "limit": limit})
    if len(periods) > MAX_PERIODS_PER_SCHEDULE:
        raise ValueError(f"{len(periods)} periods exceed the {MAX_PERIODS_PER_SCHEDULE} allowed")
    duration = max(1, round((plan.departure - start).total_seconds()))
    return {
        "id": profile_id,
        "stackLevel": stack_level,
        "chargingProfilePurpose": "TxProfile",
        "chargingProfileKind": "Absolute",
        "transactionId": transaction_id,
        "chargingSchedule": [
            {
                "id": profile_id if schedule_id is None else schedule_id,
                "startSchedule": _iso_utc_ms(start),
                "duration": duration,
                "chargingRateUnit": "W",
                "chargingSchedulePeriod": periods,
            }
        ],
    }


@dataclass(frozen=True)
class ReplanPolicy:
    soc_tolerance: float = 0.03  # SoC drift from the plan that calls for a new plan
    price_tolerance_c_kwh: float = 0.5
    departure_tolerance: timedelta = timedelta(minutes=5)
    cadence: timedelta = timedelta(minutes=15)  # replan at least this often


def replan_reasons(
    old: PlanInputs, new: PlanInputs, policy: ReplanPolicy | None = None
) -> list[str]:
    """Why the plan made from `old` no longer fits `new` (empty list = keep it)."""
    policy = policy or ReplanPolicy()
    reasons: list[str] = []
    if new.now - old.now >= policy.cadence:
        reasons.append(f"cadence: last plan is {new.now - old.now} old")
    if _prices_changed(old.prices, new.prices, new.now, policy.price_tolerance_c_kwh):
        reasons.append("prices changed")
    old_sessions = {s.vehicle_id: s for s in old.sessions}
    new_sessions = {s.vehicle_id: s for s in new.sessions}
    if old_sessions.keys() != new_sessions.keys():
        reasons.append("vehicles plugged in or out")
    for vid in old_sessions.keys() & new_sessions.keys():
        a, b = old_sessions[vid], new_sessions[vid]
        if abs(a.departure - b.departure) > policy.departure_tolerance:
            reasons.append(f"{vid}: departure changed")
        if abs(a.target_soc - b.target_soc) > 1e-9:
            reasons.append(f"{vid}: target SoC changed")
        if abs(a.soc - b.soc) > policy.soc_tolerance:
            reasons.append(f"{vid}: SoC moved beyond tolerance")
    if old.site_limits != new.site_limits:
        reasons.append("site limits changed")
    return reasons


def needs_replan(old: PlanInputs, new: PlanInputs, policy: ReplanPolicy | None = None) -> bool:
    """True when prices, SoC (beyond a tolerance), departures, vehicles or limits changed, or the
    plan is older than the cadence. For the SoC check, `old` should carry the SoC the plan
    expected by now (e.g. from VehiclePlan.soc_after)."""
    return bool(replan_reasons(old, new, policy))


def _prices_changed(old: PriceSeries, new: PriceSeries, now: datetime, tol: float) -> bool:
    if old.interval != new.interval:
        return True
    begin = max(old.start, new.start, now - (now - new.start) % new.interval)
    end = min(old.end, new.end)
    if end <= begin:
        return True
    a, b = old.window(begin, end), new.window(begin, end)
    if len(a) != len(b):
        return True
    diff_import = np.abs(a.import_array() - b.import_array())
    diff_export = np.abs(a.export_array() - b.export_array())
    return bool(max(diff_import.max(), diff_export.max()) > tol) or new.end > old.end


def next_replan_at(
    now: datetime, last_planned: datetime, prices: PriceSeries, policy: ReplanPolicy | None = None
) -> datetime:
    """When to replan next: the next price interval boundary, or the cadence, whichever first."""
    policy = policy or ReplanPolicy()
    boundary = prices.interval_start(prices.index_at(now) + 1)
    return min(boundary, last_planned + policy.cadence)
