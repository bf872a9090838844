import { useState } from "react";
import type { FormEvent } from "react";

import { ApiError, ROLES, api, query } from "../api";
import type { ApiToken, Items, Me, Role } from "../api";
import { Confirm, ErrorNote, ShownOnce, fmtAgo, fmtTime, useLoad } from "../util";

/** One's API tokens (an admin sees everyone's) and one's password. */
export function TokensPage({ me, onPasswordChanged }: { me: Me; onPasswordChanged: () => void }) {
  const admin = me.role === "admin";
  const tokens = useLoad(() => api.get<Items<ApiToken> & { next?: string }>(`/tokens${query({ limit: 1000 })}`), []);
  const [form, setForm] = useState<{ name: string; role: Role | "" }>({ name: "", role: "" });
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const [created, setCreated] = useState<{ name: string; token: string } | null>(null);
  const [revoke, setRevoke] = useState<ApiToken | null>(null);
  const [busy, setBusy] = useState(false);
  // A token carries its user's role or a lower one.
  const roles = ROLES.slice(0, ROLES.indexOf(me.role) + 1);

  const fail = (e: unknown) => setError(e instanceof ApiError ? e.message : String(e));
  const create = (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    setDone(null);
    setCreated(null);
    setBusy(true);
    api
      .post<ApiToken & { token: string }>("/tokens", { name: form.name.trim(), role: form.role || undefined })
      .then((t) => {
        setForm({ name: "", role: form.role });
        setCreated({ name: t.name, token: t.token });
        tokens.reload();
      })
      .catch(fail)
      .finally(() => setBusy(false));
  };
  const revokeNow = (t: ApiToken) => {
    setRevoke(null);
    setError(null);
    setDone(null);
    api
      .del(`/tokens/${encodeURIComponent(t.id)}`)
      .then(() => {
        setDone(`Revoked ${t.name}.`);
        if (created?.name === t.name) setCreated(null);
        tokens.reload();
      })
      .catch(fail);
  };

  const items = tokens.data?.items ?? [];
  return (
    <section aria-labelledby="tokens-title">
      <div className="page-head">
        <h1 id="tokens-title">API tokens</h1>
        <span className="muted">
          {me.user} ({me.role})
        </span>
      </div>
      <p className="muted">
        A token lets a script call the API as you, sent as <span className="mono">Authorization: Bearer vgl_…</span>,
        with your role or a lower one. Revoking it, removing you or lowering your role takes effect at once.
      </p>

      <div className="card">
        <h2>New token</h2>
        <form className="action-form" onSubmit={create}>
          <label>
            Token name
            <input
              value={form.name}
              required
              placeholder="e.g. siem-export"
              autoComplete="off"
              onChange={(e) => setForm({ ...form, name: e.target.value })}
            />
          </label>
          <label>
            Token role
            <select value={form.role} onChange={(e) => setForm({ ...form, role: e.target.value as Role | "" })}>
              <option value="">mine ({me.role})</option>
              {roles
                .filter((r) => r !== me.role)
                .map((r) => (
                  <option key={r} value={r}>
                    {r}
                  </option>
                ))}
            </select>
          </label>
          <button type="submit" className="primary" disabled={busy || !form.name.trim()}>
            Create token
          </button>
        </form>
      </div>

      <ErrorNote error={tokens.error ?? error} />
      {done && (
        <p className="ok" role="status">
          {done}
        </p>
      )}
      {created && <ShownOnce label={`Token ${created.name}`} value={created.token} onDone={() => setCreated(null)} />}

      <h2>{admin ? "Every user's tokens" : "Your tokens"}</h2>
      <div className="table-wrap">
        <table className="grid" aria-label="API tokens">
          <thead>
            <tr>
              <th>Name</th>
              {admin && <th>User</th>}
              <th>Role</th>
              <th>Created</th>
              <th>Last used</th>
              <th>
                <span className="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {items.map((t) => (
              <tr key={t.id}>
                <td>
                  {t.name}
                  <div className="muted small mono">{t.id}</div>
                </td>
                {admin && <td>{t.user}</td>}
                <td>{t.role}</td>
                <td>{fmtTime(t.created_at)}</td>
                <td>{t.last_used_at ? fmtAgo(t.last_used_at) : "never"}</td>
                <td>
                  <button type="button" className="danger" aria-label={`Revoke ${t.name}`} onClick={() => setRevoke(t)}>
                    Revoke
                  </button>
                </td>
              </tr>
            ))}
            {tokens.data && items.length === 0 && (
              <tr>
                <td colSpan={admin ? 6 : 5} className="muted">
                  No token yet.
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
      {tokens.data?.next && <p className="muted small">Showing the first {items.length} tokens.</p>}

      <PasswordForm me={me} onChanged={onPasswordChanged} />

      {revoke && (
        <Confirm
          title={`Revoke ${revoke.name}?`}
          confirmLabel="Revoke"
          onCancel={() => setRevoke(null)}
          onConfirm={() => revokeNow(revoke)}
        >
          <p>
            Scripts using it{revoke.user !== me.user ? ` (it is ${revoke.user}'s)` : ""} get 401 from now on. This
            cannot be undone.
          </p>
        </Confirm>
      )}
    </section>
  );
}

/** Changing one's own password: it takes the current one, and ends one's sessions (this one too). */
function PasswordForm({ me, onChanged }: { me: Me; onChanged: () => void }) {
  const [form, setForm] = useState({ current: "", next: "", again: "" });
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    if (form.next !== form.again) {
      setError("The new password and its repetition differ.");
      return;
    }
    setBusy(true);
    api
      .post(`/users/${encodeURIComponent(me.user)}/password`, { password: form.next, current_password: form.current })
      .then(() => onChanged())
      .catch((err: unknown) => {
        setError(err instanceof ApiError ? err.message : String(err));
        setBusy(false);
      });
  };
  return (
    <>
      <h2>Your password</h2>
      <form className="action-form" onSubmit={submit} aria-label="Change your password">
        {/* Lets password managers tie the new password to the account. */}
        <input type="text" autoComplete="username" value={me.user} readOnly hidden />
        <label>
          Current password
          <input
            type="password"
            required
            autoComplete="current-password"
            value={form.current}
            onChange={(e) => setForm({ ...form, current: e.target.value })}
          />
        </label>
        <label>
          New password
          <input
            type="password"
            required
            minLength={12}
            autoComplete="new-password"
            value={form.next}
            onChange={(e) => setForm({ ...form, next: e.target.value })}
          />
        </label>
        <label>
          Repeat new password
          <input
            type="password"
            required
            minLength={12}
            autoComplete="new-password"
            value={form.again}
            onChange={(e) => setForm({ ...form, again: e.target.value })}
          />
        </label>
        <button type="submit" disabled={busy}>
          Change password
        </button>
      </form>
      <p className="muted small">At least 12 characters. Every session of yours ends: you log in again.</p>
      <ErrorNote error={error} />
    </>
  );
}
