import { useMemo, useState } from "react";

import { ApiError, api } from "../api";
import type { Items, Policy, RuleView } from "../api";
import { Badge, ErrorNote, fmtTime, useLoad } from "../util";

/** ATT&CK Enterprise tactics, in kill-chain order (the matrix's columns). */
const TACTICS: [string, string][] = [
  ["TA0043", "Reconnaissance"],
  ["TA0042", "Resource Development"],
  ["TA0001", "Initial Access"],
  ["TA0002", "Execution"],
  ["TA0003", "Persistence"],
  ["TA0004", "Privilege Escalation"],
  ["TA0005", "Stealth"],
  ["TA0112", "Defense Impairment"],
  ["TA0006", "Credential Access"],
  ["TA0007", "Discovery"],
  ["TA0008", "Lateral Movement"],
  ["TA0009", "Collection"],
  ["TA0011", "Command and Control"],
  ["TA0010", "Exfiltration"],
  ["TA0040", "Impact"],
];

function Coverage({ rules }: { rules: RuleView[] }) {
  // tactic -> technique -> rule titles
  const matrix = useMemo(() => {
    const m = new Map<string, Map<string, { name: string; rules: string[] }>>();
    for (const r of rules.filter((x) => x.status === "loaded")) {
      for (const a of r.attacks) {
        const tactics = a.tactics?.length ? a.tactics : a.tactic ? [a.tactic] : [];
        for (const t of tactics) {
          const col = m.get(t.uid) ?? new Map();
          const key = a.technique?.uid ?? "(tactic only)";
          const cell = col.get(key) ?? { name: a.technique?.name ?? "", rules: [] };
          cell.rules.push(r.title ?? r.id ?? "?");
          col.set(key, cell);
          m.set(t.uid, col);
        }
      }
    }
    return m;
  }, [rules]);
  return (
    <div className="matrix" role="table" aria-label="ATT&CK coverage of the loaded rules">
      {TACTICS.map(([uid, name]) => {
        const col = matrix.get(uid);
        return (
          <div className="matrix-col" role="rowgroup" key={uid}>
            <div className={`matrix-head ${col ? "covered" : ""}`} role="columnheader">
              {name}
              <span className="muted small"> {col ? col.size : 0}</span>
            </div>
            {[...(col?.entries() ?? [])].sort().map(([tech, cell]) => (
              <div className="matrix-cell" role="cell" key={tech} title={cell.rules.join("\n")}>
                <span className="mono small">{tech}</span> {cell.name}
                <span className="muted small"> ({cell.rules.length})</span>
              </div>
            ))}
          </div>
        );
      })}
    </div>
  );
}

