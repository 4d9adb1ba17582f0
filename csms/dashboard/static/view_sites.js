// Sites (issue 18): homes or depots behind one grid connection, their operating envelope in force
// (CSIP-AUS or operator), what it leaves each station, the next 24 h, and the operator's forms.
// Every value from the API goes into text nodes or attributes through el(): never markup.
import { api } from "./api.js";
import { every, session } from "./app.js";
import { el, field, fmt, time } from "./forms.js";

const enc = encodeURIComponent;
const REFRESH_MS = 10000; // the envelope in force changes at its start/end, or from the server
// Sites and envelopes are written with the admin scope, like stations (csms/api/routes/sites.py).
const canEdit = () => session.scope === "admin";

function table(headers, rows, attrs = {}) {
  return el("table", attrs, el("thead", {}, el("tr", {}, headers.map((h) => el("th", { text: h })))), el("tbody", {}, rows));
}

// "5.00 kW" from watts; "not set" for a limit the envelope does not set.
function watts(w) {
  if (w == null) return "not set";
  const n = Number(w);
  return Number.isFinite(n) ? `${fmt(n / 1000, 2)} kW` : "-";
}
function flag(v, no) { return v == null ? "not set" : v === true ? "yes" : v === false ? no : "-"; }
function stamp(iso, empty = "-") {
  return iso ? el("time", { datetime: String(iso), title: String(iso), text: time(iso) }) : empty;
}
export function sourceText(e) {
  const origin = e.source === "csip-aus" ? "CSIP-AUS" : e.source === "operator" ? "operator" : String(e.source);
  const parts = [origin];
  if (e.control_id != null && e.control_id !== "") parts.push(`control ${e.control_id}`);
  if (e.is_default) parts.push("(default control)");
  return parts.join(" ");
}

// An API refusal as the operator should read it: the status, the detail, each field and why.
function problemText(error) {
  const what = { 404: "Not found", 409: "Conflict", 422: "Invalid", 403: "Not allowed" }[error.status] || "Error";
  const lines = [`${what} (${error.status || "no answer"}): ${error.message}`];
  for (const item of error.problem?.errors || []) {
    if (item && typeof item === "object") lines.push(`- ${item.field ?? ""}: ${item.message ?? ""}`);
  }
  return lines.join("\n");
}
function showProblem(box, error) {
  box.textContent = problemText(error);
  box.classList.add("error");
}
function showOk(box, text) {
  box.textContent = text;
  box.classList.remove("error");
}

// ---- the site form (create and edit) -------------------------------------------------------
function siteForm(id, site, onSave) {
  const editing = site != null;
  const input = (name, attrs = {}) => el("input", { name, ...attrs });
  const inputs = {
    id: input("id", { required: true, maxlength: "64", pattern: "[A-Za-z0-9._\\-]{1,64}", value: site?.id, readonly: editing }),
    name: input("name", { required: true, maxlength: "200", value: site?.name }),
    nmi: input("nmi", { maxlength: "11", placeholder: "10 characters + check digit", value: site?.nmi }),
    lfdi: input("lfdi", { maxlength: "40", placeholder: "40 hex digits", value: site?.lfdi }),
    sfdi: input("sfdi", { type: "number", min: "1", step: "1", value: site?.sfdi }),
    registration_pin: input("registration_pin", { type: "number", min: "0", max: "999999", step: "1", autocomplete: "off",
      placeholder: editing && site.has_registration_pin ? "set: enter it again to keep it" : "" }),
    csip_enabled: input("csip_enabled", { type: "checkbox", checked: site?.csip_enabled }),
    station_ids: input("station_ids", { placeholder: "station ids, comma separated", value: (site?.station_ids || []).join(", ") }),
  };
  const box = el("pre", { class: "answer", id: `${id}-answer`, text: "" });
  const form = el("form", { class: "cmd", id }, el("strong", { text: editing ? "Edit site" : "New site" }),
    field("id *", inputs.id), field("name *", inputs.name), field("NMI", inputs.nmi), field("LFDI", inputs.lfdi),
    field("SFDI", inputs.sfdi), field("registration PIN", inputs.registration_pin),
    field("stations", inputs.station_ids), el("label", {}, inputs.csip_enabled, "CSIP-AUS on"),
    el("button", { type: "submit", text: editing ? "Save" : "Create" }),
    editing && site.has_registration_pin
      ? el("span", { class: "muted", id: `${id}-pin-note`, text: "The PIN is never shown: saving replaces the site, so enter the PIN again to keep it." })
      : null);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = (name) => inputs[name].value.trim() || null;
    const number = (name) => (inputs[name].value === "" ? null : Number(inputs[name].value));
    const body = {
      id: inputs.id.value.trim(),
      name: inputs.name.value.trim(),
      nmi: text("nmi"),
      lfdi: text("lfdi"),
      sfdi: number("sfdi"),
      registration_pin: number("registration_pin"),
      csip_enabled: inputs.csip_enabled.checked,
      station_ids: inputs.station_ids.value.split(/[\s,]+/).filter(Boolean),
    };
    box.textContent = "saving...";
    try {
      const saved = await (editing
        ? api(`/sites/${enc(site.id)}`, { method: "PUT", body })
        : api("/sites", { method: "POST", body }));
      showOk(box, `Saved site ${saved?.id ?? body.id}.`);
      onSave(saved || body);
    } catch (error) {
      showProblem(box, error);
    }
  });
  return [form, box];
}

