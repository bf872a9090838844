import { useCallback, useEffect, useRef, useState } from "react";
import type { ReactNode } from "react";

import { ApiError } from "./api";
import { subscribe } from "./live";
import type { LiveKind } from "./live";

/** Loads data, and loads it again when a live message of one of `kinds` arrives. */
export function useLoad<T>(
  load: () => Promise<T>,
  deps: unknown[],
  kinds: LiveKind[] = [],
): { data: T | null; error: string | null; reload: () => void; loading: boolean } {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const seq = useRef(0);
  // eslint-disable-next-line react-hooks/exhaustive-deps
  const run = useCallback(load, deps);
  const reload = useCallback(() => {
    const mine = ++seq.current;
    setLoading(true);
    run()
      .then((d) => {
        if (mine === seq.current) {
          setData(d);
          setError(null);
        }
      })
      .catch((e: unknown) => {
        if (mine === seq.current) setError(e instanceof ApiError || e instanceof Error ? e.message : String(e));
      })
      .finally(() => {
        if (mine === seq.current) setLoading(false);
      });
  }, [run]);
  useEffect(() => {
    reload();
  }, [reload]);
  const kindsKey = kinds.join(",");
  useEffect(() => {
    if (!kindsKey) return;
    const wanted = kindsKey.split(",");
    return subscribe((m) => {
      if (wanted.includes(m.type)) reload();
    });
  }, [kindsKey, reload]);
  return { data, error, reload, loading };
}

export function fmtTime(ms: number | null | undefined): string {
  if (!ms) return "—";
  const d = new Date(ms);
  return d.toLocaleString(undefined, { hour12: false });
}

export function fmtAgo(ms: number | null | undefined): string {
  if (!ms) return "never";
  const s = Math.round((Date.now() - ms) / 1000);
  if (s < 5) return "just now";
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

export function fmtBytes(n: number | null | undefined): string {
  if (!n) return "—";
  const units = ["B", "KiB", "MiB", "GiB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i ? 1 : 0)} ${units[i]}`;
}

export const SEVERITIES: Record<number, string> = {
  0: "Unknown",
  1: "Informational",
  2: "Low",
  3: "Medium",
  4: "High",
  5: "Critical",
  6: "Fatal",
};

export function Severity({ id }: { id: number }) {
  const name = SEVERITIES[id] ?? "Unknown";
  return <span className={`sev sev-${id}`}>{name}</span>;
}

export function Badge({ kind, children }: { kind: string; children: ReactNode }) {
  return <span className={`badge badge-${kind}`}>{children}</span>;
}

export function ErrorNote({ error }: { error: string | null }) {
  if (!error) return null;
  return (
    <div className="error" role="alert">
      {error}
    </div>
  );
}

/** A confirmation dialog for actions that change an endpoint. */
export function Confirm({
  title,
  children,
  onConfirm,
  onCancel,
  confirmLabel = "Confirm",
}: {
  title: string;
  children: ReactNode;
  onConfirm: () => void;
  onCancel: () => void;
  confirmLabel?: string;
}) {
  const ref = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    ref.current?.focus();
    const onKey = (e: KeyboardEvent) => {
      if (e.key === "Escape") onCancel();
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [onCancel]);
  return (
    <div className="modal-backdrop" role="presentation">
      <div className="modal" role="dialog" aria-modal="true" aria-labelledby="confirm-title">
        <h2 id="confirm-title">{title}</h2>
        <div className="modal-body">{children}</div>
        <div className="modal-actions">
          <button type="button" onClick={onCancel}>
            Cancel
          </button>
          <button type="button" className="danger" ref={ref} onClick={onConfirm}>
            {confirmLabel}
          </button>
        </div>
      </div>
    </div>
  );
}

/** Sortable column header. */
export function SortHeader<K extends string>({
  label,
  k,
  sort,
  setSort,
}: {
  label: string;
  k: K;
  sort: { key: K; desc: boolean };
  setSort: (s: { key: K; desc: boolean }) => void;
}) {
  const active = sort.key === k;
  return (
    <th aria-sort={active ? (sort.desc ? "descending" : "ascending") : "none"}>
      <button type="button" className="sort" onClick={() => setSort({ key: k, desc: active ? !sort.desc : false })}>
        {label}
        {active ? (sort.desc ? " ▼" : " ▲") : ""}
      </button>
    </th>
  );
}

/**
 * A secret the server shows once (a generated password, an API token): the value, a copy
 * button and a note that it cannot be shown again.
 */
export function ShownOnce({ label, value, onDone }: { label: string; value: string; onDone: () => void }) {
  const ref = useRef<HTMLInputElement>(null);
  const [copied, setCopied] = useState<string | null>(null);
  const copy = () => {
    const byHand = () => {
      // Outside a secure context there is no clipboard API: select it for the user.
      ref.current?.select();
      setCopied(document.execCommand("copy") ? "Copied." : "Select it and copy it by hand.");
    };
    if (navigator.clipboard) {
      navigator.clipboard.writeText(value).then(() => setCopied("Copied."), byHand);
    } else {
      byHand();
    }
  };
  return (
    <div className="once" role="status">
      <label>
        {label}
        <input ref={ref} className="mono" readOnly value={value} onFocus={(e) => e.target.select()} />
      </label>
      <div className="row">
        <button type="button" className="primary" onClick={copy}>
          Copy
        </button>
        <button type="button" onClick={onDone}>
          Done
        </button>
        <span className="muted small">{copied}</span>
      </div>
      <p className="once-note">Shown once: copy it now. The server keeps only a hash and cannot show it again.</p>
    </div>
  );
}
