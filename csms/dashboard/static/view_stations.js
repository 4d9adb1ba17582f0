import { api } from "./api.js";
import { live } from "./app.js";
import { el, fmt, powerCell } from "./forms.js";

const PAGE = 50;

function connectorBadges(connectors) {
  if (!connectors.length) return el("span", { class: "muted", text: "-" });
  return el("span", {}, connectors.map((c) => el("span", { class: `conn ${c.status}`, "data-conn": `${c.evse_id}/${c.connector_id}`, text: `${c.evse_id}/${c.connector_id} ${c.status}` })));
}

export async function stationsView(root) {
  const state = { offset: 0, q: "", online: false };
  const search = el("input", { type: "search", id: "station-search", placeholder: "search id", maxlength: "48" });
  const online = el("input", { type: "checkbox", id: "station-online" });
  const info = el("span", { class: "muted", id: "station-page-info" });
  const prev = el("button", { text: "< prev", id: "page-prev" });
  const next = el("button", { text: "next >", id: "page-next" });
  const body = el("tbody");
  const table = el("table", { id: "stations-table" },
    el("thead", {}, el("tr", {}, ["", "Station", "OCPP", "Boot", "Vendor / model", "EVSEs / connectors", "Power", "SoC", "Last heartbeat"].map((h, i) => el("th", { class: i >= 6 && i <= 7 ? "num" : "", text: h })))),
    body);
  root.append(el("h2", { text: "Stations" }),
    el("div", { class: "toolbar" }, search, el("label", {}, online, " online only"), prev, next, info), table);

  const rows = new Map();
  async function load() {
    const page = await api("/dashboard/stations", { query: { offset: state.offset, limit: PAGE, q: state.q, online: state.online } });
    rows.clear();
    body.replaceChildren(...page.items.map((s) => {
      const power = el("td", { class: "num" }, powerCell(s.power_w));
      const soc = el("td", { class: "num", text: s.soc == null ? "-" : `${fmt(s.soc, 0)} %` });
      const dot = el("span", { class: `dot ${s.connected ? "on" : ""}`, title: s.connected ? "connected" : "offline" });
      const conns = el("td", {}, connectorBadges(s.connectors));
      const boot = el("td", { text: s.registration_status });
      const row = el("tr", { "data-station": s.id },
        el("td", {}, dot), el("td", {}, el("a", { href: `#/station/${encodeURIComponent(s.id)}`, text: s.id })),
        el("td", { text: s.ocpp_version || s.ocppVersion || "-" }), boot,
        el("td", { text: [s.vendor_name, s.model].filter(Boolean).join(" ") || "-" }), conns, power, soc,
        el("td", { text: s.last_heartbeat_at ? new Date(s.last_heartbeat_at).toLocaleTimeString() : "-" }));
      rows.set(s.id, { row, power, soc, dot, conns, boot, connectors: s.connectors });
      return row;
    }));
    const last = Math.min(page.offset + page.items.length, page.total);
    info.textContent = page.total ? `${page.offset + 1}-${last} of ${page.total}` : "no stations";
    prev.disabled = page.offset === 0;
    next.disabled = last >= page.total;
  }
  let timer;
  search.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(() => { state.q = search.value.trim(); state.offset = 0; load(); }, 250); });
  online.addEventListener("change", () => { state.online = online.checked; state.offset = 0; load(); });
  prev.addEventListener("click", () => { state.offset = Math.max(0, state.offset - PAGE); load(); });
  next.addEventListener("click", () => { state.offset += PAGE; load(); });

  // Only the rows on screen change; the stream carries every station's events.
  live((e) => {
    const r = rows.get(e.station);
    if (!r) return;
    if (e.type === "meter") {
      r.power.replaceChildren(powerCell(e.power_w));
      r.soc.textContent = e.soc == null ? "-" : `${fmt(e.soc, 0)} %`;
    } else if (e.type === "connection") {
      r.dot.classList.toggle("on", e.connected);
      if (!e.connected) r.power.replaceChildren(powerCell(0));
    } else if (e.type === "connector") {
      const found = r.connectors.find((c) => c.evse_id === e.evse && c.connector_id === e.connector);
      if (found) found.status = e.status; else r.connectors.push({ evse_id: e.evse, connector_id: e.connector, status: e.status });
      r.conns.replaceChildren(connectorBadges(r.connectors));
    } else if (e.type === "boot") {
      r.boot.textContent = e.status;
    }
  });
  await load();
}
