import { useState } from "react";
import type { FormEvent } from "react";

import { api, query } from "../api";
import type { Items, OcsfEvent } from "../api";
import { ErrorNote, fmtTime, useLoad } from "../util";

const CLASSES: Record<number, string> = {
  1001: "File",
  1007: "Process",
  3002: "Authentication",
  4001: "Network",
  4003: "DNS",
  2004: "Finding",
};

/** A one-line description of an OCSF event. */
export function describeEvent(ev: OcsfEvent): { what: string; detail: string } {
  const cls = CLASSES[ev.class_uid] ?? `class ${ev.class_uid}`;
  const act = ev.activity_name ?? (ev.activity_id !== undefined ? `activity ${ev.activity_id}` : "");
  let detail = "";
  if (ev.class_uid === 1007) {
    const p = ev.process;
    detail = `${p?.cmd_line ?? p?.file?.path ?? p?.name ?? ""}  (pid ${p?.pid ?? "?"}, parent ${p?.parent_process?.pid ?? "?"})`;
  } else if (ev.class_uid === 4001) {
    const who = ev.actor?.process?.name ? ` by ${ev.actor.process.name}` : "";
    detail = `${ev.src_endpoint?.ip ?? "?"}:${ev.src_endpoint?.port ?? ""} → ${ev.dst_endpoint?.ip ?? "?"}:${ev.dst_endpoint?.port ?? ""}${who}`;
  } else if (ev.file?.path) {
    detail = ev.file.path;
  }
  return { what: `${cls} ${act}`.trim(), detail };
}

function toMs(local: string): number | undefined {
  if (!local) return undefined;
  const t = new Date(local).getTime();
  return Number.isNaN(t) ? undefined : t;
}

export function EventsPage() {
  const [form, setForm] = useState({ cls: "", sensor: "", text: "", field: "", value: "", since: "", until: "" });
  const [q, setQ] = useState(form);
  const { data, error, loading } = useLoad(
    () =>
      api.get<Items<OcsfEvent>>(
        `/events${query({
          class_uid: q.cls,
          sensor_id: q.sensor.trim(),
          q: q.text.trim(),
          field: q.field.trim() && q.value ? q.field.trim() : undefined,
          value: q.field.trim() && q.value ? q.value : undefined,
          since: toMs(q.since),
          until: toMs(q.until),
          limit: 500,
        })}`,
      ),
    [q],
  );
  const [open, setOpen] = useState<string | null>(null);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setQ(form);
  };
  return (
    <section aria-labelledby="events-title">
      <div className="page-head">
        <h1 id="events-title">Events</h1>
        <span className="muted">{loading ? "searching…" : data ? `${data.items.length} shown (newest first)` : ""}</span>
      </div>
      <form className="filters" onSubmit={submit}>
        <label>
          Class
          <select value={form.cls} onChange={(e) => setForm({ ...form, cls: e.target.value })}>
            <option value="">any</option>
            {Object.entries(CLASSES).map(([k, v]) => (
              <option key={k} value={k}>
                {v} ({k})
              </option>
            ))}
          </select>
        </label>
        <label>
          Endpoint id
          <input value={form.sensor} onChange={(e) => setForm({ ...form, sensor: e.target.value })} />
        </label>
        <label>
          Text
          <input value={form.text} placeholder="anywhere in the event" onChange={(e) => setForm({ ...form, text: e.target.value })} />
        </label>
        <label>
          Field
          <input
            value={form.field}
            placeholder="process.file.path"
            onChange={(e) => setForm({ ...form, field: e.target.value })}
          />
        </label>
        <label>
          equals
          <input value={form.value} onChange={(e) => setForm({ ...form, value: e.target.value })} />
        </label>
        <label>
          From
          <input type="datetime-local" value={form.since} onChange={(e) => setForm({ ...form, since: e.target.value })} />
        </label>
        <label>
          To
          <input type="datetime-local" value={form.until} onChange={(e) => setForm({ ...form, until: e.target.value })} />
        </label>
        <button type="submit" className="primary">
          Search
        </button>
      </form>
      <ErrorNote error={error} />
      <div className="table-wrap">
        <table className="grid" aria-label="Events">
          <thead>
            <tr>
              <th>Time</th>
              <th>Endpoint</th>
              <th>Event</th>
              <th>Detail</th>
            </tr>
          </thead>
          <tbody>
            {(data?.items ?? []).map((ev) => {
              const d = describeEvent(ev);
              const isOpen = open === ev.metadata.uid;
              return (
                <tr key={ev.metadata.uid}>
                  <td>{fmtTime(ev.time)}</td>
                  <td>{ev.device?.hostname ?? ev.device?.uid ?? "—"}</td>
                  <td>
                    <button type="button" className="link" onClick={() => setOpen(isOpen ? null : ev.metadata.uid)}>
                      {d.what}
                    </button>
                  </td>
                  <td className="mono small">
                    {isOpen ? <pre>{JSON.stringify(ev, null, 2)}</pre> : <span className="clip">{d.detail}</span>}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
    </section>
  );
}
