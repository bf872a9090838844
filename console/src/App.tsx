import { useEffect, useState } from "react";

import { api, setCsrfToken, setUnauthorizedHandler } from "./api";
import { liveState, onLiveState } from "./live";
import { AlertPage } from "./pages/Alert";
import { AuditPage } from "./pages/Audit";
import { AlertsPage } from "./pages/Alerts";
import { EndpointPage } from "./pages/Endpoint";
import { EventsPage } from "./pages/Events";
import { FleetPage } from "./pages/Fleet";
import { LoginPage } from "./pages/Login";
import { RulesPage } from "./pages/Rules";

/** The route: `#/fleet`, `#/endpoints/<id>`, `#/alerts`, `#/alerts/<uid>`, `#/events`, `#/rules`. */
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
  const [user, setUser] = useState<string | null>(null);
  const [admin, setAdmin] = useState(false);
  const [live, setLive] = useState(liveState());
  useEffect(() => onLiveState(setLive), []);
  useEffect(() => {
    setUnauthorizedHandler(() => setAuth("needed"));
    api
      .get<{ features?: string[] }>("/health")
      .then((h) => {
        if (!h.features?.includes("auth")) {
          setAuth("ok");
          return;
        }
        // A console session answers with its CSRF token, so a reload keeps working.
        return api
          .get<{ user?: string; role?: string; csrf_token?: string }>("/auth/me")
          .then((me) => {
            if (me.csrf_token) setCsrfToken(me.csrf_token);
            setUser(me.user ? `${me.user} (${me.role ?? ""})` : null);
            setAdmin(me.role === "admin");
            setAuth("ok");
          });
      })
      .catch(() => setAuth("needed"));
  }, []);

  if (auth === "unknown") {
    return <p className="muted">Loading…</p>;
  }
  if (auth === "needed") {
    return (
      <LoginPage
        onLoggedIn={(name, csrf) => {
          setCsrfToken(csrf);
          setUser(name);
          setAdmin(name.endsWith("(admin)"));
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
        </nav>
        <span className={`live live-${live}`} title="How the console hears about changes">
          {live === "live" ? "● live" : live === "polling" ? "● polling" : "○ connecting"}
        </span>
        {user && (
          <span className="user">
            {user}{" "}
            <button
              type="button"
              className="link"
              onClick={() => {
                api.post("/auth/logout").finally(() => {
                  setCsrfToken(null);
                  setUser(null);
                  setAuth("needed");
                });
              }}
            >
              Log out
            </button>
          </span>
        )}
      </header>
      <main>{body}</main>
    </div>
  );
}
