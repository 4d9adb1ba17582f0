// The REST API client: every call carries the token from sessionStorage (never a URL).
const TOKEN_KEY = "csms.token";
export const API = "/api/v1";

export function token() { return sessionStorage.getItem(TOKEN_KEY); }
export function setToken(value) { value ? sessionStorage.setItem(TOKEN_KEY, value) : sessionStorage.removeItem(TOKEN_KEY); }

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

export async function api(path, { method = "GET", body, query } = {}) {
  const url = new URL(API + path, location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, v);
  }
  const headers = { Authorization: `Bearer ${token()}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

// Live updates: server-sent events read through fetch (so the token stays in a header).
// Every `batch` event is a list of small dicts; listeners get each one.
const listeners = new Set();
export function onLive(fn) { listeners.add(fn); return () => listeners.delete(fn); }

let liveRunning = false;
export async function startLive(stateElement) {
  if (liveRunning) return;
  liveRunning = true;
  while (liveRunning && token()) {
    try {
      const response = await fetch(API + "/dashboard/live", { headers: { Authorization: `Bearer ${token()}` } });
      if (!response.ok) throw new Error(`live: HTTP ${response.status}`);
      stateElement?.classList.add("on");
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          dispatch(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
    } catch (error) {
      console.warn(error);
    }
    stateElement?.classList.remove("on");
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
  liveRunning = false;
}
export function stopLive() { liveRunning = false; }

function dispatch(block) {
  let event = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("event: ")) event = line.slice(7);
    else if (line.startsWith("data: ")) data.push(line.slice(6));
  }
  if (event !== "batch" || !data.length) return;
  for (const item of JSON.parse(data.join("\n"))) for (const fn of listeners) fn(item);
}
