import { api } from "./api.js";
import { canOperate, live } from "./app.js";
import { lineChart, liveChart, periodsToSteps } from "./charts.js";
import { el, field, fmt, powerCell, schemaForm, time } from "./forms.js";

const enc = encodeURIComponent;

function table(headers, rows, attrs = {}) {
  return el("table", attrs, el("thead", {}, el("tr", {}, headers.map((h) => el("th", { text: h })))), el("tbody", {}, rows));
}

function answerBox(id) { return el("pre", { class: "answer", id, text: "" }); }

// Sends a command and shows the station's answer (or the problem) in `box`.
async function send(box, path, body, method = "POST") {
  box.textContent = "sending...";
  try {
    const answer = await api(path, { method, body });
    box.textContent = JSON.stringify(answer, null, 2);
    box.classList.remove("error");
    return answer;
  } catch (error) {
    box.textContent = `${error.status || ""} ${error.message}\n${error.problem ? JSON.stringify(error.problem, null, 2) : ""}`;
    box.classList.add("error");
    return null;
  }
}

function cmdForm(id, title, inputs, onSubmit) {
  const form = el("form", { class: "cmd", id }, el("strong", { text: title }), inputs, el("button", { type: "submit", text: "Send" }));
  form.addEventListener("submit", (e) => { e.preventDefault(); onSubmit(); });
  return form;
}

async function meterHistory(sid, tx) {
  const path = `/stations/${enc(sid)}/transactions/${enc(tx)}/meter-values`;
  const first = await api(path, { query: { limit: 1 } });
  return (await api(path, { query: { limit: 1000, offset: Math.max(0, first.total - 1000) } })).items;
}

function seriesFrom(samples) {
  // One point per timestamp: power (+ import - export, kW), SoC %, energy import/export kWh.
  const at = new Map();
  for (const m of samples) {
    if (m.phase) continue;
    const t = Date.parse(m.timestamp) / 1000;
    const p = at.get(t) || {};
    const k = m.unit === "kW" || m.unit === "kWh" ? 1 : 1 / 1000;
    if (m.measurand === "Power.Active.Import") p.imp = m.value * k;
    else if (m.measurand === "Power.Active.Export") p.exp = m.value * k;
    else if (m.measurand === "SoC") p.soc = m.value;
    else if (m.measurand === "Energy.Active.Import.Register") p.ei = m.value * k;
    else if (m.measurand === "Energy.Active.Export.Register") p.ee = m.value * k;
    at.set(t, p);
  }
  const xs = [...at.keys()].sort((a, b) => a - b);
  const get = (f) => xs.map((x) => { const v = f(at.get(x)); return v === undefined ? null : v; });
  return [xs, get((p) => (p.imp === undefined && p.exp === undefined ? undefined : (p.imp || 0) - (p.exp || 0))), get((p) => p.soc), get((p) => p.ei), get((p) => p.ee)];
}

