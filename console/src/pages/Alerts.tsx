import { useState } from "react";

import { api, query } from "../api";
import type { Finding, Items } from "../api";
import { Badge, ErrorNote, Severity, fmtTime, useLoad } from "../util";

export function attackLabel(f: Finding): { technique: string; tactic: string } {
  const a = f.finding_info.attacks?.[0];
  return {
    technique: a?.technique ? `${a.technique.uid} ${a.technique.name}` : "—",
    tactic: a?.tactic ? a.tactic.name : (a?.tactics?.[0]?.name ?? "—"),
  };
}

export function AlertsPage() {
  const [status, setStatus] = useState("new");
  const [minSeverity, setMinSeverity] = useState("");
  const [sensor, setSensor] = useState("");
  const { data, error } = useLoad(
    () =>
      api.get<Items<Finding>>(
        `/alerts${query({ status, min_severity: minSeverity, sensor_id: sensor.trim(), limit: 500 })}`,
      ),
    [status, minSeverity, sensor],
    ["alert"],
  );
  return (
    <section aria-labelledby="alerts-title">
      <div className="page-head">
        <h1 id="alerts-title">Alerts</h1>
        <span className="muted">{data ? `${data.items.length} shown` : ""}</span>
      </div>
      <div className="filters">
        <label>
          Status
          <select value={status} onChange={(e) => setStatus(e.target.value)}>
            <option value="">any</option>
            <option value="new">new</option>
            <option value="acknowledged">acknowledged</option>
            <option value="closed">closed</option>
          </select>
        </label>
        <label>
          Severity
          <select value={minSeverity} onChange={(e) => setMinSeverity(e.target.value)}>
            <option value="">any</option>
            <option value="5">critical</option>
            <option value="4">high or worse</option>
            <option value="3">medium or worse</option>
            <option value="2">low or worse</option>
          </select>
        </label>
        <label>
          Endpoint id
          <input value={sensor} onChange={(e) => setSensor(e.target.value)} placeholder="any" />
        </label>
      </div>
      <ErrorNote error={error} />
      <div className="table-wrap">
        <table className="grid" aria-label="Alert queue">
          <thead>
            <tr>
              <th>Severity</th>
              <th>Alert</th>
              <th>ATT&amp;CK technique</th>
              <th>Tactic</th>
              <th>Endpoint</th>
              <th>Time</th>
              <th>Status</th>
              <th>Assignee</th>
            </tr>
          </thead>
          <tbody>
            {(data?.items ?? []).map((f) => {
              const a = attackLabel(f);
              return (
                <tr key={f.finding_info.uid}>
                  <td>
                    <Severity id={f.severity_id} />
                  </td>
                  <td>
                    <a href={`#/alerts/${encodeURIComponent(f.finding_info.uid)}`}>{f.finding_info.title}</a>
                    {f.unmapped?.response?.map((r) => (
                      <Badge key={r.action} kind={r.succeeded ? "cmd-succeeded" : "cmd-failed"}>
                        {r.action}
                      </Badge>
                    ))}
                  </td>
                  <td>{a.technique}</td>
                  <td>{a.tactic}</td>
                  <td>
                    {f.sensor_id ? (
                      <a href={`#/endpoints/${encodeURIComponent(f.sensor_id)}`}>
                        {f.device?.hostname || f.sensor_id}
                      </a>
                    ) : (
                      (f.device?.hostname ?? "—")
                    )}
                  </td>
                  <td>{fmtTime(f.time)}</td>
                  <td>
                    <Badge kind={`wf-${f.workflow?.status ?? "new"}`}>
                      {f.workflow?.status ?? "new"}
                      {f.workflow?.verdict ? `: ${f.workflow.verdict.replace("_", " ")}` : ""}
                    </Badge>
                  </td>
                  <td>{f.workflow?.assignee ?? "—"}</td>
                </tr>
              );
            })}
            {data?.items.length === 0 && (
              <tr>
                <td colSpan={8} className="muted">
                  No alert matches.
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
    </section>
  );
}
