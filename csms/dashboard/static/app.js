// The dashboard: sign-in, hash routes, and the views (plain ES modules, no build step).
import { api, onLive, setToken, startLive, stopLive, token } from "./api.js";
import { overviewView } from "./view_overview.js";
import { stationsView } from "./view_stations.js";
import { stationView } from "./view_station.js";
import { siteView, sitesView } from "./view_sites.js";
import { v2gView, whatIfView } from "./view_v2g.js";

const main = document.getElementById("view");
const signIn = document.getElementById("sign-in");
export const session = { scope: null, name: null };
let cleanup = [];

export function canOperate() { return session.scope === "operate" || session.scope === "admin"; }
// Live listeners and timers registered through these end when the view changes.
export function live(fn) { cleanup.push(onLive(fn)); }
export function every(ms, fn) { const id = setInterval(fn, ms); cleanup.push(() => clearInterval(id)); }

const ROUTES = {
  overview: overviewView,
  stations: stationsView,
  station: stationView,
  sites: sitesView,
  site: siteView,
  v2g: v2gView,
  "what-if": whatIfView,
};

async function route() {
  cleanup.forEach((fn) => fn());
  cleanup = [];
  if (!token()) return showSignIn();
  const [name, ...rest] = location.hash.replace(/^#\/?/, "").split("/");
  const view = ROUTES[name] || overviewView;
  document.querySelectorAll("#nav a").forEach((a) => a.classList.toggle("active", a.dataset.view === (ROUTES[name] ? name : "overview")));
  const container = document.createElement("section");
  container.id = `view-${ROUTES[name] ? name : "overview"}`;
  main.replaceChildren(container);
  try {
    await view(container, ...rest.map(decodeURIComponent));
  } catch (error) {
    if (error.status === 401) { setToken(null); return showSignIn("The token was refused (revoked or expired)."); }
    container.append(Object.assign(document.createElement("p"), { className: "error", textContent: `${error.message}` }));
  }
  container.dataset.ready = "true";
}

function showSignIn(message = "") {
  stopLive();
  document.getElementById("nav").hidden = true;
  document.getElementById("sign-out").hidden = true;
  document.getElementById("who").textContent = "";
  document.getElementById("sign-in-error").textContent = message;
  main.replaceChildren(signIn);
  signIn.hidden = false;
}

async function signedIn() {
  const me = await api("/dashboard/session");
  Object.assign(session, me);
  document.getElementById("who").textContent = `${me.name} (${me.scope})`;
  document.getElementById("nav").hidden = false;
  document.getElementById("sign-out").hidden = false;
  startLive(document.getElementById("live-state"));
}

signIn.addEventListener("submit", async (event) => {
  event.preventDefault();
  setToken(document.getElementById("token").value.trim());
  try {
    await signedIn();
    signIn.hidden = true;
    if (!location.hash || location.hash === "#/") location.hash = "#/overview";
    else route();
  } catch (error) {
    setToken(null);
    showSignIn(error.status === 401 ? "This token is not valid." : error.message);
  }
});
// Signing out reloads the page: no view, timer or live stream of the old session survives.
document.getElementById("sign-out").addEventListener("click", () => { setToken(null); location.replace("/"); });
window.addEventListener("hashchange", route);

(async () => {
  if (token()) {
    try { await signedIn(); } catch { setToken(null); }
  }
  route();
})();
