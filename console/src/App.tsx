import { useEffect, useState } from "react";

import { api, setCsrfToken, setUnauthorizedHandler } from "./api";
import type { Me } from "./api";
import { liveState, onLiveState } from "./live";
import { AlertPage } from "./pages/Alert";
import { AuditPage } from "./pages/Audit";
import { AlertsPage } from "./pages/Alerts";
import { EndpointPage } from "./pages/Endpoint";
import { EventsPage } from "./pages/Events";
import { FleetPage } from "./pages/Fleet";
import { LoginPage } from "./pages/Login";
import { RulesPage } from "./pages/Rules";
import { TokensPage } from "./pages/Tokens";
import { UsersPage } from "./pages/Users";

/**
 * The route: `#/fleet`, `#/endpoints/<id>`, `#/alerts`, `#/alerts/<uid>`, `#/events`, `#/rules`,
 * `#/audit` and `#/users` (admins), `#/tokens` (one's API tokens and password).
 */
function useRoute(): string[] {
  const parse = () => (location.hash.replace(/^#\/?/, "") || "fleet").split("/").map(decodeURIComponent);
  const [route, setRoute] = useState(parse);
  useEffect(() => {
    const on = () => setRoute(parse());
    window.addEventListener("hashchange", on);
    return () => window.removeEventListener("hashchange", on);
  }, []);
  return route;
}

const NAV = [
  ["fleet", "Fleet"],
  ["alerts", "Alerts"],
  ["events", "Events"],
  ["rules", "Rules & policies"],
] as const;

export function App() {
  const route = useRoute();
  const [auth, setAuth] = useState<"unknown" | "needed" | "ok">("unknown");
  const [me, setMe] = useState<Me | null>(null);
  // Why the login page shows again, when it is not a plain log-out.
  const [notice, setNotice] = useState<string | null>(null);
  const [live, setLive] = useState(liveState());
  useEffect(() => onLiveState(setLive), []);
  // A console session answers with its CSRF token, so a reload keeps working.
  const loadMe = () =>
    api.get<Partial<Me> & { csrf_token?: string }>("/auth/me").then((who) => {
      if (who.csrf_token) setCsrfToken(who.csrf_token);
      setMe(who.user && who.role ? { user: who.user, role: who.role } : null);
      setAuth("ok");
    });
  const loggedOut = (why: string | null) => {
    setCsrfToken(null);
    setMe(null);
    setNotice(why);
    setAuth("needed");
  };
  useEffect(() => {
    setUnauthorizedHandler(() => setAuth("needed"));
    api
      .get<{ features?: string[] }>("/health")
      .then((h) => {
        if (!h.features?.includes("auth")) {
          setAuth("ok");
          return;
        }
        return loadMe();
      })
      .catch(() => setAuth("needed"));
  }, []);
  const admin = me?.role === "admin";

  if (auth === "unknown") {
    return <p className="muted">Loading…</p>;
  }
  if (auth === "needed") {
    return (
      <LoginPage
        notice={notice}
        onLoggedIn={(who, csrf) => {
          setCsrfToken(csrf);
          setMe(who);
          setNotice(null);
          setAuth("ok");
        }}
      />
    );
  }

  const [page, id] = route;
  let body;
  switch (page) {
    case "endpoints":
      body = id ? <EndpointPage id={id} /> : <FleetPage />;
      break;
    case "alerts":
      body = id ? <AlertPage uid={id} /> : <AlertsPage />;
      break;
    case "events":
      body = <EventsPage />;
      break;
    case "rules":
      body = <RulesPage />;
      break;
    case "audit":
      body = <AuditPage />;
      break;
    case "users":
      // Demoting oneself ends one's admin pages: learn the new role at once.
      body = me ? <UsersPage me={me} onSelfChanged={() => void loadMe().catch(() => setAuth("needed"))} /> : <FleetPage />;
      break;
    case "tokens":
      body = me ? (
        <TokensPage me={me} onPasswordChanged={() => loggedOut("Your password was changed: log in with the new one.")} />
      ) : (
        <FleetPage />
      );
      break;
    default:
      body = <FleetPage />;
  }
  const current = page === "endpoints" ? "fleet" : page;
  return (
    <div className="app">
      <header className="top">
        <a className="brand" href="#/fleet">
          Vigil
        </a>
        <nav aria-label="Main">
          {NAV.map(([k, label]) => (
            <a key={k} href={`#/${k}`} aria-current={current === k ? "page" : undefined}>
              {label}
            </a>
          ))}
          {admin && (
            <a href="#/audit" aria-current={current === "audit" ? "page" : undefined}>
              Audit
            </a>
          )}
          {admin && (
            <a href="#/users" aria-current={current === "users" ? "page" : undefined}>
              Users
            </a>
          )}
          {me && (
            <a href="#/tokens" aria-current={current === "tokens" ? "page" : undefined}>
              Tokens
            </a>
          )}
        </nav>
        <span className={`live live-${live}`} title="How the console hears about changes">
          {live === "live" ? "● live" : live === "polling" ? "● polling" : "○ connecting"}
        </span>
        {me && (
          <span className="user">
            {me.user} ({me.role}){" "}
            <button type="button" className="link" onClick={() => void api.post("/auth/logout").finally(() => loggedOut(null))}>
              Log out
            </button>
          </span>
        )}
      </header>
      <main>{body}</main>
    </div>
  );
}
