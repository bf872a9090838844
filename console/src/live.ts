// The live feed: new alerts, endpoint and command state changes pushed by the server over a
// WebSocket (`/api/v1/live`). Where the server has no live feed, or the connection drops, the
// console polls instead so nothing needs a reload.

export type LiveKind = "alert" | "endpoint" | "command" | "tick";
export interface LiveMessage {
  type: LiveKind | string;
  data?: unknown;
}

type Listener = (m: LiveMessage) => void;
const listeners = new Set<Listener>();
let pollTimer: number | null = null;
let retry = 0;
let state: "connecting" | "live" | "polling" = "connecting";
const stateListeners = new Set<(s: typeof state) => void>();

function setState(s: typeof state) {
  state = s;
  stateListeners.forEach((l) => l(s));
}

export function liveState() {
  return state;
}

export function onLiveState(l: (s: typeof state) => void): () => void {
  stateListeners.add(l);
  return () => stateListeners.delete(l);
}

function emit(m: LiveMessage) {
  listeners.forEach((l) => l(m));
}

function startPolling() {
  if (pollTimer !== null) return;
  setState("polling");
  // Without a push channel every view refreshes on a short tick.
  pollTimer = window.setInterval(() => emit({ type: "alert" }), 5000);
}

function stopPolling() {
  if (pollTimer !== null) {
    window.clearInterval(pollTimer);
    pollTimer = null;
  }
}

function connect() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  let ws: WebSocket;
  try {
    ws = new WebSocket(`${proto}//${location.host}/api/v1/live`);
  } catch {
    startPolling();
    return;
  }
  ws.onopen = () => {
    retry = 0;
    stopPolling();
    setState("live");
  };
  ws.onmessage = (ev) => {
    try {
      emit(JSON.parse(String(ev.data)) as LiveMessage);
    } catch {
      /* not ours */
    }
  };
  ws.onclose = () => {
    startPolling();
    retry = Math.min(retry + 1, 6);
    window.setTimeout(connect, 1000 * 2 ** retry);
  };
  ws.onerror = () => ws.close();
}

let started = false;

/** Connects once: over the WebSocket when the server offers the live feed, else by polling. */
function start() {
  if (started) return;
  started = true;
  fetch("/api/v1/health", { credentials: "same-origin" })
    .then((r) => r.json() as Promise<{ features?: string[] }>)
    .then((h) => (h.features?.includes("live") ? connect() : startPolling()))
    .catch(() => startPolling());
}

export function subscribe(l: Listener): () => void {
  listeners.add(l);
  start();
  return () => listeners.delete(l);
}
