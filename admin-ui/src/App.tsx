import { createContext, useContext, useEffect, useState } from "react";
import { getToken, setToken, whoami, type Identity } from "./api";
import { Link, RouterProvider, usePath } from "./router";
import { Events } from "./views/Events";
import { Limits } from "./views/Limits";
import { Login } from "./views/Login";
import { Overview } from "./views/Overview";
import { RouteDetail } from "./views/RouteDetail";
import { Routes } from "./views/Routes";
import { SessionDetail } from "./views/SessionDetail";
import { Sessions } from "./views/Sessions";

const IdentityContext = createContext<Identity>({ role: "viewer", tokenId: "", auth: true });

export function useIdentity(): Identity {
  return useContext(IdentityContext);
}

// True when this operator may change things (disables every mutation for a viewer).
export function useCanWrite(): boolean {
  return useIdentity().role === "admin";
}

function View() {
  const path = usePath();
  let m: RegExpExecArray | null;
  if (path === "/") return <Overview />;
  if (path === "/routes") return <Routes />;
  if ((m = /^\/routes\/(.+)$/.exec(path))) return <RouteDetail name={decodeURIComponent(m[1])} />;
  if (path === "/limits") return <Limits />;
  if (path === "/sessions") return <Sessions />;
  if ((m = /^\/sessions\/(.+)$/.exec(path))) return <SessionDetail id={decodeURIComponent(m[1])} />;
  if (path === "/events") return <Events />;
  return <p role="alert">No page at {path}.</p>;
}

export function App() {
  const [identity, setIdentity] = useState<Identity | null | undefined>(undefined);

  useEffect(() => {
    whoami(getToken()).then(setIdentity, () => setIdentity(null));
  }, []);

  if (identity === undefined) return <p className="loading">Loading…</p>;
  if (identity === null) {
    return (
      <Login
        onLogin={(token, who) => {
          setToken(token);
          setIdentity(who);
        }}
      />
    );
  }
  const logout = () => {
    setToken("");
    setIdentity(null);
  };
  return (
    <IdentityContext.Provider value={identity}>
      <RouterProvider>
        <header className="top">
          <span className="brand">wsgate</span>
          <nav aria-label="Main">
            <Link to="/">Overview</Link>
            <Link to="/routes">Routes</Link>
            <Link to="/limits">Limits</Link>
            <Link to="/sessions">Sessions</Link>
            <Link to="/events">Events</Link>
          </nav>
          <span className="who" data-testid="identity">
            {identity.auth ? `${identity.role} (${identity.tokenId})` : "open (no token file)"}
            {identity.role === "viewer" && <span className="badge">read-only</span>}
            {identity.auth && (
              <button type="button" className="link" onClick={logout}>
                Log out
              </button>
            )}
          </span>
        </header>
        <main>
          <View />
        </main>
      </RouterProvider>
    </IdentityContext.Provider>
  );
}
