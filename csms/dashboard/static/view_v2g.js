import { api } from "./api.js";
import { canOperate, live } from "./app.js";
import { lineChart, planCharts } from "./charts.js";
import { el, field, fmt, time } from "./forms.js";

const enc = encodeURIComponent;
const iso = (d) => new Date(d).toISOString();
const DAY = 86400 * 1000;

function table(headers, rows, attrs = {}) {
  return el("table", attrs, el("thead", {}, el("tr", {}, headers.map((h) => el("th", { text: h })))), el("tbody", {}, rows));
}
async function optional(promise) { try { return await promise; } catch { return null; } }

// Power (kW) and SoC from the station's running transaction: what actually happened.
async function actual(stationId) {
  const tx = (await api(`/stations/${enc(stationId)}/transactions`, { query: { state: "Active", limit: 1 } })).items[0];
  if (!tx) return null;
  const path = `/stations/${enc(stationId)}/transactions/${enc(tx.transaction_id)}/meter-values`;
  const first = await api(path, { query: { limit: 1 } });
  const items = (await api(path, { query: { limit: 1000, offset: Math.max(0, first.total - 1000) } })).items;
  const power = new Map(), soc = new Map();
  for (const m of items) {
    if (m.phase) continue;
    const t = Date.parse(m.timestamp) / 1000, k = m.unit === "kW" ? 1 : 1 / 1000;
    if (m.measurand === "Power.Active.Import") power.set(t, (power.get(t) || 0) + m.value * k);
    if (m.measurand === "Power.Active.Export") power.set(t, (power.get(t) || 0) - m.value * k);
    if (m.measurand === "SoC") soc.set(t, m.value);
  }
  return { power, soc };
}

async function vehicleCard(vehicle, grid) {
  const card = el("div", { class: "card", "data-vehicle": vehicle.id }, el("h2", { text: `Vehicle ${vehicle.name || vehicle.id}` }));
  grid.append(card);
  const context = await optional(api(`/vehicles/${enc(vehicle.id)}/session`));
  card.append(el("p", {}, `${vehicle.capacity_kwh} kWh ${vehicle.chemistry}, ${vehicle.max_charge_kw} kW in / ${vehicle.max_discharge_kw} kW out, at ${vehicle.station_id || "no station"}${vehicle.evse_id ? ` EVSE ${vehicle.evse_id}` : ""}.`),
    el("p", { class: "vehicle-context" }, context
      ? `SoC ${fmt(context.soc == null ? null : context.soc * 100, 0)} % (${context.soc_source}); departure ${time(context.departure)} (${context.departure_source}); target ${fmt(context.target_soc * 100, 0)} %`
      : "No session context."));
  if (!vehicle.station_id) return;
  const stored = await optional(api(`/stations/${enc(vehicle.station_id)}/v2g/plan`));
  if (!stored) { card.append(el("p", { class: "muted", text: "No plan sent to this station yet." })); return; }
  const plan = stored.plan;
  const xs = plan.interval_starts.map((s) => Date.parse(s) / 1000);
  const prices = await optional(api("/prices", { query: { from: plan.interval_starts[0], to: iso(Date.parse(plan.interval_starts.at(-1)) + 3600 * 1000) } }));
  const priceAt = new Map((prices?.intervals || []).map((p) => [Date.parse(p.start) / 1000, p]));
  const did = vehicle.station_id ? await optional(actual(vehicle.station_id)) : null;
  card.append(el("p", { class: "muted", text: `Plan ${stored.id} ${stored.status} at ${time(stored.planned_at)}${stored.reason ? ` (${stored.reason})` : ""}` }));
  // Actual values binned onto the plan's intervals (the last sample in each).
  const bin = (m) => {
    if (!m) return xs.map(() => null);
    const out = xs.map(() => null);
    for (const [t, v] of m) { const i = xs.findLastIndex((x) => x <= t); if (i >= 0) out[i] = v; }
    return out;
  };
  let lastPrice = null;
  const importPrice = xs.map((x) => { const p = priceAt.get(x); if (p) lastPrice = p.import_c_kwh; return lastPrice; });
  lineChart(card.appendChild(el("div", { class: "chart-price" })), { title: "Import price (c/kWh)", height: 150, series: [{ label: "import", stepped: true, color: "#d62728" }], data: [xs, importPrice] });
  lineChart(card.appendChild(el("div", { class: "chart-plan-power" })), { title: "Power: plan vs actual (kW)", height: 180, series: [{ label: "plan", stepped: true, width: 2 }, { label: "actual", color: "#ff7f0e" }], data: [xs, plan.power_kw, bin(did?.power)] });
  lineChart(card.appendChild(el("div", { class: "chart-plan-soc" })), { title: "SoC: plan vs actual (%)", height: 160, scales: { y: { range: [0, 100] } }, series: [{ label: "plan", width: 2 }, { label: "actual", color: "#ff7f0e" }], data: [xs, plan.soc_after.map((s) => s * 100), bin(did?.soc)] });
  const econ = await optional(api(`/vehicles/${enc(vehicle.id)}/economics`, { query: { from: iso(Date.now() - 30 * DAY), to: iso(Date.now() + 60000) } }));
  if (econ) {
    card.append(table(["Import cost", "Export revenue", "Grid services", "Wear", "Net", "Payback"], [el("tr", { class: "economics" },
      el("td", { text: `${fmt(econ.import_cost_aud, 2)} AUD` }), el("td", { text: `${fmt(econ.export_revenue_aud, 2)} AUD` }), el("td", { text: `${fmt(econ.grid_service_aud, 2)} AUD` }),
      el("td", { text: `${fmt(econ.degradation_aud, 2)} AUD` }), el("td", { text: `${fmt(econ.net_value_aud, 2)} AUD` }), el("td", { text: econ.payback_years == null ? "never" : `${fmt(econ.payback_years, 1)} y` }))]),
    el("p", { class: "muted", text: `Last 30 days: ${fmt(econ.imported_kwh, 2)} kWh in, ${fmt(econ.exported_kwh, 2)} kWh out, ${fmt(econ.equivalent_full_cycles, 2)} cycles.` }));
  }
  const backup = await optional(api(`/stations/${enc(vehicle.station_id)}/v2g/backup`));
  if (backup) {
    card.append(el("p", { class: "backup", text: `Grid ${backup.grid_present ? "present" : "ABSENT"}; backup ${backup.backup_active ? "ACTIVE" : "idle"}${backup.emergency_backup ? " (emergency)" : ""}; house load ${fmt(backup.house_load_kw, 2)} kW; backup time ${backup.backup_hours == null ? "-" : `${fmt(backup.backup_hours, 1)} h`}` }));
  }
}

