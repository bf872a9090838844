import { useMemo, useState } from "react";

import { api } from "../api";
import type { Endpoint, Items, Risk } from "../api";
import { Badge, ErrorNote, SortHeader, fmtAgo, useLoad } from "../util";

type Row = Endpoint & { risk?: Risk };
type Key = "hostname" | "status" | "risk" | "isolation" | "last_seen" | "os" | "agent" | "dropped";

const STATUS_ORDER = { online: 0, stale: 1, offline: 2 } as const;

function sortValue(e: Row, k: Key): string | number {
  switch (k) {
    case "hostname":
      return e.hostname.toLowerCase();
    case "status":
      return STATUS_ORDER[e.status] ?? 3;
    case "risk":
      return e.risk?.score ?? 0;
    case "isolation":
      return e.isolation_status;
    case "last_seen":
      return e.last_seen;
    case "os":
      return `${e.os_name} ${e.kernel_release}`;
    case "agent":
      return e.agent_version;
    case "dropped":
      return e.heartbeat?.dropped ?? 0;
  }
}

export function FleetPage() {
  const { data, error } = useLoad(() => api.get<Items<Row>>("/endpoints"), [], ["endpoint", "alert", "command"]);
  const [filter, setFilter] = useState("");
  const [status, setStatus] = useState("");
  const [sort, setSort] = useState<{ key: Key; desc: boolean }>({ key: "risk", desc: true });
  const rows = useMemo(() => {
    const f = filter.trim().toLowerCase();
    const list = (data?.items ?? []).filter(
      (e) =>
        (!status || e.status === status) &&
        (!f ||
          e.hostname.toLowerCase().includes(f) ||
          e.sensor_id.includes(f) ||
          e.controls.tags.some((t) => t.toLowerCase().includes(f))),
    );
    return list.sort((a, b) => {
      const x = sortValue(a, sort.key);
      const y = sortValue(b, sort.key);
      const c = x < y ? -1 : x > y ? 1 : 0;
      return sort.desc ? -c : c;
    });
  }, [data, filter, status, sort]);
  const counts = useMemo(() => {
    const c = { online: 0, stale: 0, offline: 0 };
    (data?.items ?? []).forEach((e) => c[e.status]++);
    return c;
  }, [data]);

  return (
    <section aria-labelledby="fleet-title">
      <div className="page-head">
        <h1 id="fleet-title">Fleet</h1>
        <div className="summary">
          <Badge kind="online">{counts.online} online</Badge> <Badge kind="stale">{counts.stale} stale</Badge>{" "}
          <Badge kind="offline">{counts.offline} offline</Badge>
        </div>
      </div>
      <div className="filters">
        <label>
          Filter
          <input
            type="search"
            placeholder="host name, id or tag"
            value={filter}
            onChange={(e) => setFilter(e.target.value)}
          />
        </label>
        <label>
          Status
          <select value={status} onChange={(e) => setStatus(e.target.value)}>
            <option value="">any</option>
            <option value="online">online</option>
            <option value="stale">stale</option>
            <option value="offline">offline</option>
          </select>
        </label>
      </div>
      <ErrorNote error={error} />
      <div className="table-wrap">
        <table className="grid" aria-label="Endpoints">
          <thead>
            <tr>
              <SortHeader label="Endpoint" k="hostname" sort={sort} setSort={setSort} />
              <SortHeader label="Status" k="status" sort={sort} setSort={setSort} />
              <SortHeader label="Risk (peak)" k="risk" sort={sort} setSort={setSort} />
              <SortHeader label="Isolation" k="isolation" sort={sort} setSort={setSort} />
              <SortHeader label="Last seen" k="last_seen" sort={sort} setSort={setSort} />
              <SortHeader label="OS" k="os" sort={sort} setSort={setSort} />
              <SortHeader label="Agent" k="agent" sort={sort} setSort={setSort} />
              <th>Live sources</th>
              <SortHeader label="Dropped" k="dropped" sort={sort} setSort={setSort} />
            </tr>
          </thead>
          <tbody>
            {rows.map((e) => (
              <tr key={e.sensor_id}>
                <td>
                  <a href={`#/endpoints/${encodeURIComponent(e.sensor_id)}`}>{e.hostname || e.sensor_id}</a>
                  <div className="muted small mono">{e.uid}</div>
                  {e.controls.tags.map((t) => (
                    <span key={t} className="tag">
                      {t}
                    </span>
                  ))}
                </td>
                <td>
                  <Badge kind={e.status}>{e.status}</Badge>
                  {e.controls.revoked_at && <Badge kind="offline">revoked</Badge>}
                </td>
                <td className="num">
                  {(e.risk?.score ?? 0).toFixed(1)} <span className="muted">({(e.risk?.high_water ?? 0).toFixed(1)})</span>
                </td>
                <td>
                  <Badge kind={`iso-${e.isolation_status}`}>{e.isolation_status.replace("_", " ")}</Badge>
                </td>
                <td title={new Date(e.last_seen).toISOString()}>{fmtAgo(e.last_seen)}</td>
                <td>
                  {e.os_name} <span className="muted small">{e.kernel_release}</span>
                </td>
                <td>{e.agent_version || "—"}</td>
                <td>
                  {e.capabilities
                    .filter((c) => !c.name.startsWith("response."))
                    .map((c) => (
                      <span
                        key={c.name}
                        className={`cap ${c.live ? "cap-on" : "cap-off"}`}
                        title={c.detail ?? `${c.name} via ${c.source}`}
                      >
                        {c.name}
                        {c.live ? "" : " (off)"}
                      </span>
                    ))}
                </td>
                <td className="num">{e.heartbeat?.dropped ?? 0}</td>
              </tr>
            ))}
            {rows.length === 0 && (
              <tr>
                <td colSpan={9} className="muted">
                  {data ? "No endpoint matches." : "Loading…"}
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
    </section>
  );
}
