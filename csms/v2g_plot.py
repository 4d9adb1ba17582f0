"""`csms v2g plan --plot FILE`: the plan chart drawn with matplotlib (PNG or SVG by the file's
suffix): import price, the plan's power against plain charging and the threshold rules, and
the SoC of each with the target at departure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from csms.v2g.plan_chart import PlanChart

PLOT_SUFFIXES = (".png", ".svg")


def write_plan_plot(chart: PlanChart, path: Path, tz: timezone = UTC) -> None:
    suffix = path.suffix.lower()
    if suffix not in PLOT_SUFFIXES:
        raise ValueError(f"--plot {path}: the file must end in .png or .svg")
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    times = [datetime.fromtimestamp(t, tz) for t in chart.times]
    step = times[1] - times[0] if len(times) > 1 else timedelta(minutes=5)
    edges = [*times, times[-1] + step] if times else []

    def stairs(values: tuple[float, ...]) -> list[float]:
        return [*values, values[-1]] if values else []

    fig, (ax_price, ax_power, ax_soc) = plt.subplots(
        3, 1, sharex=True, figsize=(11, 8), height_ratios=(1, 1.3, 1), layout="constrained"
    )
    ax_price.step(edges, stairs(chart.import_c_kwh), where="post", color="tab:red", label="import")
    ax_price.step(
        edges,
        stairs(chart.export_c_kwh),
        where="post",
        color="tab:orange",
        lw=0.8,
        label="export",
    )
    ax_price.set_ylabel("price (c/kWh)")
    ax_price.legend(loc="upper left")
    ax_price.set_title(
        f"V2G plan {chart.plan_cost_c / 100:.2f} | plain charging {chart.plain_cost_c / 100:.2f}"
        f" | threshold rules {chart.rules_cost_c / 100:.2f} (AUD, energy + wear)"
    )
    series = (
        ("plan", chart.plan_kw, chart.plan_soc, "tab:blue", 1.8),
        ("plain charging", chart.plain_kw, chart.plain_soc, "tab:gray", 1.0),
        ("threshold rules", chart.rules_kw, chart.rules_soc, "tab:green", 1.0),
    )
    for label, power, soc, color, width in series:
        ax_power.step(edges, stairs(power), where="post", color=color, lw=width, label=label)
        ax_soc.plot(edges, [chart.soc_start, *soc], color=color, lw=width, label=label)
    ax_power.axhline(0, color="black", lw=0.5)
    ax_power.set_ylabel("power (kW)\n+ charge / - discharge")
    ax_power.legend(loc="upper left")
    departure = datetime.fromtimestamp(chart.departure, tz)
    ax_soc.axhline(chart.target_soc, color="tab:purple", ls="--", lw=0.8, label="target")
    ax_soc.axvline(departure, color="tab:purple", ls=":", lw=0.8, label="departure")
    ax_soc.set_ylabel("SoC (%)")
    ax_soc.set_ylim(0, 100)
    ax_soc.legend(loc="lower right")
    ax_soc.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=tz))
    ax_soc.set_xlabel(f"time (UTC{departure.strftime('%z')})")
    for axis in (ax_price, ax_power, ax_soc):
        axis.grid(True, alpha=0.3)
    fig.savefig(path, format=suffix[1:])
    plt.close(fig)