export async function v2gView(root) {
  root.append(el("h2", { text: "V2G" }));
  const fleetCard = el("div", { class: "card", id: "v2g-fleet" }, el("h2", { text: "Fleet flexibility (30 min)" }));
  const flex = await optional(api("/v2g/flexibility"));
  if (flex) {
    fleetCard.append(el("div", { class: "tiles" },
      ...[["Up (discharge) kW", flex.up_kw], ["Down (charge) kW", flex.down_kw], ["Up kWh", flex.up_kwh], ["Down kWh", flex.down_kwh], ["Vehicles", flex.vehicle_count]].map(([label, v]) =>
        el("div", { class: "tile" }, el("div", { class: "label", text: label }), el("div", { class: "value", text: fmt(v, label === "Vehicles" ? 0 : 1) })))),
    table(["Vehicle", "Up kW", "Down kW", "Up kWh", "Down kWh", "Until"], flex.vehicles.map((v) => el("tr", {}, el("td", { text: v.vehicle_id }), el("td", { text: fmt(v.up_kw, 1) }), el("td", { text: fmt(v.down_kw, 1) }), el("td", { text: fmt(v.up_kwh, 1) }), el("td", { text: fmt(v.down_kwh, 1) }), el("td", { text: time(v.until) })))));
  }
  const dispatchCard = el("div", { class: "card", id: "v2g-dispatches" }, el("h2", { text: "Dispatch history and frequency events (7 days)" }));
  const dispatches = (await optional(api("/v2g/dispatches", { query: { from: iso(Date.now() - 7 * DAY), to: iso(Date.now() + 60000) } }))) || [];
  dispatchCard.append(dispatches.length
    ? table(["Started", "Kind", "Requested kW", "Allocated kW", "Accepted kW", "Measured kW", "Duration s"], dispatches.map((d) => el("tr", {}, el("td", { text: time(d.started_at) }), el("td", { text: d.kind }), el("td", { text: fmt(d.requested_kw, 1) }), el("td", { text: fmt(d.allocated_kw, 1) }), el("td", { text: fmt(d.accepted_kw, 1) }), el("td", { text: fmt(d.measured_kw, 1) }), el("td", { text: d.duration_s ?? "-" }))))
    : el("p", { class: "muted", text: "No dispatches or frequency events." }));
  const grid = el("div", { class: "grid2", id: "v2g-vehicles" });
  root.append(fleetCard, dispatchCard, grid);
  const vehicles = await api("/vehicles");
  if (!vehicles.length) grid.append(el("p", { class: "muted", text: "No vehicles registered (POST /api/v1/vehicles)." }));
  for (const vehicle of vehicles) await vehicleCard(vehicle, grid);
  live((e) => {
    if (e.type !== "meter") return;
    const card = [...grid.querySelectorAll("[data-vehicle]")].find((c) => vehicles.find((v) => v.id === c.dataset.vehicle)?.station_id === e.station);
    if (card) {
      let now = card.querySelector(".now");
      if (!now) now = card.insertBefore(el("p", { class: "now" }), card.children[1]);
      now.textContent = `Now: ${fmt(e.power_w / 1000, 2)} kW, SoC ${fmt(e.soc, 1)} %`;
    }
  });
}

