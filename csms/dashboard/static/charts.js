// Charts drawn by the vendored uPlot (window.uPlot); this module only says what to draw.
const uPlot = window.uPlot;
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#7f7f7f", "#17becf"];

function width(element) {
  const box = element.clientWidth || element.parentElement?.clientWidth || 600;
  return Math.max(280, box - 10);
}

// series: [{label, scale?, stepped?, color?, dash?}], data: [xs, ys1, ys2, ...] (x in Unix s)
export function lineChart(element, { title, series, data, scales = {}, axes, height = 240 }) {
  const opts = {
    title,
    width: width(element),
    height,
    scales: { x: { time: true }, ...scales },
    series: [{}, ...series.map((s, i) => ({
      label: s.label,
      scale: s.scale || "y",
      stroke: s.color || COLORS[i % COLORS.length],
      width: s.width || 1.5,
      spanGaps: true,
      dash: s.dash,
      paths: s.stepped ? uPlot.paths.stepped({ align: 1 }) : undefined,
      value: (u, v) => (v == null ? "-" : v.toFixed(s.decimals ?? 2)),
    }))],
    axes: axes || [{}, { label: series[0]?.unit || "" }],
  };
  const chart = new uPlot(opts, data, element);
  element.dataset.chart = "uplot";
  // Follow the card's width (the layout settles after the chart is made).
  new ResizeObserver(() => {
    const w = width(element);
    if (Math.abs(w - chart.width) > 4) chart.setSize({ width: w, height });
  }).observe(element);
  return chart;
}

// A chart fed live: push(x, [y1, y2, ...]) appends a point (keeps at most `keep`).
export function liveChart(element, spec, keep = 600) {
  const columns = [[], ...spec.series.map(() => [])];
  const chart = lineChart(element, { ...spec, data: columns });
  element.__points = () => columns[0].length; // how many points it shows (the browser test reads it)
  return {
    chart,
    points: () => columns[0].length,
    push(x, ys) {
      if (columns[0].length && x <= columns[0].at(-1)) return; // x must grow (uPlot)
      columns[0].push(x);
      ys.forEach((y, i) => columns[i + 1].push(y));
      if (columns[0].length > keep) columns.forEach((c) => c.shift());
      chart.setData(columns);
    },
    load(xs, yss) {
      columns[0].splice(0, Infinity, ...xs);
      yss.forEach((ys, i) => columns[i + 1].splice(0, Infinity, ...ys));
      chart.setData(columns);
    },
  };
}

// Step periods (startPeriod seconds, limit) of a schedule starting at `start` (Unix s).
export function periodsToSteps(start, periods, durationS) {
  const xs = [], ys = [];
  for (const p of periods) { xs.push(start + p.startPeriod); ys.push(p.limit); }
  if (xs.length) { xs.push(start + (durationS || (periods.at(-1).startPeriod + 3600))); ys.push(ys.at(-1)); }
  return [xs, ys];
}

// The plan chart: price, power (plan + baselines) and SoC, as csms v2g plan --plot draws it.
export function planCharts(element, chart) {
  element.replaceChildren();
  const [priceEl, powerEl, socEl] = [0, 1, 2].map(() => element.appendChild(document.createElement("div")));
  const t = chart.times;
  lineChart(priceEl, {
    title: "Price (c/kWh)", height: 180,
    series: [{ label: "import", stepped: true, color: "#d62728", unit: "c/kWh" }, { label: "export", stepped: true, color: "#ff7f0e" }],
    data: [t, chart.import_c_kwh, chart.export_c_kwh],
  });
  lineChart(powerEl, {
    title: "Power (kW, + charge / - discharge)", height: 200,
    series: [
      { label: "plan", stepped: true, width: 2, color: "#1f77b4", unit: "kW" },
      { label: "plain charging", stepped: true, color: "#7f7f7f" },
      { label: "threshold rules", stepped: true, color: "#2ca02c" },
    ],
    data: [t, chart.plan_kw, chart.plain_kw, chart.rules_kw],
  });
  lineChart(socEl, {
    title: "SoC (%)", height: 180, scales: { y: { range: [0, 100] } },
    series: [
      { label: "plan", width: 2, color: "#1f77b4", unit: "%" },
      { label: "plain charging", color: "#7f7f7f" },
      { label: "threshold rules", color: "#2ca02c" },
      { label: "target", color: "#9467bd", dash: [5, 5] },
    ],
    // SoC after each interval, drawn at the interval's end, from the SoC at the start.
    data: (() => {
      const step = t.length > 1 ? t[1] - t[0] : 300;
      const ends = [t[0], ...t.map((x) => x + step)];
      const from = (soc) => [chart.soc_start, ...soc];
      return [ends, from(chart.plan_soc), from(chart.plain_soc), from(chart.rules_soc), ends.map(() => chart.target_soc)];
    })(),
  });
}