export function RulesPage() {
  const rules = useLoad(() => api.get<Items<RuleView> & { counts: Record<string, number> }>("/rules"), []);
  const policies = useLoad(() => api.get<Items<Policy>>("/policies"), []);
  const [status, setStatus] = useState("loaded");
  const [text, setText] = useState("");
  const [error, setError] = useState<string | null>(null);
  const shown = (rules.data?.items ?? []).filter(
    (r) =>
      (!status || r.status === status) &&
      (!text ||
        `${r.title} ${r.id} ${r.logsource} ${r.tags.join(" ")}`.toLowerCase().includes(text.toLowerCase())),
  );
  const toggle = (p: Policy) => {
    setError(null);
    const { id, revision: _r, updated_at: _u, ...spec } = p;
    void _r;
    void _u;
    api
      .put(`/policies/${encodeURIComponent(id)}`, { ...spec, enabled: !p.enabled })
      .then(() => policies.reload())
      .catch((e: unknown) => setError(e instanceof ApiError ? e.message : String(e)));
  };
  const switchRule = (id: string, enabled: boolean) => {
    setError(null);
    api
      .put(`/rules/${encodeURIComponent(id)}`, { enabled })
      .then(() => rules.reload())
      .catch((e: unknown) => setError(e instanceof ApiError ? e.message : String(e)));
  };
  const c = rules.data?.counts;
  return (
    <section aria-labelledby="rules-title">
      <div className="page-head">
        <h1 id="rules-title">Rules &amp; policies</h1>
        {c && (
          <span className="summary">
            <Badge kind="online">{c.loaded} loaded</Badge> <Badge kind="stale">{c.not_applicable} not applicable</Badge>{" "}
            <Badge kind="stale">{c.unsupported} unsupported</Badge> <Badge kind="offline">{c.malformed} malformed</Badge>
          </span>
        )}
      </div>
      <ErrorNote error={rules.error ?? policies.error ?? error} />

      <h2>ATT&amp;CK coverage</h2>
      <Coverage rules={rules.data?.items ?? []} />

      <h2>Policies</h2>
      <div className="table-wrap">
        <table className="grid" aria-label="Policies">
          <thead>
            <tr>
              <th>Policy</th>
              <th>Rules and responses</th>
              <th>Applies to</th>
              <th>Revision</th>
              <th>Enabled</th>
            </tr>
          </thead>
          <tbody>
            {(policies.data?.items ?? []).map((p) => (
              <tr key={p.id}>
                <td>
                  <strong>{p.name}</strong>
                  <div className="muted small">{p.description}</div>
                </td>
                <td>
                  {p.rules.map((r, i) => {
                    const title = r.rule_id
                      ? (rules.data?.items.find((x) => x.id === r.rule_id)?.title ?? r.rule_id)
                      : "inline Sigma rule";
                    return (
                      <div key={i}>
                        {title} → <Badge kind={r.response === "alert" ? "stale" : "offline"}>{r.response}</Badge>
                      </div>
                    );
                  })}
                </td>
                <td>
                  {p.tags.includes("*") ? "every endpoint" : [...p.tags.map((t) => `tag ${t}`), ...p.endpoints].join(", ") || "nobody"}
                </td>
                <td>
                  {p.revision} <span className="muted small">{fmtTime(p.updated_at)}</span>
                </td>
                <td>
                  <label className="switch">
                    <input type="checkbox" checked={p.enabled} onChange={() => toggle(p)} aria-label={`Enable ${p.name}`} />
                    {p.enabled ? "on" : "off"}
                  </label>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>

      <h2>Rules</h2>
      <div className="filters">
        <label>
          Status
          <select value={status} onChange={(e) => setStatus(e.target.value)}>
            <option value="">any</option>
            <option value="loaded">loaded</option>
            <option value="not_applicable">not applicable</option>
            <option value="unsupported">unsupported</option>
            <option value="malformed">malformed</option>
          </select>
        </label>
        <label>
          Search
          <input type="search" value={text} onChange={(e) => setText(e.target.value)} placeholder="title, id, tag" />
        </label>
      </div>
      <div className="table-wrap">
        <table className="grid" aria-label="Rules">
          <thead>
            <tr>
              <th>Rule</th>
              <th>Status</th>
              <th>Level</th>
              <th>ATT&amp;CK</th>
              <th>Logsource</th>
              <th>Responses</th>
              <th>Enabled</th>
            </tr>
          </thead>
          <tbody>
            {shown.map((r, i) => (
              <tr key={`${r.id}-${i}`}>
                <td>
                  {r.title ?? "(untitled)"}
                  {r.kind === "correlation" && <Badge kind="stale">correlation</Badge>}
                  <div className="muted small mono">{r.id}</div>
                </td>
                <td>
                  <Badge kind={r.status === "loaded" ? "online" : r.status === "malformed" ? "offline" : "stale"}>
                    {r.status.replace("_", " ")}
                  </Badge>
                  {r.reason && <div className="muted small">{r.reason}</div>}
                </td>
                <td>{r.level ?? "—"}</td>
                <td className="small">{r.attacks.map((a) => a.technique?.uid ?? a.tactic?.name).join(", ") || "—"}</td>
                <td className="small">{r.logsource}</td>
                <td className="small">
                  {r.policies.map((p) => `${p.policy}: ${p.response}${p.enabled ? "" : " (off)"}`).join("; ") || "—"}
                </td>
                <td>
                  {r.status === "loaded" && r.id ? (
                    <label className="switch">
                      <input
                        type="checkbox"
                        checked={r.enabled}
                        onChange={() => switchRule(r.id!, !r.enabled)}
                        aria-label={`Enable ${r.title ?? r.id}`}
                      />
                      {r.enabled ? "on" : "off"}
                    </label>
                  ) : (
                    "—"
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}
