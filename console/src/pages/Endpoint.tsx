import { useState } from "react";

import { ApiError, api, query } from "../api";
import type { Command, Endpoint, Finding, Heartbeat, Items, OcsfEvent, Risk } from "../api";
import { Badge, Confirm, ErrorNote, Severity, fmtAgo, fmtBytes, fmtTime, useLoad } from "../util";
import { LiveQuery } from "../components/LiveQuery";
import { describeEvent } from "./Events";

type Row = Endpoint & { risk?: Risk };

const ACTIONS: { action: string; label: string; needs?: "pid" | "path" | "user" }[] = [
  { action: "kill", label: "Kill process", needs: "pid" },
  { action: "suspend", label: "Suspend process", needs: "pid" },
  { action: "resume", label: "Resume process", needs: "pid" },
  { action: "quarantine", label: "Quarantine file", needs: "path" },
  { action: "logoff", label: "Log off user", needs: "user" },
];

export function EndpointPage({ id }: { id: string }) {
  const ep = useLoad(() => api.get<Row>(`/endpoints/${encodeURIComponent(id)}`), [id], ["endpoint", "command"]);
  const commands = useLoad(
    () => api.get<Items<Command>>(`/endpoints/${encodeURIComponent(id)}/commands`),
    [id],
    ["command"],
  );
  const heartbeats = useLoad(
    () => api.get<Items<Heartbeat>>(`/endpoints/${encodeURIComponent(id)}/heartbeats${query({ limit: 20 })}`),
    [id],
    ["endpoint"],
  );
  const alerts = useLoad(
    () => api.get<Items<Finding>>(`/alerts${query({ sensor_id: id, limit: 50 })}`),
    [id],
    ["alert"],
  );
  const events = useLoad(
    () => api.get<Items<OcsfEvent>>(`/events${query({ sensor_id: id, limit: 100 })}`),
    [id],
    ["alert"],
  );
  const triage = useLoad(
    () =>
      api.get<
        Items<{
          id: string;
          time: number;
          size: number;
          summary: { phases?: Record<string, { items: number; truncated: boolean; error: string | null }> };
        }>
      >(`/endpoints/${encodeURIComponent(id)}/triage`),
    [id],
    ["command"],
  );
  const [confirm, setConfirm] = useState<{ action: string; args: Record<string, unknown> } | null>(null);
  const [actionError, setActionError] = useState<string | null>(null);
  const [form, setForm] = useState({ action: "kill", value: "", reason: "" });

  const e = ep.data;
  if (!e) {
    return (
      <section>
        <h1>Endpoint</h1>
        <ErrorNote error={ep.error} />
        {!ep.error && <p className="muted">Loading…</p>}
      </section>
    );
  }
  const send = (action: string, args: Record<string, unknown>, reason: string) => {
    setActionError(null);
    api
      .post<Command>(`/endpoints/${encodeURIComponent(id)}/commands`, { action, args, reason })
      .then(() => {
        commands.reload();
        ep.reload();
      })
      .catch((err: unknown) => setActionError(err instanceof ApiError ? err.message : String(err)));
  };
  const isolated = e.isolation_status === "isolated" || e.isolation_status === "requested";
  const selected = ACTIONS.find((a) => a.action === form.action);
  const formArgs = (): Record<string, unknown> | null => {
    const v = form.value.trim();
    if (!selected?.needs) return {};
    if (!v) return null;
    if (selected.needs === "pid") return Number.isInteger(Number(v)) ? { pid: Number(v), tree: form.action === "kill" } : null;
    return selected.needs === "path" ? { path: v } : { user: v };
  };

  return (
    <section aria-labelledby="ep-title">
      <div className="page-head">
        <h1 id="ep-title">{e.hostname || e.sensor_id}</h1>
        <Badge kind={e.status}>{e.status}</Badge>
        <Badge kind={`iso-${e.isolation_status}`}>isolation: {e.isolation_status.replace("_", " ")}</Badge>
      </div>
      <div className="cards">
        <div className="card">
          <h2>Endpoint</h2>
          <dl>
            <dt>Id</dt>
            <dd className="mono">{e.uid}</dd>
            <dt>OS</dt>
            <dd>
              {e.os_name} {e.kernel_release}
            </dd>
            <dt>Agent</dt>
            <dd>
              {e.agent_version || "—"} ({e.transport})
            </dd>
            <dt>Last seen</dt>
            <dd>{fmtAgo(e.last_seen)}</dd>
            <dt>First seen</dt>
            <dd>{fmtTime(e.first_seen)}</dd>
            <dt>Tags</dt>
            <dd>{e.controls.tags.join(", ") || "—"}</dd>
          </dl>
        </div>
        <div className="card">
          <h2>Risk</h2>
          <p className="big">{(e.risk?.score ?? 0).toFixed(1)}</p>
          <p className="muted">
            peak {(e.risk?.high_water ?? 0).toFixed(1)} at {fmtTime(e.risk?.high_water_at)}
          </p>
          <RiskHistory id={id} />
        </div>
        <div className="card">
          <h2>Health</h2>
          <dl>
            <dt>Buffered</dt>
            <dd>{e.heartbeat?.buffered ?? "—"}</dd>
            <dt>Dropped</dt>
            <dd>{e.heartbeat?.dropped ?? "—"}</dd>
            <dt>Evicted</dt>
            <dd>{e.heartbeat?.evicted ?? "—"}</dd>
            <dt>Agent CPU</dt>
            <dd>{e.heartbeat ? `${e.heartbeat.cpu_percent.toFixed(1)} %` : "—"}</dd>
            <dt>Agent memory</dt>
            <dd>{fmtBytes(e.heartbeat?.rss_bytes)}</dd>
            <dt>Heartbeats</dt>
            <dd>{heartbeats.data?.items.length ?? 0} recent</dd>
          </dl>
          <div className="caps">
            {e.capabilities.map((c) => (
              <span key={c.name} className={`cap ${c.live ? "cap-on" : "cap-off"}`} title={c.detail ?? c.source}>
                {c.name}
              </span>
            ))}
          </div>
        </div>
        <div className="card">
          <h2>Response</h2>
          <p>
            {isolated ? (
              <button type="button" className="danger" onClick={() => setConfirm({ action: "release", args: {} })}>
                Release from isolation
              </button>
            ) : (
              <button type="button" className="danger" onClick={() => setConfirm({ action: "isolate", args: {} })}>
                Isolate host
              </button>
            )}
          </p>
          <form
            className="action-form"
            onSubmit={(ev) => {
              ev.preventDefault();
              const args = formArgs();
              if (args) setConfirm({ action: form.action, args });
              else setActionError(`${selected?.label}: give a ${selected?.needs}`);
            }}
          >
            <label>
              Action
              <select value={form.action} onChange={(ev) => setForm({ ...form, action: ev.target.value, value: "" })}>
                {ACTIONS.map((a) => (
                  <option key={a.action} value={a.action}>
                    {a.label}
                  </option>
                ))}
              </select>
            </label>
            <label>
              {selected?.needs ?? "target"}
              <input value={form.value} onChange={(ev) => setForm({ ...form, value: ev.target.value })} />
            </label>
            <label>
              Reason
              <input value={form.reason} onChange={(ev) => setForm({ ...form, reason: ev.target.value })} />
            </label>
            <button type="submit">Run…</button>
          </form>
          <ErrorNote error={actionError} />
        </div>
      </div>

      <h2>Commands</h2>
      <ErrorNote error={commands.error} />
      <div className="table-wrap">
        <table className="grid" aria-label="Commands">
          <thead>
            <tr>
              <th>Queued</th>
              <th>Action</th>
              <th>Arguments</th>
              <th>State</th>
              <th>By / why</th>
              <th>Result</th>
            </tr>
          </thead>
          <tbody>
            {(commands.data?.items ?? []).map((c) => (
              <tr key={c.id}>
                <td>{fmtTime(c.created_at)}</td>
                <td>{c.action}</td>
                <td className="mono small">{JSON.stringify(c.args)}</td>
                <td>
                  <Badge kind={`cmd-${c.state}`}>{c.state}</Badge>
                </td>
                <td>
                  {c.requested_by}
                  {c.reason && <div className="muted small">{c.reason}</div>}
                </td>
                <td className="mono small clip">{c.result ? JSON.stringify(c.result) : "—"}</td>
              </tr>
            ))}
            {commands.data?.items.length === 0 && (
              <tr>
                <td colSpan={6} className="muted">
                  No command yet.
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </div>

      <h2>Alerts</h2>
      <ul className="plain">
        {(alerts.data?.items ?? []).map((f) => (
          <li key={f.finding_info.uid}>
            <Severity id={f.severity_id} /> <a href={`#/alerts/${f.finding_info.uid}`}>{f.finding_info.title}</a>{" "}
            <span className="muted">{fmtTime(f.time)}</span>
          </li>
        ))}
        {alerts.data?.items.length === 0 && <li className="muted">No alert.</li>}
      </ul>

      <h2>Activity</h2>
      <div className="table-wrap">
        <table className="grid" aria-label="Activity timeline">
          <thead>
            <tr>
              <th>Time</th>
              <th>Event</th>
              <th>Detail</th>
            </tr>
          </thead>
          <tbody>
            {(events.data?.items ?? []).map((ev) => {
              const d = describeEvent(ev);
              return (
                <tr key={ev.metadata.uid}>
                  <td>{fmtTime(ev.time)}</td>
                  <td>{d.what}</td>
                  <td className="mono small clip">{d.detail}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>

      <h2>Triage packages</h2>
      <p>
        <button
          type="button"
          onClick={() => send("triage", {}, form.reason || "from the console")}
          disabled={!e.capabilities.some((c) => c.name === "triage" && c.live)}
        >
          Collect triage package
        </button>{" "}
        <span className="muted small">read-only: processes, connections, persistence, recent files</span>
      </p>
      <div className="table-wrap">
        <table className="grid" aria-label="Triage packages">
          <thead>
            <tr>
              <th>Collected</th>
              <th>Size</th>
              <th>Phases</th>
              <th>Download</th>
            </tr>
          </thead>
          <tbody>
            {(triage.data?.items ?? []).map((t) => (
              <tr key={t.id}>
                <td>{fmtTime(t.time)}</td>
                <td>{fmtBytes(t.size)}</td>
                <td className="small">
                  {Object.entries(t.summary.phases ?? {}).map(([name, ph]) => (
                    <span key={name} className={`cap ${ph.error ? "cap-off" : "cap-on"}`} title={ph.error ?? ""}>
                      {name.replace("_", " ")}: {ph.items}
                      {ph.truncated ? "+" : ""}
                    </span>
                  ))}
                </td>
                <td>
                  <a href={`/api/v1/endpoints/${encodeURIComponent(id)}/triage/${encodeURIComponent(t.id)}`} download>
                    JSON
                  </a>
                </td>
              </tr>
            ))}
            {triage.data?.items.length === 0 && (
              <tr>
                <td colSpan={4} className="muted">
                  No package yet.
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </div>

      <h2>Live query</h2>
      {e.capabilities.some((c) => c.name === "query" && c.live) ? (
        <LiveQuery endpoint={e.sensor_id} />
      ) : (
        <p className="muted">This endpoint&apos;s sensor does not answer live queries.</p>
      )}

      {confirm && (
        <Confirm
          title={`${confirm.action} on ${e.hostname}?`}
          confirmLabel={confirm.action}
          onCancel={() => setConfirm(null)}
          onConfirm={() => {
            send(confirm.action, confirm.args, form.reason || `from the console`);
            setConfirm(null);
          }}
        >
          <p>
            The command is queued and carried out by the endpoint&apos;s agent; its state shows under Commands as
            the agent reports it.
          </p>
          <pre className="mono small">{JSON.stringify(confirm.args)}</pre>
        </Confirm>
      )}
    </section>
  );
}

/** The risk score over the last week (from the server's risk history). */
function RiskHistory({ id }: { id: string }) {
  const { data } = useLoad(
    () => api.get<{ points: [number, number][] }>(`/endpoints/${encodeURIComponent(id)}/risk/history`),
    [id],
    ["alert"],
  );
  const pts = data?.points ?? [];
  if (pts.length < 2) return null;
  const t0 = pts[0][0];
  const t1 = pts[pts.length - 1][0];
  const path = pts
    .map(([t, v], i) => `${i ? "L" : "M"}${(((t - t0) / (t1 - t0)) * 200).toFixed(1)},${(40 - (v / 100) * 38).toFixed(1)}`)
    .join(" ");
  return (
    <figure className="risk-history">
      <svg className="spark" viewBox="0 0 200 40" preserveAspectRatio="none" role="img" aria-label="Risk over the last 7 days">
        <path d={path} className="risk-line" />
      </svg>
      <figcaption className="muted small">last 7 days (0–100)</figcaption>
    </figure>
  );
}
