import { useState } from "react";
import type { FormEvent } from "react";

import { ApiError, api } from "../api";
import type { Me } from "../api";

export function LoginPage({
  notice,
  onLoggedIn,
}: {
  notice?: string | null;
  onLoggedIn: (who: Me | null, csrf: string | null) => void;
}) {
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    api
      .post<Partial<Me> & { csrf_token?: string }>("/auth/login", { username, password })
      .then((r) => onLoggedIn(r.role ? { user: r.user ?? username, role: r.role } : null, r.csrf_token ?? null))
      .catch((err: unknown) => setError(err instanceof ApiError ? err.message : "login failed"))
      .finally(() => setBusy(false));
  };
  return (
    <div className="login">
      <form onSubmit={submit} aria-labelledby="login-title">
        <h1 id="login-title">Vigil</h1>
        {notice && <p className="ok">{notice}</p>}
        <label>
          User
          <input autoFocus autoComplete="username" value={username} onChange={(e) => setUsername(e.target.value)} />
        </label>
        <label>
          Password
          <input
            type="password"
            autoComplete="current-password"
            value={password}
            onChange={(e) => setPassword(e.target.value)}
          />
        </label>
        {error && (
          <div className="error" role="alert">
            {error}
          </div>
        )}
        <button type="submit" className="primary" disabled={busy || !username || !password}>
          Log in
        </button>
      </form>
    </div>
  );
}
