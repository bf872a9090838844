// The operator API client: JSON in and out, one error shape, the session's CSRF token on
// every state-changing request.

export class ApiError extends Error {
  constructor(
    public status: number,
    public code: string,
    message: string,
  ) {
    super(message);
  }
}

let csrfToken: string | null = sessionStorage.getItem("vigil.csrf");
let onUnauthorized: (() => void) | null = null;

/** Called when the API answers 401, so the app can show the login page. */
export function setUnauthorizedHandler(handler: () => void) {
  onUnauthorized = handler;
}

export function setCsrfToken(token: string | null) {
  csrfToken = token;
  if (token) sessionStorage.setItem("vigil.csrf", token);
  else sessionStorage.removeItem("vigil.csrf");
}

async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  const res = await fetch(`/api/v1${path}`, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  let data: unknown = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    const err = (data as { error?: { code?: string; message?: string } } | null)?.error;
    if (res.status === 401 && onUnauthorized) onUnauthorized();
    throw new ApiError(res.status, err?.code ?? "error", err?.message ?? `${res.status} ${res.statusText}`);
  }
  return data as T;
}

export const api = {
  get: <T>(path: string) => request<T>("GET", path),
  post: <T>(path: string, body?: unknown) => request<T>("POST", path, body ?? {}),
  put: <T>(path: string, body?: unknown) => request<T>("PUT", path, body ?? {}),
  patch: <T>(path: string, body?: unknown) => request<T>("PATCH", path, body ?? {}),
  del: <T>(path: string) => request<T>("DELETE", path),
};

/** Builds a query string from the set values. */
export function query(params: Record<string, string | number | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

// ---- shapes of the API's answers (only what the console reads) ----

export interface Capability {
  name: string;
  source: string;
  live: boolean;
  detail?: string;
}

export interface Heartbeat {
  time: number;
  agent_version: string;
  uptime_s: number;
  buffered: number;
  dropped: number;
  evicted: number;
  cpu_percent: number;
  rss_bytes: number;
  isolation: string;
}

export interface Endpoint {
  sensor_id: string;
  uid: string;
  hostname: string;
  os_name: string;
  kernel_release: string;
  agent_version: string;
  capabilities: Capability[];
  heartbeat: Heartbeat | null;
  controls: { revoked_at: number | null; isolation_requested: boolean; tags: string[] };
  transport: string;
  first_seen: number;
  last_seen: number;
  status: "online" | "stale" | "offline";
  session_live: boolean;
  isolation: string;
  isolation_status: string;
}

export interface Risk {
  score: number;
  high_water: number;
  high_water_at: number;
}

export interface Attack {
  technique?: { uid: string; name: string };
  tactic?: { uid: string; name: string };
  tactics?: { uid: string; name: string }[];
}

export interface Workflow {
  status: "new" | "acknowledged" | "closed";
  verdict: string | null;
  assignee: string | null;
  updated_at: number | null;
}

export interface Finding {
  time: number;
  severity_id: number;
  severity: string;
  sensor_id?: string;
  device?: { hostname: string; uid?: string };
  count?: number;
  start_time?: number;
  end_time?: number;
  finding_info: {
    uid: string;
    title: string;
    desc?: string;
    analytic: { uid: string; name: string; category: string };
    attacks?: Attack[];
    related_events?: { uid: string }[];
    related_events_count?: number;
    types?: string[];
  };
  evidences?: {
    process?: OcsfProcess;
    actor?: { process?: OcsfProcess };
    src_endpoint?: { ip?: string; port?: number };
    dst_endpoint?: { ip?: string; port?: number };
    data?: unknown;
  }[];
  unmapped?: { response?: { action: string; succeeded: boolean; detail: unknown; time: number }[] };
  workflow?: Workflow;
}

export interface Alert {
  finding: Finding;
  sensor_id: string;
  workflow: Workflow;
  comments: { time: number; author: string; text: string }[];
}

export interface OcsfProcess {
  pid?: number;
  uid?: string;
  name?: string;
  cmd_line?: string;
  created_time?: number;
  file?: { path?: string; name?: string };
  user?: { name?: string; uid?: string };
  parent_process?: OcsfProcess;
  ancestry?: OcsfProcess[];
}

export interface OcsfEvent {
  class_uid: number;
  activity_id?: number;
  activity_name?: string;
  time: number;
  metadata: { uid: string };
  device?: { hostname?: string; uid?: string };
  process?: OcsfProcess;
  actor?: { process?: OcsfProcess };
  src_endpoint?: { ip?: string; port?: number };
  dst_endpoint?: { ip?: string; port?: number };
  file?: { path?: string };
  [key: string]: unknown;
}

export interface Command {
  id: string;
  action: string;
  args: Record<string, unknown>;
  state: string;
  requested_by: string;
  reason: string;
  created_at: number;
  delivered_at: number | null;
  completed_at: number | null;
  result: unknown;
  backend: string;
}

export interface RuleView {
  id: string | null;
  title: string | null;
  status: "loaded" | "not_applicable" | "unsupported" | "malformed";
  reason?: string;
  kind: string;
  logsource: string;
  level?: string;
  tags: string[];
  attacks: Attack[];
  description?: string;
  path: string;
  enabled: boolean;
  policies: { policy_id: string; policy: string; response: string; enabled: boolean }[];
}

export interface Policy {
  id: string;
  name: string;
  description: string;
  rules: { rule_id?: string; sigma?: string; response: string }[];
  endpoints: string[];
  tags: string[];
  enabled: boolean;
  revision: number;
  updated_at: number;
}

export interface Items<T> {
  items: T[];
}

export type Role = "viewer" | "analyst" | "admin";
export const ROLES: Role[] = ["viewer", "analyst", "admin"];

/** Who is logged in (`GET /auth/me`). */
export interface Me {
  user: string;
  role: Role;
}

export interface User {
  name: string;
  role: Role;
  created_at: number;
  updated_at: number;
}

export interface ApiToken {
  id: string;
  name: string;
  user: string;
  role: Role;
  created_at: number;
  last_used_at: number | null;
}

/** One process of `GET /alerts/{uid}/tree`, with what it did on the network and to files. */
export interface TreeProcess {
  pid?: number | null;
  uid?: string | null;
  name?: string | null;
  path?: string | null;
  cmd_line?: string | null;
  user?: string | null;
  time?: number | null;
  focus?: boolean;
  network?: {
    time: number;
    activity?: string | null;
    src?: { ip?: string; port?: number } | null;
    dst?: { ip?: string; port?: number } | null;
  }[];
  files?: { time: number; activity?: string | null; path?: string | null }[];
  children?: TreeProcess[];
}

/** `GET /alerts/{uid}/tree`: ancestors nearest first, the alert's process, its siblings. */
export interface AlertTree {
  alert: string;
  sensor_id: string;
  window: { since: number; until: number };
  ancestors: {
    pid?: number | null;
    uid?: string | null;
    name?: string | null;
    cmd_line?: string | null;
    path?: string | null;
    created_time?: number | null;
  }[];
  process: TreeProcess;
  siblings: TreeProcess[];
}
