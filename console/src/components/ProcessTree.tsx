import type { AlertTree, TreeProcess } from "../api";
import { fmtTime } from "../util";

/** Activity lines shown before the rest folds away under a summary. */
const SHOWN_ACTIVITY = 3;

/** One process in the drawing: an ancestor (no activity of its own), the focus, a sibling or a descendant. */
interface Node {
  key: string;
  proc: TreeProcess;
  kind: "ancestor" | "focus" | "sibling" | "descendant";
  children: Node[];
}

function keyOf(p: TreeProcess, fallback: string): string {
  return p.uid ?? `pid:${p.pid ?? "?"}:${p.time ?? fallback}`;
}

/** The process image's base name: what `ps` would call it. */
function nameOf(p: TreeProcess): string {
  return p.name || p.path?.split("/").pop() || `pid ${p.pid ?? "?"}`;
}

function descendants(p: TreeProcess, at: string): Node[] {
  return (p.children ?? []).map((c, i) => ({
    key: keyOf(c, `${at}.${i}`),
    proc: c,
    kind: "descendant",
    children: descendants(c, `${at}.${i}`),
  }));
}

/**
 * The tree to draw: the oldest ancestor at the root down to the alert's parent, whose children
 * are the alert's process and its siblings in launch order; the alert's process carries its
 * descendants.
 */
function layout(tree: AlertTree): Node[] {
  const focus: Node = {
    key: keyOf(tree.process, "focus"),
    proc: tree.process,
    kind: "focus",
    children: descendants(tree.process, "focus"),
  };
  let level: Node[] = [
    focus,
    ...tree.siblings.map((s, i): Node => ({ key: keyOf(s, `sib.${i}`), proc: s, kind: "sibling", children: [] })),
  ].sort((a, b) => (a.proc.time ?? 0) - (b.proc.time ?? 0));
  // Ancestors come nearest first: wrap the level in each, outwards.
  tree.ancestors.forEach((a, i) => {
    const proc: TreeProcess = { ...a, time: a.created_time };
    level = [{ key: keyOf(proc, `anc.${i}`), proc, kind: "ancestor", children: level }];
  });
  return level;
}

function endpoint(e: { ip?: string; port?: number } | null | undefined): string {
  if (!e?.ip) return "?";
  const host = e.ip.includes(":") ? `[${e.ip}]` : e.ip;
  return e.port !== undefined ? `${host}:${e.port}` : host;
}

/** A process's network and file activity, one line each; long lists fold under a summary. */
function Activity({ p }: { p: TreeProcess }) {
  const lines = [
    ...(p.network ?? []).map((n) => ({
      time: n.time,
      kind: "net",
      text: `${(n.activity ?? "network").toLowerCase()} ${endpoint(n.src)} → ${endpoint(n.dst)}`,
    })),
    ...(p.files ?? []).map((f) => ({
      time: f.time,
      kind: "file",
      text: `${(f.activity ?? "file").toLowerCase()} ${f.path ?? "?"}`,
    })),
  ].sort((a, b) => a.time - b.time);
  if (lines.length === 0) return null;
  const list = (items: typeof lines) => (
    <ul className="activity">
      {items.map((l, i) => (
        <li key={i} className={`act-${l.kind}`} title={fmtTime(l.time)}>
          <span className="act-kind">{l.kind === "net" ? "net" : "file"}</span> <span className="mono">{l.text}</span>
        </li>
      ))}
    </ul>
  );
  if (lines.length <= SHOWN_ACTIVITY) return list(lines);
  const net = p.network?.length ?? 0;
  const files = p.files?.length ?? 0;
  const summary = [
    net ? `${net} network event${net === 1 ? "" : "s"}` : "",
    files ? `${files} file event${files === 1 ? "" : "s"}` : "",
  ]
    .filter(Boolean)
    .join(", ");
  return (
    <details className="activity-more">
      <summary>{summary}</summary>
      {list(lines)}
    </details>
  );
}

function Proc({ n }: { n: Node }) {
  const p = n.proc;
  return (
    <li>
      <div className={`proc proc-${n.kind}`} title={p.cmd_line ?? p.path ?? undefined}>
        <span className="proc-name">{nameOf(p)}</span>
        {n.kind === "focus" && <span className="badge badge-focus">alert</span>}
        {p.pid != null && <span className="muted small"> pid {p.pid}</span>}
        {p.user && <span className="muted small"> · {p.user}</span>}
        {p.time && <span className="muted small"> · {fmtTime(p.time)}</span>}
        {p.cmd_line && <div className="mono small clip">{p.cmd_line}</div>}
        <Activity p={p} />
      </div>
      {n.children.length > 0 && (
        <ul>
          {n.children.map((c) => (
            <Proc key={c.key} n={c} />
          ))}
        </ul>
      )}
    </li>
  );
}

/** The process tree around an alert, as `GET /alerts/{uid}/tree` answers it. */
export function ProcessTree({ tree }: { tree: AlertTree }) {
  return (
    <ul className="tree" aria-label="Process tree">
      {layout(tree).map((n) => (
        <Proc key={n.key} n={n} />
      ))}
    </ul>
  );
}
