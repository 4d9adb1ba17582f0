"""Price series and site (load/solar) series, and parsers for the real files (pure).

Prices are in c/kWh (AUD cents) per interval, all intervals of one series the same length.
Times are timezone-aware; series start times are kept in UTC.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone

import numpy as np

from csms.v2g import bounds as b

AEST = timezone(timedelta(hours=10), "AEST")  # NEM time: UTC+10 all year, no daylight saving


@dataclass(frozen=True)
class PriceSeries:
    """Import and export prices per interval: interval i starts at start + i x interval."""

    start: datetime
    interval: timedelta
    import_c_kwh: tuple[float, ...]
    export_c_kwh: tuple[float, ...]

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise ValueError("PriceSeries.start must be timezone-aware")
        if self.interval <= timedelta(0):
            raise ValueError("PriceSeries.interval must be positive")
        if len(self.import_c_kwh) != len(self.export_c_kwh):
            raise ValueError("import and export prices must have the same length")
        if not self.import_c_kwh:
            raise ValueError("a PriceSeries needs at least one interval")
        for name, values in (
            ("import_c_kwh", self.import_c_kwh),
            ("export_c_kwh", self.export_c_kwh),
        ):
            _check_prices(values, name)
        object.__setattr__(self, "start", self.start.astimezone(UTC))

    def __len__(self) -> int:
        return len(self.import_c_kwh)

    @property
    def end(self) -> datetime:
        return self.start + self.interval * len(self)

    @property
    def interval_hours(self) -> float:
        return self.interval.total_seconds() / 3600.0

    def interval_start(self, index: int) -> datetime:
        return self.start + self.interval * index

    def starts(self) -> list[datetime]:
        return [self.interval_start(i) for i in range(len(self))]

    def index_at(self, moment: datetime) -> int:
        """Index of the interval holding `moment` (may be < 0 or >= len outside the series)."""
        return math.floor((moment - self.start) / self.interval)

    def import_array(self) -> np.ndarray:
        return np.asarray(self.import_c_kwh, dtype=float)

    def export_array(self) -> np.ndarray:
        return np.asarray(self.export_c_kwh, dtype=float)

    def window(self, start: datetime, end: datetime) -> PriceSeries:
        """The intervals that overlap [start, end)."""
        first = max(0, self.index_at(start))
        last = min(len(self), math.ceil((end - self.start) / self.interval))
        if last <= first:
            raise ValueError(f"no prices between {start.isoformat()} and {end.isoformat()}")
        return PriceSeries(
            start=self.interval_start(first),
            interval=self.interval,
            import_c_kwh=self.import_c_kwh[first:last],
            export_c_kwh=self.export_c_kwh[first:last],
        )

    @staticmethod
    def concat(parts: Sequence[PriceSeries]) -> PriceSeries:
        """Join series that follow each other without gap (e.g. one file per month)."""
        if not parts:
            raise ValueError("nothing to concatenate")
        ordered = sorted(parts, key=lambda p: p.start)
        for before, after in itertools.pairwise(ordered):
            if before.interval != after.interval or before.end != after.start:
                raise ValueError(
                    f"series do not join: {before.end.isoformat()} vs {after.start.isoformat()}"
                )
        return PriceSeries(
            start=ordered[0].start,
            interval=ordered[0].interval,
            import_c_kwh=tuple(v for p in ordered for v in p.import_c_kwh),
            export_c_kwh=tuple(v for p in ordered for v in p.export_c_kwh),
        )


def _check_prices(values: Sequence[float], name: str) -> None:
    """Every price finite and within PRICE_C_KWH (the range the planner is robust for)."""
    array = np.asarray(values, dtype=float)
    bad = ~np.isfinite(array) | (array < b.PRICE_C_KWH.low) | (array > b.PRICE_C_KWH.high)
    if bad.any():
        k = int(np.argmax(bad))
        b.PRICE_C_KWH.check(float(array[k]), f"{name}[{k}]")


@dataclass(frozen=True)
class NemTariff:
    """How wholesale RRP ($/MWh) becomes what a household pays and is paid (c/kWh).

    import = (RRP / 10 + retail_margin) x (1 + gst); export = RRP / 10 + export_offset
    (wholesale pass-through by default). Both can be negative when RRP is.
    """

    retail_margin_c_kwh: float = 0.0
    gst_rate: float = 0.10
    export_offset_c_kwh: float = 0.0

    def __post_init__(self) -> None:
        # With these bounds and RRP within RRP_PER_MWH, both prices stay within PRICE_C_KWH.
        b.TARIFF_ADDER_C_KWH.check(self.retail_margin_c_kwh, "retail_margin_c_kwh")
        b.GST_RATE.check(self.gst_rate, "gst_rate")
        b.TARIFF_ADDER_C_KWH.check(self.export_offset_c_kwh, "export_offset_c_kwh")

    def import_price(self, rrp_per_mwh: float) -> float:
        return (rrp_per_mwh / 10.0 + self.retail_margin_c_kwh) * (1.0 + self.gst_rate)

    def export_price(self, rrp_per_mwh: float) -> float:
        return rrp_per_mwh / 10.0 + self.export_offset_c_kwh


class PriceFileError(ValueError):
    """A price or site file that cannot be read; the message names the line."""


def _number(text: str, bound: b.Bound, what: str, line_no: int, column: str) -> float:
    """A finite number within `bound` from one cell, else PriceFileError naming line and
    column (float() alone accepts 'nan' and 'inf')."""
    try:
        return b.finite_in_range(float(text), bound, f"{what} line {line_no}, column {column}")
    except b.BoundError as exc:
        raise PriceFileError(str(exc)) from exc
    except ValueError as exc:
        raise PriceFileError(f"{what} line {line_no}, column {column}: {exc}") from exc


def _uniform_interval(times: Sequence[datetime], what: str) -> timedelta:
    if len(times) < 2:
        raise PriceFileError(f"{what}: need at least two rows to know the interval length")
    for moment in (times[0], times[-1]):
        try:  # far-off years would overflow datetime arithmetic later
            b.check_time(moment, what)
        except b.BoundError as exc:
            raise PriceFileError(str(exc)) from exc
    interval = times[1] - times[0]
    if interval <= timedelta(0):
        raise PriceFileError(f"{what}: times must increase")
    seconds = interval.total_seconds()
    if not b.PRICE_INTERVAL_S.low <= seconds <= b.PRICE_INTERVAL_S.high:
        raise PriceFileError(
            f"{what}: interval of {seconds:g} s is outside {b.PRICE_INTERVAL_S.describe()}"
        )
    for i in range(2, len(times)):
        if times[i] - times[i - 1] != interval:
            raise PriceFileError(
                f"{what}: row {i + 2}: gap or uneven interval at {times[i].isoformat()} "
                f"(expected {interval})"
            )
    return interval


def _rows(text: str) -> list[list[str]]:
    # splitlines handles CRLF and a missing final newline alike.
    return [line.split(",") for line in text.splitlines() if line.strip()]


def is_nem_price_and_demand(text: str) -> bool:
    head = text.lstrip("\ufeff").split("\n", 1)[0].upper()
    return "SETTLEMENTDATE" in head and "RRP" in head


def parse_nem_price_and_demand(
    text: str, tariff: NemTariff | None = None, region: str | None = None
) -> PriceSeries:
    """AEMO PRICE_AND_DEMAND CSV (5- or 30-minute). SETTLEMENTDATE is the END of the interval,
    in NEM time (UTC+10)."""
    tariff = tariff or NemTariff()
    rows = _rows(text.lstrip("\ufeff"))
    if not rows:
        raise PriceFileError("empty NEM file")
    header = [h.strip().upper() for h in rows[0]]
    try:
        i_region, i_date, i_rrp = (header.index(n) for n in ("REGION", "SETTLEMENTDATE", "RRP"))
    except ValueError as exc:
        raise PriceFileError(f"not a NEM PRICE_AND_DEMAND header: {rows[0]}") from exc
    ends: list[datetime] = []
    rrps: list[float] = []
    for line_no, row in enumerate(rows[1:], start=2):
        try:
            if region is not None and row[i_region].strip() != region:
                continue
            end = datetime.strptime(row[i_date].strip(), "%Y/%m/%d %H:%M:%S")
            rrp = _number(row[i_rrp], b.RRP_PER_MWH, "NEM file", line_no, "RRP")
        except PriceFileError:
            raise
        except (ValueError, IndexError) as exc:
            raise PriceFileError(f"NEM file line {line_no}: {exc}") from exc
        ends.append(end.replace(tzinfo=AEST))
        rrps.append(rrp)
    interval = _uniform_interval(ends, "NEM file")
    return PriceSeries(
        start=ends[0] - interval,
        interval=interval,
        import_c_kwh=tuple(tariff.import_price(r) for r in rrps),
        export_c_kwh=tuple(tariff.export_price(r) for r in rrps),
    )


def _parse_time(text: str, default_tz: timezone) -> datetime:
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=default_tz)


def parse_simple_prices(text: str, default_tz: timezone = UTC) -> PriceSeries:
    """`start,import_c_kwh[,export_c_kwh]` with ISO start times (naive = `default_tz`).
    Without an export column the export price equals the import price."""
    rows = _rows(text.lstrip("\ufeff"))
    if not rows:
        raise PriceFileError("empty price file")
    header = [h.strip().lower() for h in rows[0]]
    if header[:2] != ["start", "import_c_kwh"]:
        raise PriceFileError("price file header must be start,import_c_kwh[,export_c_kwh]")
    has_export = len(header) > 2 and header[2] == "export_c_kwh"
    starts: list[datetime] = []
    imports: list[float] = []
    exports: list[float] = []
    for line_no, row in enumerate(rows[1:], start=2):
        try:
            starts.append(_parse_time(row[0], default_tz))
            imports.append(_number(row[1], b.PRICE_C_KWH, "price file", line_no, "import_c_kwh"))
            exports.append(
                _number(row[2], b.PRICE_C_KWH, "price file", line_no, "export_c_kwh")
                if has_export
                else imports[-1]
            )
        except PriceFileError:
            raise
        except (ValueError, IndexError) as exc:
            raise PriceFileError(f"price file line {line_no}: {exc}") from exc
    interval = _uniform_interval(starts, "price file")
    return PriceSeries(starts[0], interval, tuple(imports), tuple(exports))


def parse_price_file(text: str, tariff: NemTariff | None = None) -> PriceSeries:
    """A NEM PRICE_AND_DEMAND file or the simple CSV, told apart by the header."""
    if is_nem_price_and_demand(text):
        return parse_nem_price_and_demand(text, tariff)
    return parse_simple_prices(text)


@dataclass(frozen=True)
class SiteSeries:
    """Household consumption and rooftop solar, average kW per interval."""

    start: datetime
    interval: timedelta
    load_kw: tuple[float, ...]
    solar_kw: tuple[float, ...]

    def __len__(self) -> int:
        return len(self.load_kw)

    def index_at(self, moment: datetime) -> int:
        return math.floor((moment - self.start) / self.interval)

    def net_kw_at(self, moment: datetime) -> float:
        i = self.index_at(moment)
        if not 0 <= i < len(self):
            raise ValueError(f"{moment.isoformat()} is outside the site series")
        return self.load_kw[i] - self.solar_kw[i]

    def day_profile(
        self, day: date, prices: PriceSeries, tz: timezone = AEST
    ) -> tuple[np.ndarray, np.ndarray]:
        """Load and solar (kW) for each price interval, taken from `day` at the same local
        time of day: a simple forecast from a real day of this household."""
        load = np.empty(len(prices))
        solar = np.empty(len(prices))
        for k, moment in enumerate(prices.starts()):
            local = moment.astimezone(tz)
            source = datetime.combine(day, local.time(), tzinfo=tz)
            i = self.index_at(source)
            if not 0 <= i < len(self):
                raise ValueError(f"{source.isoformat()} is outside the site series")
            load[k] = self.load_kw[i]
            solar[k] = self.solar_kw[i]
        return load, solar


def parse_ausgrid_household(text: str, tz: timezone = AEST) -> SiteSeries:
    """Ausgrid solar-home half-hourly CSV, header `,GC,GG`: start time, consumption kW, PV kW
    (average kW over the interval). Naive times are read in `tz`."""
    rows = _rows(text.lstrip("\ufeff"))
    if not rows:
        raise PriceFileError("empty household file")
    header = [h.strip().upper() for h in rows[0]]
    try:
        i_load, i_solar = header.index("GC"), header.index("GG")
    except ValueError as exc:
        raise PriceFileError(f"household header must name GC and GG columns: {rows[0]}") from exc
    starts: list[datetime] = []
    load: list[float] = []
    solar: list[float] = []
    for line_no, row in enumerate(rows[1:], start=2):
        try:
            starts.append(_parse_time(row[0], tz))
            load.append(_number(row[i_load], b.HOUSE_LOAD_KW, "household file", line_no, "GC"))
            solar.append(_number(row[i_solar], b.HOUSE_LOAD_KW, "household file", line_no, "GG"))
        except PriceFileError:
            raise
        except (ValueError, IndexError) as exc:
            raise PriceFileError(f"household file line {line_no}: {exc}") from exc
    interval = _uniform_interval(starts, "household file")
    return SiteSeries(starts[0], interval, tuple(load), tuple(solar))


def hours_overlap(a_start: datetime, a_end: datetime, b_start: datetime, b_end: datetime) -> float:
    """Length of [a_start, a_end) and [b_start, b_end) in common, hours."""
    seconds = (min(a_end, b_end) - max(a_start, b_start)).total_seconds()
    return max(0.0, seconds / 3600.0)
