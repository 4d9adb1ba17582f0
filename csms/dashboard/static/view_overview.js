import { api } from "./api.js";
import { every, live } from "./app.js";
import { liveChart } from "./charts.js";
import { el, fmt } from "./forms.js";

function tile(id, label, value) {
  return el("div", { class: "tile" }, el("div", { class: "label", text: label }), el("div", { class: "value", id, text: value }));
}

export async function overviewView(root) {
  const data = await api("/dashboard/overview");
  const tiles = el("div", { class: "tiles" },
    tile("ov-online", "Stations online", `${data.online} / ${data.stations}`),
    tile("ov-import", "Charging now", `${fmt(data.power_import_kw, 2)} kW`),
    tile("ov-export", "Discharging now", `${fmt(data.power_export_kw, 2)} kW`),
    tile("ov-energy", "Energy today", `${fmt(data.energy_today_kwh, 2)} kWh`),
    tile("ov-money", "Money today", fmt(data.cost_today, 2)),
    tile("ov-tx", "Transactions today", String(data.transactions_today)));
  const chartBox = el("div", { class: "card", id: "chart-fleet" });
  root.append(el("h2", { text: "Overview" }), tiles, chartBox,
    el("p", { class: "muted", text: `Today since ${new Date(data.since).toLocaleString()}. Power from this node's stations, live.` }));
  const fleet = liveChart(chartBox, {
    title: "Fleet power now (kW)",
    series: [{ label: "charging", color: "#1f77b4", unit: "kW" }, { label: "discharging", color: "#d62728" }],
  });
  // Power per station from the live stream; the totals are summed here, in the browser.
  const power = new Map();
  let totalsDirty = false;
  live((e) => {
    if (e.type === "meter") power.set(e.station, e.power_w || 0);
    else if (e.type === "connection" && !e.connected) power.delete(e.station);
    if (e.type === "connection") {
      const online = document.getElementById("ov-online");
      const [on, all] = online.textContent.split(" / ").map(Number);
      online.textContent = `${Math.max(0, on + (e.connected ? 1 : -1))} / ${all}`;
    }
    if (e.type === "transaction") totalsDirty = true;
  });
  every(1000, () => {
    let charging = 0, discharging = 0;
    for (const w of power.values()) { if (w > 0) charging += w; else discharging -= w; }
    if (power.size) {
      document.getElementById("ov-import").textContent = `${fmt(charging / 1000, 2)} kW`;
      document.getElementById("ov-export").textContent = `${fmt(discharging / 1000, 2)} kW`;
    }
    fleet.push(Date.now() / 1000, [charging / 1000, discharging / 1000]);
  });
  // Energy and money today change with transactions: re-read at most every 10 s, and only then.
  every(10000, async () => {
    if (!totalsDirty) return;
    totalsDirty = false;
    const fresh = await api("/dashboard/overview");
    document.getElementById("ov-energy").textContent = `${fmt(fresh.energy_today_kwh, 2)} kWh`;
    document.getElementById("ov-money").textContent = fmt(fresh.cost_today, 2);
    document.getElementById("ov-tx").textContent = String(fresh.transactions_today);
  });
}