export async function whatIfView(root) {
  root.append(el("h2", { text: "What-if: one vehicle against the stored prices" }));
  const vehicles = await api("/vehicles");
  const v = vehicles[0] || { capacity_kwh: 40, max_charge_kw: 7, max_discharge_kw: 7, chemistry: "NMC" };
  const input = (name, value, attrs = {}) => el("input", { name, value, type: "number", step: "any", ...attrs });
  const fields = {
    capacity_kwh: input("capacity_kwh", v.capacity_kwh), max_charge_kw: input("max_charge_kw", v.max_charge_kw),
    max_discharge_kw: input("max_discharge_kw", v.max_discharge_kw), soc: input("soc", 50), target_soc: input("target_soc", 80),
    hours: input("hours", 16, { min: "1", max: "168" }),
  };
  const box = el("div", { id: "what-if-chart" });
  const summary = el("p", { id: "what-if-summary" });
  const form = el("form", { class: "cmd card", id: "form-what-if" },
    field("capacity kWh", fields.capacity_kwh), field("max charge kW", fields.max_charge_kw), field("max discharge kW", fields.max_discharge_kw),
    field("SoC now %", fields.soc), field("target SoC %", fields.target_soc), field("departure in h", fields.hours), el("button", { type: "submit", text: "Plan" }));
  root.append(form, summary, el("div", { class: "card" }, box));
  if (!canOperate()) { summary.textContent = "Planning needs an operate token."; return; }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    summary.textContent = "planning...";
    try {
      const now = Date.now();
      const departure = now + Number(fields.hours.value) * 3600 * 1000;
      const stored = await api("/prices", { query: { from: iso(now - 3600 * 1000), to: iso(departure) } });
      if (!stored.intervals.length) throw new Error("no stored prices for the next hours (PUT /api/v1/prices)");
      const first = stored.intervals[0];
      const chart = await api("/dashboard/what-if", { method: "POST", body: {
        capacity_kwh: Number(fields.capacity_kwh.value), max_charge_kw: Number(fields.max_charge_kw.value), max_discharge_kw: Number(fields.max_discharge_kw.value),
        chemistry: v.chemistry === "NCM" ? "NMC" : v.chemistry || "NMC", soc: Number(fields.soc.value) / 100, target_soc: Number(fields.target_soc.value) / 100,
        departure: iso(departure), start: iso(Math.max(Date.parse(first.start), now)),
        prices: { start: first.start, interval_s: first.interval_s, import_c_kwh: stored.intervals.map((p) => p.import_c_kwh), export_c_kwh: stored.intervals.map((p) => p.export_c_kwh) },
      } });
      summary.textContent = `Cost (energy + wear): plan ${fmt(chart.plan_cost_c / 100, 2)} AUD, plain charging ${fmt(chart.plain_cost_c / 100, 2)} AUD, threshold rules ${fmt(chart.rules_cost_c / 100, 2)} AUD.`;
      planCharts(box, chart);
    } catch (error) {
      summary.textContent = error.message;
    }
  });
}