// ---- the sites list -------------------------------------------------------------------------
export async function sitesView(root) {
  const sites = await api("/sites");
  root.append(el("h2", { text: "Sites" }),
    el("p", { class: "muted", text: "A site is one grid connection (its NMI) holding stations; its operating envelope (CSIP-AUS or operator) bounds them together." }),
    table(["Site", "Name", "NMI", "Stations", "CSIP-AUS"], sites.map((s) =>
      el("tr", { "data-site": s.id },
        el("td", {}, el("a", { href: `#/site/${enc(s.id)}`, text: s.id })),
        el("td", { text: s.name }),
        el("td", { text: s.nmi || "-" }),
        el("td", { text: (s.station_ids || []).length ? s.station_ids.join(", ") : "-" }),
        el("td", { class: s.csip_enabled ? "csip on" : "csip", text: s.csip_enabled ? "on" : "off" }))),
    { id: "sites-table" }));
  if (!sites.length) root.append(el("p", { class: "muted", id: "sites-empty", text: "No sites yet." }));
  if (!canEdit()) root.append(el("p", { class: "muted", text: "Sign in with an admin token to create a site." }));
  if (canEdit()) {
    const card = el("div", { class: "card", id: "site-create" });
    card.append(...siteForm("form-site-create", null, (saved) => { location.hash = `#/site/${enc(saved.id)}`; }));
    root.append(card);
  }
}

// ---- one site ---------------------------------------------------------------------------------
function inForceTable(e) {
  const row = (label, key, value) => el("tr", { "data-field": key }, el("th", { text: label }), el("td", {}, value));
  return el("table", { class: "envelope" }, el("tbody", {},
    row("Source", "source", sourceText(e)),
    row("Export limit", "export_limit_w", watts(e.export_limit_w)),
    row("Import limit", "import_limit_w", watts(e.import_limit_w)),
    row("Generation limit", "generation_limit_w", watts(e.generation_limit_w)),
    row("Load limit", "load_limit_w", watts(e.load_limit_w)),
    row("Energize", "energize", flag(e.energize, "NO: no energy transfer")),
    row("Connect", "connect", flag(e.connect, "NO: disconnected")),
    row("Ramp", "ramp_rate_pct_per_s", e.ramp_rate_pct_per_s == null ? "not set" : `${fmt(e.ramp_rate_pct_per_s, 3)} % of rated power / s`),
    row("Ramp time", "ramp_time_s", e.ramp_time_s == null ? "not set" : `${fmt(e.ramp_time_s, 2)} s from the previous limits`),
    row("Start", "start", stamp(e.start)),
    row("End", "end", stamp(e.end, "open-ended")),
    row("Received", "received_at", stamp(e.received_at))));
}

function envelopeRow(e) {
  return el("tr", {}, el("td", {}, stamp(e.start)), el("td", {}, stamp(e.end, "open-ended")), el("td", { text: sourceText(e) }),
    el("td", { class: "num", text: watts(e.export_limit_w) }), el("td", { class: "num", text: watts(e.import_limit_w) }),
    el("td", { class: "num", text: watts(e.generation_limit_w) }), el("td", { class: "num", text: watts(e.load_limit_w) }),
    el("td", { text: `${flag(e.energize, "no")} / ${flag(e.connect, "no")}` }),
    el("td", { class: "num", text: e.ramp_rate_pct_per_s == null ? "-" : `${fmt(e.ramp_rate_pct_per_s, 3)} %/s` }),
    el("td", {}, stamp(e.received_at)));
}

