import { useState } from "react";

import { ApiError, api, query } from "../api";
import type { Alert, AlertTree, Items, OcsfEvent, RuleView } from "../api";
import { ProcessTree } from "../components/ProcessTree";
import { Badge, Confirm, ErrorNote, Severity, fmtTime, useLoad } from "../util";
import { attackLabel } from "./Alerts";
import { describeEvent } from "./Events";

export function AlertPage({ uid }: { uid: string }) {
  const alert = useLoad(() => api.get<Alert>(`/alerts/${encodeURIComponent(uid)}`), [uid], ["alert"]);
  const a = alert.data;
  const f = a?.finding;
  const focus = f?.evidences?.find((e) => e.process)?.process;
  // The server draws the tree from the alert's process; an alert naming none has no tree.
  const tree = useLoad(
    () =>
      focus
        ? api.get<AlertTree>(`/alerts/${encodeURIComponent(uid)}/tree`).catch((e: unknown) => {
            if (e instanceof ApiError && e.status === 404) return null;
            throw e;
          })
        : Promise.resolve(null),
    [uid, focus !== undefined],
    ["alert"],
  );
  const related = useLoad(
    () =>
      a && f?.finding_info.related_events?.length
        ? Promise.all(
            f.finding_info.related_events.slice(0, 20).map(({ uid: euid }) =>
              api
                .get<Items<OcsfEvent>>(
                  `/events${query({ sensor_id: a.sensor_id, field: "metadata.uid", value: euid, limit: 1 })}`,
                )
                .then((r) => r.items[0])
                .catch(() => undefined),
            ),
          )
        : Promise.resolve([] as (OcsfEvent | undefined)[]),
    [a?.sensor_id, uid],
  );
  const rules = useLoad(() => api.get<Items<RuleView>>("/rules"), []);
  const [error, setError] = useState<string | null>(null);
  const [comment, setComment] = useState("");
  const [assignee, setAssignee] = useState("");
  const [confirm, setConfirm] = useState<{ action: string; args: Record<string, unknown> } | null>(null);
  const [sent, setSent] = useState<string | null>(null);

  if (!a || !f) {
    return (
      <section>
        <h1>Alert</h1>
        <ErrorNote error={alert.error} />
        {!alert.error && <p className="muted">Loading…</p>}
      </section>
    );
  }
  const rule = rules.data?.items.find((r) => r.id === f.finding_info.analytic.uid);
  const src = f.evidences?.find((e) => e.src_endpoint?.ip)?.src_endpoint?.ip;
  const dst = f.evidences?.find((e) => e.dst_endpoint?.ip)?.dst_endpoint?.ip;
  const att = attackLabel(f);
  const update = (body: Record<string, unknown>) => {
    setError(null);
    api
      .patch<Alert>(`/alerts/${encodeURIComponent(uid)}`, body)
      .then(() => alert.reload())
      .catch((e: unknown) => setError(e instanceof ApiError ? e.message : String(e)));
  };
  const respond = (action: string, args: Record<string, unknown>) => {
    setError(null);
    api
      .post(`/endpoints/${encodeURIComponent(a.sensor_id)}/commands`, {
        action,
        args,
        reason: `alert ${f.finding_info.title} (${uid})`,
      })
      .then(() => setSent(`${action} queued; follow it on the endpoint's page`))
      .catch((e: unknown) => setError(e instanceof ApiError ? e.message : String(e)));
  };
  const wf = a.workflow;

  return (
    <section aria-labelledby="alert-title">
      <div className="page-head">
        <h1 id="alert-title">{f.finding_info.title}</h1>
        <Severity id={f.severity_id} />
        <Badge kind={`wf-${wf.status}`}>
          {wf.status}
          {wf.verdict ? `: ${wf.verdict.replace("_", " ")}` : ""}
        </Badge>
      </div>
      <div className="cards">
        <div className="card">
          <h2>What</h2>
          <dl>
            <dt>Endpoint</dt>
            <dd>
              <a href={`#/endpoints/${encodeURIComponent(a.sensor_id)}`}>{f.device?.hostname || a.sensor_id}</a>
            </dd>
            <dt>Time</dt>
            <dd>{fmtTime(f.time)}</dd>
            <dt>Technique</dt>
            <dd>{att.technique}</dd>
            <dt>Tactic</dt>
            <dd>{att.tactic}</dd>
            {src && (
              <>
                <dt>Source</dt>
                <dd className="mono">{src}</dd>
              </>
            )}
            {dst && (
              <>
                <dt>Target</dt>
                <dd className="mono">{dst}</dd>
              </>
            )}
            {f.count !== undefined && (
              <>
                <dt>Count</dt>
                <dd>
                  {f.count} events between {fmtTime(f.start_time)} and {fmtTime(f.end_time)}
                  {f.start_time !== undefined && f.end_time !== undefined && (
                    <span className="muted"> ({((f.end_time - f.start_time) / 1000).toFixed(3)} s)</span>
                  )}
                </dd>
              </>
            )}
          </dl>
          {f.finding_info.desc && <p className="desc">{f.finding_info.desc}</p>}
          {f.unmapped?.response?.map((r, i) => (
            <p key={i}>
              Agent response: <Badge kind={r.succeeded ? "cmd-succeeded" : "cmd-failed"}>{r.action}</Badge>{" "}
              {r.succeeded ? "done" : "failed"} at {fmtTime(r.time)}
            </p>
          ))}
        </div>
        <div className="card">
          <h2>Workflow</h2>
          <p>
            Assigned to <strong>{wf.assignee ?? "nobody"}</strong>
          </p>
          <div className="row">
            <input
              aria-label="Assignee"
              placeholder="assignee"
              value={assignee}
              onChange={(e) => setAssignee(e.target.value)}
            />
            <button type="button" onClick={() => update({ assignee })}>
              Assign
            </button>
          </div>
          <div className="row">
            {wf.status === "new" && (
              <button type="button" className="primary" onClick={() => update({ status: "acknowledged" })}>
                Acknowledge
              </button>
            )}
            {wf.status !== "closed" && (
              <>
                <button type="button" onClick={() => update({ status: "closed", verdict: "true_positive" })}>
                  Close: true positive
                </button>
                <button type="button" onClick={() => update({ status: "closed", verdict: "false_positive" })}>
                  Close: false positive
                </button>
              </>
            )}
            {wf.status === "closed" && (
              <button type="button" onClick={() => update({ status: "acknowledged" })}>
                Reopen
              </button>
            )}
          </div>
        </div>
        <div className="card">
          <h2>Respond</h2>
          <div className="row">
            {focus?.pid !== undefined && (
              <button
                type="button"
                className="danger"
                onClick={() => setConfirm({ action: "kill", args: { pid: focus.pid, tree: true } })}
              >
                Kill process tree (pid {focus.pid})
              </button>
            )}
            {focus?.pid !== undefined && (
              <button type="button" onClick={() => setConfirm({ action: "suspend", args: { pid: focus.pid } })}>
                Suspend
              </button>
            )}
            {focus?.file?.path && (
              <button type="button" onClick={() => setConfirm({ action: "quarantine", args: { path: focus.file!.path } })}>
                Quarantine executable
              </button>
            )}
            <button type="button" className="danger" onClick={() => setConfirm({ action: "isolate", args: {} })}>
              Isolate host
            </button>
          </div>
          {sent && <p className="ok">{sent}</p>}
        </div>
      </div>
      <ErrorNote error={error} />

      <h2>Process tree</h2>
      {tree.data ? (
        <>
          <p className="muted small">
            Processes started between {fmtTime(tree.data.window.since)} and {fmtTime(tree.data.window.until)}, with
            their network and file activity.
          </p>
          <ProcessTree tree={tree.data} />
        </>
      ) : focus && (tree.loading || tree.error) ? (
        <>
          <ErrorNote error={tree.error} />
          {!tree.error && <p className="muted">Loading…</p>}
        </>
      ) : (
        <p className="muted">This alert names no process.</p>
      )}

      <h2>Triggering events</h2>
      <div className="table-wrap">
        <table className="grid" aria-label="Triggering events">
          <thead>
            <tr>
              <th>Time</th>
              <th>Event</th>
              <th>Detail</th>
            </tr>
          </thead>
          <tbody>
            {(related.data ?? []).map((ev, i) =>
              ev ? (
                <tr key={ev.metadata.uid}>
                  <td>{fmtTime(ev.time)}</td>
                  <td>{describeEvent(ev).what}</td>
                  <td className="mono small clip">{describeEvent(ev).detail}</td>
                </tr>
              ) : (
                <tr key={i}>
                  <td colSpan={3} className="muted">
                    {f.finding_info.related_events?.[i]?.uid} (not stored)
                  </td>
                </tr>
              ),
            )}
          </tbody>
        </table>
      </div>

      <h2>Rule</h2>
      {rule ? (
        <div className="card">
          <p>
            <strong>{rule.title}</strong> <span className="muted mono small">{rule.id}</span>
          </p>
          {rule.description && <p>{rule.description}</p>}
          <p className="muted small">
            {rule.logsource} · {rule.path}
          </p>
        </div>
      ) : (
        <p className="muted">
          {f.finding_info.analytic.name} ({f.finding_info.analytic.category})
        </p>
      )}

      <h2>Comments</h2>
      <ul className="plain">
        {a.comments.map((c, i) => (
          <li key={i}>
            <strong>{c.author}</strong> <span className="muted">{fmtTime(c.time)}</span>
            <div>{c.text}</div>
          </li>
        ))}
      </ul>
      <form
        className="row"
        onSubmit={(e) => {
          e.preventDefault();
          if (!comment.trim()) return;
          api
            .post(`/alerts/${encodeURIComponent(uid)}/comments`, { text: comment })
            .then(() => {
              setComment("");
              alert.reload();
            })
            .catch((err: unknown) => setError(err instanceof ApiError ? err.message : String(err)));
        }}
      >
        <input aria-label="Comment" placeholder="Add a comment" value={comment} onChange={(e) => setComment(e.target.value)} />
        <button type="submit">Comment</button>
      </form>

      {confirm && (
        <Confirm
          title={`${confirm.action} on ${f.device?.hostname || a.sensor_id}?`}
          confirmLabel={confirm.action}
          onCancel={() => setConfirm(null)}
          onConfirm={() => {
            respond(confirm.action, confirm.args);
            setConfirm(null);
          }}
        >
          <pre className="mono small">{JSON.stringify(confirm.args)}</pre>
        </Confirm>
      )}
    </section>
  );
}