export async function stationView(root, sid) {
  const station = await api(`/stations/${enc(sid)}`);
  const status = el("span", { id: "station-connected", text: station.connected ? "connected" : "offline" });
  root.append(el("h2", {}, `Station ${station.id} `, el("span", { class: `dot ${station.connected ? "on" : ""}` }), status),
    el("p", { class: "muted", text: `${station.vendor_name || "?"} ${station.model || ""} fw ${station.firmware_version || "?"} | OCPP ${station.ocpp_version || station.ocppVersion || "-"} | boot ${station.registration_status} ${time(station.last_boot_at)} | heartbeat ${time(station.last_heartbeat_at)}` }));

  const grid = el("div", { class: "grid2" });
  root.append(grid);
  const card = (title, id) => { const c = el("div", { class: "card", id }, el("h2", { text: title })); grid.append(c); return c; };

  // EVSEs and connectors
  const evses = await api(`/stations/${enc(sid)}/evses`);
  const evseCard = card("EVSEs and connectors", "station-evses");
  const connCells = new Map();
  evseCard.append(table(["EVSE", "Connector", "Status", "Since"], evses.flatMap((e) => e.connectors.map((c) => {
    const cell = el("td", { text: c.status });
    connCells.set(`${e.evse_id}/${c.connector_id}`, cell);
    return el("tr", {}, el("td", { text: e.evse_id }), el("td", { text: c.connector_id }), cell, el("td", { text: time(c.updated_at) }));
  }))));

  // Running transaction with live charts
  const txCard = card("Running transaction", "station-transaction");
  const active = (await api(`/stations/${enc(sid)}/transactions`, { query: { state: "Active", limit: 1 } })).items[0];
  const txInfo = el("p", { id: "tx-info" });
  const livePower = el("div", { class: "value", id: "tx-power" }, powerCell(null));
  const liveSoc = el("span", { id: "tx-soc", text: "-" });
  txCard.append(txInfo, el("div", { class: "toolbar" }, "Power ", livePower, " SoC ", liveSoc));
  const chartsBox = el("div");
  txCard.append(chartsBox);
  const powerChart = liveChart(chartsBox.appendChild(el("div", { id: "chart-power" })), { title: "Power (kW, + charge / - discharge)", height: 180, series: [{ label: "power", unit: "kW" }] }, 2000);
  const socChart = liveChart(chartsBox.appendChild(el("div", { id: "chart-soc" })), { title: "SoC (%)", height: 160, scales: { y: { range: [0, 100] } }, series: [{ label: "SoC", unit: "%", color: "#2ca02c" }] }, 2000);
  const energyChart = liveChart(chartsBox.appendChild(el("div", { id: "chart-energy" })), { title: "Energy registers (kWh)", height: 160, series: [{ label: "import", unit: "kWh" }, { label: "export", color: "#d62728" }] }, 2000);
  let txId = active?.transaction_id || null;
  let stopTx = null; // the stop form's transaction field, kept current
  if (active) {
    txInfo.textContent = `${active.transaction_id} on EVSE ${active.evse_id ?? "?"}, ${active.charging_state || ""}, started ${time(active.started_at)}, energy ${fmt((active.energy_wh || 0) / 1000, 2)} kWh, cost ${fmt(active.total_cost, 2)}`;
    const [xs, power, soc, ei, ee] = seriesFrom(await meterHistory(sid, active.transaction_id));
    powerChart.load(xs, [power]);
    socChart.load(xs, [soc]);
    energyChart.load(xs, [ei, ee]);
    const lastPower = power.filter((v) => v != null).at(-1);
    if (lastPower != null) livePower.replaceChildren(powerCell(lastPower * 1000));
    const lastSoc = soc.filter((v) => v != null).at(-1);
    if (lastSoc != null) liveSoc.textContent = `${fmt(lastSoc, 1)} %`;
  } else {
    txInfo.textContent = "No transaction running.";
  }
  live((e) => {
    if (e.station !== sid) return;
    if (e.type === "meter") {
      livePower.replaceChildren(powerCell(e.power_w));
      if (e.soc != null) liveSoc.textContent = `${fmt(e.soc, 1)} %`;
      powerChart.push(e.t, [e.power_w / 1000]);
      socChart.push(e.t, [e.soc]);
      energyChart.push(e.t, [e.energy_import_wh == null ? null : e.energy_import_wh / 1000, e.energy_export_wh == null ? null : e.energy_export_wh / 1000]);
    } else if (e.type === "transaction") {
      txId = e.state === "Ended" ? null : e.transaction_id;
      txInfo.textContent = `${e.transaction_id} ${e.state} ${e.charging_state || ""}, energy ${fmt((e.energy_wh || 0) / 1000, 2)} kWh, cost ${fmt(e.total_cost, 2)}`;
      if (stopTx) stopTx.value = txId || "";
    } else if (e.type === "connector") {
      const cell = connCells.get(`${e.evse}/${e.connector}`);
      if (cell) cell.textContent = e.status;
    } else if (e.type === "connection") {
      status.textContent = e.connected ? "connected" : "offline";
    }
  });

  // Charging profiles and the composite schedule
  const profCard = card("Charging profiles and composite schedule", "station-profiles");
  const profiles = await api(`/stations/${enc(sid)}/charging-profiles`);
  profCard.append(table(["EVSE", "Id", "Purpose", "Stack", "Kind", "Source", "Updated"], profiles.map((p) =>
    el("tr", {}, el("td", { text: p.evse_id }), el("td", { text: p.profile_id }), el("td", { text: p.purpose }), el("td", { text: p.stack_level }), el("td", { text: p.kind }), el("td", { text: p.source }), el("td", { text: time(p.updated_at) })))));
  if (profiles.length) {
    const box = profCard.appendChild(el("div", { id: "chart-profiles" }));
    const now = Date.now() / 1000;
    const series = [], columns = new Map();
    for (const p of profiles) {
      const schedule = (p.profile.chargingSchedule || [])[0];
      if (!schedule) continue;
      const start = schedule.startSchedule ? Date.parse(schedule.startSchedule) / 1000 : now;
      const [xs, ys] = periodsToSteps(start, schedule.chargingSchedulePeriod || [], schedule.duration);
      series.push({ label: `#${p.profile_id} ${p.purpose} (${schedule.chargingRateUnit})`, stepped: true });
      columns.set(series.length - 1, new Map(xs.map((x, i) => [x, ys[i]])));
    }
    const allX = [...new Set([...columns.values()].flatMap((m) => [...m.keys()]))].sort((a, b) => a - b);
    if (allX.length) lineChart(box, { title: "Profiles (limit per period)", height: 180, series, data: [allX, ...series.map((_, i) => allX.map((x) => columns.get(i).get(x) ?? null))] });
  }
  const compBox = el("div", { id: "chart-composite" });
  const compAnswer = answerBox("composite-answer");
  const compEvse = el("input", { type: "number", value: "1", min: "0", name: "evseId" });
  const compDuration = el("input", { type: "number", value: "86400", min: "1", name: "duration" });
  if (canOperate()) {
    profCard.append(cmdForm("form-composite", "Composite schedule (GetCompositeSchedule)", [field("evseId", compEvse), field("duration s", compDuration)], async () => {
      const answer = await send(compAnswer, `/stations/${enc(sid)}/ocpp/GetCompositeSchedule`, { evseId: Number(compEvse.value), duration: Number(compDuration.value) });
      const s = answer?.schedule;
      if (s) {
        const [xs, ys] = periodsToSteps(Date.parse(s.scheduleStart) / 1000, s.chargingSchedulePeriod, s.duration);
        compBox.replaceChildren();
        lineChart(compBox, { title: `Composite schedule EVSE ${s.evseId} (${s.chargingRateUnit})`, height: 180, series: [{ label: "limit", stepped: true, unit: s.chargingRateUnit }], data: [xs, ys] });
      }
    }), compBox, compAnswer);
  }

  // Commands
  const cmdCard = card("Commands", "station-commands");
  if (!canOperate()) {
    cmdCard.append(el("p", { class: "muted", text: "Sign in with an operate token to send commands." }));
  } else {
    const box = answerBox("command-answer");
    const idToken = el("input", { name: "idToken", value: "E2E-DRIVER" });
    const startEvse = el("input", { name: "evseId", type: "number", value: "1", min: "1" });
    stopTx = el("input", { name: "transactionId", value: txId || "" });
    const resetType = el("select", { name: "type" }, ["OnIdle", "Immediate"].map((v) => el("option", { value: v, text: v })));
    const availEvse = el("input", { name: "evseId", type: "number", value: "1", min: "0" });
    const availStatus = el("select", { name: "operationalStatus" }, ["Operative", "Inoperative"].map((v) => el("option", { value: v, text: v })));
    const unlockEvse = el("input", { name: "evseId", type: "number", value: "1", min: "1" });
    const unlockConn = el("input", { name: "connectorId", type: "number", value: "1", min: "1" });
    const profEvse = el("input", { name: "evseId", type: "number", value: "1", min: "0" });
    const profJson = el("textarea", { name: "chargingProfile", rows: 6 });
    profJson.value = JSON.stringify({ id: 900, stackLevel: 1, chargingProfilePurpose: "TxDefaultProfile", chargingProfileKind: "Absolute", chargingSchedule: [{ id: 1, startSchedule: new Date().toISOString(), chargingRateUnit: "W", chargingSchedulePeriod: [{ startPeriod: 0, limit: 5000 }] }] }, null, 1);
    const clearId = el("input", { name: "chargingProfileId", type: "number", value: "900", min: "0" });
    const triggerSchema = await api("/dashboard/actions/TriggerMessage/schema");
    const triggerWhat = el("select", { name: "requestedMessage" }, triggerSchema.definitions.MessageTriggerEnumType.enum.map((v) => el("option", { value: v, text: v })));
    cmdCard.append(
      cmdForm("form-start", "Start", [field("idToken", idToken), field("evseId", startEvse)], () => send(box, `/stations/${enc(sid)}/commands/request-start`, { id_token: idToken.value, evse_id: Number(startEvse.value) })),
      cmdForm("form-stop", "Stop", [field("transactionId", stopTx)], () => send(box, `/stations/${enc(sid)}/commands/request-stop`, { transaction_id: stopTx.value })),
      cmdForm("form-reset", "Reset", [field("type", resetType)], () => send(box, `/stations/${enc(sid)}/commands/reset`, { type: resetType.value })),
      cmdForm("form-availability", "Availability", [field("evseId (0 = station)", availEvse), field("status", availStatus)], () => {
        const evse = Number(availEvse.value);
        send(box, `/stations/${enc(sid)}/ocpp/ChangeAvailability`, evse ? { operationalStatus: availStatus.value, evse: { id: evse } } : { operationalStatus: availStatus.value });
      }),
      cmdForm("form-unlock", "Unlock", [field("evseId", unlockEvse), field("connectorId", unlockConn)], () => send(box, `/stations/${enc(sid)}/ocpp/UnlockConnector`, { evseId: Number(unlockEvse.value), connectorId: Number(unlockConn.value) })),
      cmdForm("form-set-profile", "Set profile", [field("evseId", profEvse), field("chargingProfile (OCPP JSON)", profJson)], () => send(box, `/stations/${enc(sid)}/charging-profiles`, { evse_id: Number(profEvse.value), charging_profile: JSON.parse(profJson.value) })),
      cmdForm("form-clear-profile", "Clear profile", [field("chargingProfileId", clearId)], () => send(box, `/stations/${enc(sid)}/charging-profiles/${Number(clearId.value)}`, undefined, "DELETE")),
      cmdForm("form-trigger", "Trigger message", [field("requestedMessage", triggerWhat)], () => send(box, `/stations/${enc(sid)}/ocpp/TriggerMessage`, { requestedMessage: triggerWhat.value })),
      el("h2", { text: "Station answer" }), box);

    // Generic: any CSMS-initiated action, its form built from the OCA schema.
    const genCard = card("Any OCPP action (form from its OCA schema)", "station-generic");
    const actions = await api("/dashboard/actions");
    const pick = el("select", { id: "generic-action" }, actions.map((a) => el("option", { value: a, text: a })));
    const fields = el("div", { class: "cmd" });
    const genBox = answerBox("generic-answer");
    let form = null;
    async function build() {
      form = schemaForm(await api(`/dashboard/actions/${enc(pick.value)}/schema`));
      fields.replaceChildren(...form.rows);
    }
    pick.addEventListener("change", build);
    const submit = el("button", { type: "button", id: "generic-send", text: "Send" });
    submit.addEventListener("click", () => {
      let payload;
      try { payload = form.read(); } catch (error) { genBox.textContent = `not JSON: ${error.message}`; return; }
      send(genBox, `/stations/${enc(sid)}/ocpp/${enc(pick.value)}`, payload);
    });
    genCard.append(field("action", pick), fields, submit, genBox);
    pick.value = "GetVariables";
    await build();
  }

  // Message log, events, device model
  const logCard = card("Message log (latest 50)", "station-messages");
  const messages = await api(`/stations/${enc(sid)}/messages`, { query: { limit: 50 } });
  logCard.append(el("div", { class: "scroll" }, table(["Time", "Dir", "Kind", "Action", "Payload"], messages.items.map((m) =>
    el("tr", {}, el("td", { text: new Date(m.created_at).toLocaleTimeString() }), el("td", { text: m.direction }), el("td", { text: m.kind }), el("td", { text: m.action || "" }), el("td", {}, el("pre", { class: "small", text: JSON.stringify(m.payload) })))))));
  const evCard = card("Events (latest 50)", "station-events");
  const events = await api(`/stations/${enc(sid)}/events`, { query: { limit: 50 } });
  evCard.append(el("div", { class: "scroll" }, table(["Received", "Kind", "Payload"], events.items.map((e) =>
    el("tr", {}, el("td", { text: time(e.received_at) }), el("td", { text: e.kind }), el("td", {}, el("pre", { class: "small", text: JSON.stringify(e.payload) })))))));
  const dmCard = card("Device-model variables", "station-variables");
  const dmFilter = el("input", { type: "search", placeholder: "component (exact)", id: "dm-component" });
  const dmBody = el("div", { class: "scroll" });
  async function loadVariables() {
    const page = await api(`/stations/${enc(sid)}/variables`, { query: { limit: 500, component: dmFilter.value.trim() } });
    dmBody.replaceChildren(el("p", { class: "muted", text: `${page.items.length} of ${page.total}` }), table(["Component", "Variable", "Type", "Value", "Mutability"], page.items.map((v) =>
      el("tr", {}, el("td", { text: `${v.component}${v.component_instance ? `(${v.component_instance})` : ""}${v.evse_id != null ? ` evse ${v.evse_id}` : ""}` }), el("td", { text: `${v.variable}${v.variable_instance ? `(${v.variable_instance})` : ""}` }), el("td", { text: v.attribute_type }), el("td", { text: v.value ?? "" }), el("td", { text: v.mutability || "" })))));
  }
  dmFilter.addEventListener("change", loadVariables);
  dmCard.append(dmFilter, dmBody);
  await loadVariables();
}
