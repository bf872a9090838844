import { useState } from "react";
import type { FormEvent } from "react";

import { ApiError, ROLES, api, query } from "../api";
import type { Items, Me, Role, User } from "../api";
import { Confirm, ErrorNote, ShownOnce, fmtTime, useLoad } from "../util";

/** What a role may do, for the create form's hint. */
const ROLE_HINT: Record<Role, string> = {
  viewer: "reads alerts, events, endpoints and rules",
  analyst: "also triages alerts and sends response commands",
  admin: "also manages users, policies and revocation, and reads the audit log",
};

type Pending =
  | { kind: "remove"; name: string }
  | { kind: "reset"; name: string }
  | { kind: "role"; name: string; role: Role };

/** Operators (admins): create, change role, reset a password, remove. */
export function UsersPage({ me, onSelfChanged }: { me: Me; onSelfChanged: () => void }) {
  const users = useLoad(() => api.get<Items<User> & { next?: string }>(`/users${query({ limit: 1000 })}`), []);
  const [form, setForm] = useState<{ name: string; role: Role; password: string }>({
    name: "",
    role: "analyst",
    password: "",
  });
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState<string | null>(null);
  // A generated password stays until dismissed, whatever is done next: it is shown once.
  const [secret, setSecret] = useState<{ name: string; label: string; value: string } | null>(null);
  const [pending, setPending] = useState<Pending | null>(null);
  const [busy, setBusy] = useState(false);

  const fail = (e: unknown) => setError(e instanceof ApiError ? e.message : String(e));
  const start = () => {
    setError(null);
    setDone(null);
  };

  const create = (e: FormEvent) => {
    e.preventDefault();
    start();
    setBusy(true);
    const name = form.name.trim();
    api
      .post<User & { password?: string }>("/users", {
        name,
        role: form.role,
        password: form.password || undefined,
      })
      .then((u) => {
        setForm({ name: "", role: form.role, password: "" });
        setDone(`Created ${u.name} (${u.role}).`);
        if (u.password) setSecret({ name: u.name, label: `Password of ${u.name}`, value: u.password });
        users.reload();
      })
      .catch(fail)
      .finally(() => setBusy(false));
  };

  const setRole = (name: string, role: Role) => {
    start();
    api
      .patch<User>(`/users/${encodeURIComponent(name)}`, { role })
      .then((u) => {
        setDone(`${u.name} is now ${u.role}.`);
        users.reload();
        if (u.name === me.user) onSelfChanged();
      })
      .catch(fail);
  };

  const run = (p: Pending) => {
    setPending(null);
    if (p.kind === "role") {
      setRole(p.name, p.role);
      return;
    }
    start();
    if (p.kind === "remove") {
      api
        .del(`/users/${encodeURIComponent(p.name)}`)
        .then(() => {
          setDone(`Removed ${p.name}.`);
          if (secret?.name === p.name) setSecret(null);
          users.reload();
        })
        .catch(fail);
    } else {
      api
        .post<{ name: string; password?: string }>(`/users/${encodeURIComponent(p.name)}/password`, {})
        .then((r) => {
          setDone(`New password set for ${r.name}; their sessions ended.`);
          if (r.password) setSecret({ name: r.name, label: `New password of ${r.name}`, value: r.password });
        })
        .catch(fail);
    }
  };

  const items = users.data?.items ?? [];
  return (
    <section aria-labelledby="users-title">
      <div className="page-head">
        <h1 id="users-title">Users</h1>
        <span className="muted">{users.data ? `${items.length} operator${items.length === 1 ? "" : "s"}` : ""}</span>
      </div>

      <div className="card">
        <h2 id="new-user-title">New user</h2>
        <form className="action-form" onSubmit={create} aria-labelledby="new-user-title">
          <label>
            Name
            <input
              value={form.name}
              required
              autoComplete="off"
              onChange={(e) => setForm({ ...form, name: e.target.value })}
            />
          </label>
          <label>
            Role
            <select value={form.role} onChange={(e) => setForm({ ...form, role: e.target.value as Role })}>
              {ROLES.map((r) => (
                <option key={r} value={r}>
                  {r}
                </option>
              ))}
            </select>
          </label>
          <label>
            Password
            <input
              type="password"
              value={form.password}
              minLength={12}
              placeholder="empty: generate one"
              autoComplete="new-password"
              onChange={(e) => setForm({ ...form, password: e.target.value })}
            />
          </label>
          <button type="submit" className="primary" disabled={busy || !form.name.trim()}>
            Create user
          </button>
        </form>
        <p className="muted small">
          {form.role}: {ROLE_HINT[form.role]}. A password needs at least 12 characters.
        </p>
      </div>

      <ErrorNote error={users.error ?? error} />
      {done && (
        <p className="ok" role="status">
          {done}
        </p>
      )}
      {secret && <ShownOnce label={secret.label} value={secret.value} onDone={() => setSecret(null)} />}

      <h2>Operators</h2>
      <div className="table-wrap">
        <table className="grid" aria-label="Users">
          <thead>
            <tr>
              <th>Name</th>
              <th>Role</th>
              <th>Created</th>
              <th>Changed</th>
              <th>Actions</th>
            </tr>
          </thead>
          <tbody>
            {items.map((u) => (
              <tr key={u.name}>
                <td>
                  {u.name}
                  {u.name === me.user && <span className="muted small"> (you)</span>}
                </td>
                <td>
                  <select
                    aria-label={`Role of ${u.name}`}
                    value={u.role}
                    onChange={(e) => {
                      const role = e.target.value as Role;
                      // Giving up one's own admin role is asked about first.
                      if (u.name === me.user && role !== "admin") setPending({ kind: "role", name: u.name, role });
                      else setRole(u.name, role);
                    }}
                  >
                    {ROLES.map((r) => (
                      <option key={r} value={r}>
                        {r}
                      </option>
                    ))}
                  </select>
                </td>
                <td>{fmtTime(u.created_at)}</td>
                <td>{u.updated_at !== u.created_at ? fmtTime(u.updated_at) : "—"}</td>
                <td>
                  <div className="row">
                    <button
                      type="button"
                      aria-label={`Reset the password of ${u.name}`}
                      onClick={() => setPending({ kind: "reset", name: u.name })}
                    >
                      Reset password
                    </button>
                    <button
                      type="button"
                      className="danger"
                      aria-label={`Remove ${u.name}`}
                      onClick={() => setPending({ kind: "remove", name: u.name })}
                    >
                      Remove
                    </button>
                  </div>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {users.data?.next && <p className="muted small">Showing the first {items.length} users.</p>}

      {pending && (
        <Confirm
          title={
            pending.kind === "remove"
              ? `Remove ${pending.name}?`
              : pending.kind === "reset"
                ? `Reset the password of ${pending.name}?`
                : `Make yourself ${pending.role}?`
          }
          confirmLabel={pending.kind === "remove" ? "Remove" : pending.kind === "reset" ? "Reset password" : "Change role"}
          onCancel={() => setPending(null)}
          onConfirm={() => run(pending)}
        >
          <p>
            {pending.kind === "remove"
              ? "Their API tokens and console sessions end with them. The audit log keeps what they did."
              : pending.kind === "reset"
                ? "A new password is generated and shown once; their console sessions end."
                : "You lose the Users and Audit pages at once; another admin can give the role back."}
          </p>
        </Confirm>
      )}
    </section>
  );
}