function renderEnvelope(view, parts) {
  const e = view.in_force;
  parts.inForce.replaceChildren(
    e ? inForceTable(e) : el("p", { id: "site-no-envelope", text: "No envelope in force: the stations' own ratings apply." }),
    el("p", { class: "muted", text: `as of ${time(view.now)}` }));
  const b = view.charger_bounds || {};
  parts.stations.replaceChildren(
    el("p", { id: "site-bounds" }, `The site's chargers together: charge up to ${watts(b.max_charge_w)}, discharge up to ${watts(b.max_discharge_w)}.`),
    table(["Station", "Max charge", "Max discharge", "Enforced", "Status", "Sent"], (view.stations || []).map((s) =>
      el("tr", { "data-station": s.station_id },
        el("td", {}, el("a", { href: `#/station/${enc(s.station_id)}`, text: s.station_id })),
        el("td", { class: "num", text: watts(s.max_charge_w) }), el("td", { class: "num", text: watts(s.max_discharge_w) }),
        el("td", { class: s.enforced ? "" : "error", text: s.enforced ? "yes" : "no" }),
        el("td", { text: s.status ?? "-" }), el("td", {}, stamp(s.sent_at))))));
  const upcoming = view.upcoming || [];
  parts.upcoming.replaceChildren(upcoming.length
    ? table(["Start", "End", "Source", "Export", "Import", "Generation", "Load", "Energize / connect", "Ramp", "Received"], upcoming.map(envelopeRow))
    : el("p", { class: "muted", text: "No envelope in the next 24 h." }));
}

// A datetime-local input's value (the browser's time zone) as ISO 8601 UTC; "" -> null.
function isoOf(localValue) { return localValue ? new Date(localValue).toISOString() : null; }
function localOf(date) {
  const d = new Date(date.getTime() - date.getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 16);
}

function operatorForm(siteId, reload) {
  const now = new Date();
  now.setSeconds(0, 0); // minute precision: a start at the minute is already in force
  const kw = (name) => el("input", { name, type: "number", min: "0", step: "0.001" });
  const tri = (name) => el("select", { name }, [["", "not set"], ["true", "yes"], ["false", "no"]].map(([v, t]) => el("option", { value: v, text: t })));
  const inputs = {
    start: el("input", { name: "start", type: "datetime-local", value: localOf(now), required: true }),
    end: el("input", { name: "end", type: "datetime-local", value: localOf(new Date(now.getTime() + 2 * 3600 * 1000)) }),
    export_limit_kw: kw("export_limit_kw"), import_limit_kw: kw("import_limit_kw"),
    generation_limit_kw: kw("generation_limit_kw"), load_limit_kw: kw("load_limit_kw"),
    energize: tri("energize"), connect: tri("connect"),
    ramp: el("input", { name: "ramp_rate_pct_per_s", type: "number", min: "0", step: "any" }),
    control_id: el("input", { name: "control_id", maxlength: "64", placeholder: "optional reference" }),
  };
  const box = el("pre", { class: "answer", id: "site-operator-answer", text: "" });
  const form = el("form", { class: "cmd", id: "form-site-operator" }, el("strong", { text: "Operator envelope" }),
    field("start *", inputs.start), field("end (blank: open-ended)", inputs.end),
    field("export limit kW", inputs.export_limit_kw), field("import limit kW", inputs.import_limit_kw),
    field("generation limit kW", inputs.generation_limit_kw), field("load limit kW", inputs.load_limit_kw),
    field("energize", inputs.energize), field("connect", inputs.connect),
    field("ramp % / s", inputs.ramp), field("reference", inputs.control_id),
    el("button", { type: "submit", text: "Set (replaces the operator's envelopes)" }));
  const clear = el("button", { type: "button", id: "site-operator-clear", text: "Clear the operator's envelopes" });
  const w = (name) => (inputs[name].value === "" ? null : Math.round(Number(inputs[name].value) * 1000));
  const bool = (name) => (inputs[name].value === "" ? null : inputs[name].value === "true");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const envelope = {
      control_id: inputs.control_id.value.trim() || null,
      is_default: false,
      start: isoOf(inputs.start.value),
      end: isoOf(inputs.end.value),
      export_limit_w: w("export_limit_kw"),
      import_limit_w: w("import_limit_kw"),
      generation_limit_w: w("generation_limit_kw"),
      load_limit_w: w("load_limit_kw"),
      energize: bool("energize"),
      connect: bool("connect"),
      ramp_rate_pct_per_s: inputs.ramp.value === "" ? null : Number(inputs.ramp.value),
    };
    box.textContent = "sending...";
    try {
      await api(`/sites/${enc(siteId)}/envelopes/operator`, { method: "PUT", body: { envelopes: [envelope] } });
      showOk(box, "Operator envelope set; the site's stations are re-enforced.");
      await reload();
    } catch (error) {
      showProblem(box, error);
    }
  });
  clear.addEventListener("click", async () => {
    box.textContent = "clearing...";
    try {
      await api(`/sites/${enc(siteId)}/envelopes/operator`, { method: "DELETE" });
      showOk(box, "Operator envelopes cleared.");
      await reload();
    } catch (error) {
      showProblem(box, error);
    }
  });
  return [form, clear, box];
}

