import type { OcsfEvent, OcsfProcess } from "../api";
import { fmtTime } from "../util";

/** One process in the focus view. */
export interface TreeNode {
  key: string;
  pid?: number;
  name: string;
  path?: string;
  cmd?: string;
  time?: number;
  focus?: boolean;
  eventUid?: string;
  children: TreeNode[];
}

interface AncestryEntry {
  pid?: number;
  uid?: string;
  name?: string;
  cmd_line?: string;
  path?: string;
  created_time?: number;
}

const MAX_CHILDREN = 60;
const MAX_DEPTH = 4;

function nodeOf(p: OcsfProcess | AncestryEntry, focus = false): TreeNode {
  const path = "file" in p && p.file ? p.file.path : (p as AncestryEntry).path;
  return {
    key: p.uid ?? `pid:${p.pid ?? "?"}:${p.created_time ?? ""}`,
    pid: p.pid,
    name: p.name || path?.split("/").pop() || `pid ${p.pid ?? "?"}`,
    path,
    cmd: p.cmd_line,
    time: p.created_time,
    focus,
    children: [],
  };
}

/**
 * The process tree around `focus`: its ancestors (from the event's ancestry, oldest at the
 * root), the process itself, and the processes it started (from the endpoint's launch events
 * around the alert), a few levels deep.
 */
export function buildTree(focus: OcsfProcess, launches: OcsfEvent[]): TreeNode {
  const me = nodeOf(focus, true);
  const byParent = new Map<number, OcsfEvent[]>();
  for (const ev of launches) {
    const ppid = ev.process?.parent_process?.pid;
    if (ev.class_uid !== 1007 || ev.activity_id !== 1 || ppid === undefined) continue;
    const list = byParent.get(ppid) ?? [];
    list.push(ev);
    byParent.set(ppid, list);
  }
  let budget = MAX_CHILDREN;
  const seen = new Set<string>([me.key]);
  const grow = (node: TreeNode, depth: number) => {
    if (depth >= MAX_DEPTH || node.pid === undefined) return;
    // A forked child and its later exec are one process: the newest event shows its image.
    const latest = new Map<string, OcsfEvent>();
    for (const ev of byParent.get(node.pid) ?? []) {
      if (!ev.process || (node.time !== undefined && ev.time < node.time - 1000)) continue;
      const key = nodeOf(ev.process).key;
      const prev = latest.get(key);
      // The exec of a forked child carries its new image; at the same millisecond it wins.
      const isExec = (e: OcsfEvent) => (e as { launch_type_id?: number }).launch_type_id === 3;
      if (!prev || ev.time > prev.time || (ev.time === prev.time && isExec(ev))) latest.set(key, ev);
    }
    const kids = [...latest.values()].sort((a, b) => a.time - b.time);
    for (const ev of kids) {
      if (budget <= 0 || !ev.process) return;
      const child = nodeOf(ev.process);
      child.eventUid = ev.metadata.uid;
      child.time = child.time ?? ev.time;
      if (seen.has(child.key)) continue;
      seen.add(child.key);
      budget--;
      node.children.push(child);
      grow(child, depth + 1);
    }
  };
  grow(me, 0);

  // Ancestors: the event's ancestry is nearest first.
  const ancestry = ((focus as { ancestry?: AncestryEntry[] }).ancestry ?? []).slice();
  if (ancestry.length === 0 && focus.parent_process) ancestry.push(focus.parent_process);
  let top = me;
  for (const a of ancestry) {
    const parent = nodeOf(a);
    parent.children.push(top);
    top = parent;
  }
  return top;
}

function Node({ n }: { n: TreeNode }) {
  return (
    <li>
      <div className={`proc ${n.focus ? "proc-focus" : ""}`} title={n.cmd ?? n.path}>
        <span className="proc-name">{n.name}</span>
        {n.pid !== undefined && <span className="muted small"> pid {n.pid}</span>}
        {n.time && <span className="muted small"> · {fmtTime(n.time)}</span>}
        {n.cmd && <div className="mono small clip">{n.cmd}</div>}
      </div>
      {n.children.length > 0 && (
        <ul>
          {n.children.map((c) => (
            <Node key={c.key} n={c} />
          ))}
        </ul>
      )}
    </li>
  );
}

export function ProcessTree({ root }: { root: TreeNode }) {
  return (
    <ul className="tree" aria-label="Process tree">
      <Node n={root} />
    </ul>
  );
}
