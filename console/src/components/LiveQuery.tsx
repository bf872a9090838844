import { useState } from "react";
import type { FormEvent } from "react";

import { ApiError, api } from "../api";

interface HostAnswer {
  sensor_id: string;
  state: string;
  error?: string;
  result?: { columns: string[]; rows: unknown[][]; truncated: boolean; took_ms: number };
}

/** A live query box: SQL over the endpoint's live tables, answered by its agent. */
export function LiveQuery({ endpoint }: { endpoint: string }) {
  const [sql, setSql] = useState("SELECT pid, name, cmdline FROM processes ORDER BY pid DESC LIMIT 20");
  const [answer, setAnswer] = useState<HostAnswer | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const run = (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    setAnswer(null);
    api
      .post<{ id: string }>("/queries", { sql, endpoints: [endpoint], timeout_s: 10 })
      .then(async (q) => {
        // Poll until the host answered, failed or the query's deadline passed.
        for (let i = 0; i < 120; i++) {
          const a = await api.get<{ hosts: HostAnswer[] }>(`/queries/${q.id}`);
          const h = a.hosts[0];
          if (h && h.state !== "pending") {
            setAnswer(h);
            return;
          }
          await new Promise((r) => setTimeout(r, 250));
        }
        setError("no answer yet; the query stays listed under /api/v1/queries");
      })
      .catch((err: unknown) => setError(err instanceof ApiError ? err.message : String(err)))
      .finally(() => setBusy(false));
  };
  return (
    <div>
      <form className="row" onSubmit={run}>
        <input
          aria-label="Live query"
          className="mono"
          value={sql}
          onChange={(e) => setSql(e.target.value)}
        />
        <button type="submit" className="primary" disabled={busy || !sql.trim()}>
          {busy ? "Running…" : "Run query"}
        </button>
      </form>
      <p className="muted small">
        Tables: processes, process_open_sockets, listening_ports, users, logged_in_users, crontab, systemd_units,
        kernel_modules, file and hash (with WHERE path = '…' or directory = '…'). Read-only.
      </p>
      {error && (
        <div className="error" role="alert">
          {error}
        </div>
      )}
      {answer?.error && (
        <div className="error" role="alert">
          {answer.state}: {answer.error}
        </div>
      )}
      {answer?.result && (
        <div className="table-wrap">
          <table className="grid" aria-label="Live query result">
            <thead>
              <tr>
                {answer.result.columns.map((c) => (
                  <th key={c}>{c}</th>
                ))}
              </tr>
            </thead>
            <tbody>
              {answer.result.rows.map((r, i) => (
                <tr key={i}>
                  {r.map((v, j) => (
                    <td key={j} className="mono small">
                      {v === null ? "—" : String(v)}
                    </td>
                  ))}
                </tr>
              ))}
            </tbody>
          </table>
          <p className="muted small">
            {answer.result.rows.length} row(s){answer.result.truncated ? " (capped)" : ""} in {answer.result.took_ms} ms
          </p>
        </div>
      )}
    </div>
  );
}