// The CSIP-AUS client's view of the site (registration, EndDevice, last poll, last error), shown
// field by field as text: its exact shape belongs to the CSIP client.
async function csipCard(box, siteId) {
  let info;
  try {
    info = await api(`/sites/${enc(siteId)}/csip`);
  } catch (error) {
    box.append(el("p", { class: "muted", text: error.status === 404 ? "No CSIP-AUS state for this site yet." : problemText(error) }));
    return;
  }
  const value = (v) => (v == null ? "-" : typeof v === "object" ? JSON.stringify(v) : String(v));
  const rows = info && typeof info === "object" ? Object.entries(info) : [["state", info]];
  box.append(el("table", { class: "envelope" }, el("tbody", {}, rows.map(([k, v]) =>
    el("tr", { "data-field": k }, el("th", { text: k }), el("td", {}, el("pre", { class: "small", text: value(v) })))))));
}

export async function siteView(root, siteId) {
  const site = await api(`/sites/${enc(siteId)}`);
  const details = [
    site.nmi ? `NMI ${site.nmi}` : "no NMI",
    site.lfdi ? `LFDI ${site.lfdi}` : null,
    site.sfdi != null ? `SFDI ${site.sfdi}` : null,
    site.has_registration_pin ? "registration PIN set" : null,
    `CSIP-AUS ${site.csip_enabled ? "on" : "off"}`,
    `stations: ${(site.station_ids || []).join(", ") || "none"}`,
  ].filter(Boolean).join(" | ");
  root.append(el("h2", { id: "site-title", text: `Site ${site.name} (${site.id})` }), el("p", { class: "muted", id: "site-details", text: details }));
  const grid = el("div", { class: "grid2" });
  root.append(grid);
  const card = (title, id) => { const c = el("div", { class: "card", id }, el("h2", { text: title })); grid.append(c); return c; };
  const parts = {
    inForce: el("div"),
    stations: el("div"),
    upcoming: el("div"),
  };
  card("Envelope in force", "site-in-force").append(parts.inForce);
  card("Stations: bounds and enforcement", "site-stations").append(parts.stations);
  card("Envelopes in the next 24 h", "site-upcoming").append(parts.upcoming);

  async function reload() { renderEnvelope(await api(`/sites/${enc(siteId)}/envelope`), parts); }
  await reload();
  if (site.csip_enabled) await csipCard(card("CSIP-AUS client", "site-csip"), siteId);
  every(REFRESH_MS, () => reload().catch((error) => console.warn(error)));

  if (canEdit()) {
    card("Set or clear an operator envelope", "site-operator").append(...operatorForm(siteId, reload));
    const edit = card("Site", "site-edit");
    // Saved: the view again, from the API (same route).
    edit.append(...siteForm("form-site-edit", site, () => window.dispatchEvent(new HashChangeEvent("hashchange"))));
    // Two clicks to delete: no modal dialog.
    const del = el("button", { type: "button", id: "site-delete", text: "Delete site" });
    const delBox = el("pre", { class: "answer", id: "site-delete-answer", text: "" });
    del.addEventListener("click", async () => {
      if (!del.dataset.armed) { del.dataset.armed = "yes"; del.textContent = "Really delete this site?"; return; }
      try {
        await api(`/sites/${enc(siteId)}`, { method: "DELETE" });
        location.hash = "#/sites";
      } catch (error) {
        showProblem(delBox, error);
      }
    });
    edit.append(del, delBox);
  } else {
    root.append(el("p", { class: "muted", text: "Sign in with an admin token to edit the site or set an envelope." }));
  }
}
