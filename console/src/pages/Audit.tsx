import { useState } from "react";

import { api, query } from "../api";
import { ErrorNote, fmtTime, useLoad } from "../util";

interface AuditRecord {
  seq: number;
  time: number;
  actor: string;
  action: string;
  target: string;
  detail: unknown;
}

/** The audit log (admins): who did what to which target, newest first. */
export function AuditPage() {
  const [target, setTarget] = useState("");
  const [cursor, setCursor] = useState<string | undefined>(undefined);
  const { data, error } = useLoad(
    () =>
      api.get<{ items: AuditRecord[]; next?: string }>(
        `/audit${query({ target: target.trim(), cursor, limit: 200 })}`,
      ),
    [target, cursor],
    ["command", "alert"],
  );
  return (
    <section aria-labelledby="audit-title">
      <div className="page-head">
        <h1 id="audit-title">Audit log</h1>
      </div>
      <div className="filters">
        <label>
          Target
          <input
            value={target}
            placeholder="endpoint:<id>, policy:<id>, alert:<uid>"
            onChange={(e) => {
              setCursor(undefined);
              setTarget(e.target.value);
            }}
          />
        </label>
      </div>
      <ErrorNote error={error} />
      <div className="table-wrap">
        <table className="grid" aria-label="Audit log">
          <thead>
            <tr>
              <th>Time</th>
              <th>Actor</th>
              <th>Action</th>
              <th>Target</th>
              <th>Detail</th>
            </tr>
          </thead>
          <tbody>
            {(data?.items ?? []).map((a) => (
              <tr key={a.seq}>
                <td>{fmtTime(a.time)}</td>
                <td>{a.actor}</td>
                <td>{a.action}</td>
                <td className="mono small">{a.target}</td>
                <td className="mono small clip">{JSON.stringify(a.detail)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <p className="row">
        {cursor && (
          <button type="button" onClick={() => setCursor(undefined)}>
            Newest
          </button>
        )}
        {data?.next && (
          <button type="button" onClick={() => setCursor(data.next)}>
            Older
          </button>
        )}
      </p>
    </section>
  );
}
