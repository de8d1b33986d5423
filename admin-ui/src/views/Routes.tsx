import { useState, type FormEvent } from "react";
import { create } from "@bufbuild/protobuf";
import { useCanWrite } from "../App";
import { errorText, fieldError, inventoryClient, routeClient, type FieldError } from "../api";
import type { RouteInventory } from "../gen/wsgate/v1/inventory_service_pb";
import { RouteSchema, type Route } from "../gen/wsgate/v1/config_pb";
import { Link, navigate } from "../router";
import { fmtRate, usePoll } from "./util";
import { KINDS, kindOf, RouteForm, type RouteFormValue, toRoute } from "./routeForm";

export function Routes() {
  const canWrite = useCanWrite();
  const [routes, setRoutes] = useState<Route[]>([]);
  const [stats, setStats] = useState<Map<string, RouteInventory>>(new Map());
  const [error, setError] = useState("");
  const [adding, setAdding] = useState(false);
  const [confirm, setConfirm] = useState<string | null>(null);
  const load = async () => {
    try {
      const [r, inv] = await Promise.all([routeClient.listRoutes({}), inventoryClient.getInventory({})]);
      setRoutes(r.routes);
      setStats(new Map(inv.routes.map((x) => [x.route, x])));
    } catch (e) {
      setError(errorText(e));
    }
  };
  usePoll(load, 2000, []);
  const remove = async (name: string) => {
    setConfirm(null);
    try {
      await routeClient.deleteRoute({ name });
      await load();
    } catch (e) {
      setError(errorText(e));
    }
  };
  return (
    <section aria-labelledby="routes-h">
      <h1 id="routes-h">Routes</h1>
      {error && <p role="alert" className="error">{error}</p>}
      <table aria-label="Routes">
        <thead>
          <tr><th>name</th><th>kind</th><th>path</th><th>active</th><th>msgs/s in</th>
            <th>msgs/s out</th><th>version</th><th><span className="sr-only">actions</span></th></tr>
        </thead>
        <tbody>
          {routes.map((r) => {
            const s = stats.get(r.name);
            return (
              <tr key={r.name}>
                <td><Link to={`/routes/${encodeURIComponent(r.name)}`}>{r.name}</Link></td>
                <td>{kindOf(r)}</td>
                <td><code>{r.path}</code></td>
                <td>{s ? s.activeConnections.toString() : "0"}</td>
                <td>{fmtRate(s?.last10s?.messagesInPerSecond ?? 0)}</td>
                <td>{fmtRate(s?.last10s?.messagesOutPerSecond ?? 0)}</td>
                <td>{r.version.toString()}</td>
                <td>
                  {confirm === r.name ? (
                    <span role="group" aria-label={`Confirm deleting ${r.name}`}>
                      Delete {r.name}?{" "}
                      <button type="button" className="danger" onClick={() => remove(r.name)}>Yes, delete</button>{" "}
                      <button type="button" onClick={() => setConfirm(null)}>Cancel</button>
                    </span>
                  ) : (
                    <button type="button" disabled={!canWrite} onClick={() => setConfirm(r.name)}
                            aria-label={`Delete ${r.name}`}>Delete</button>
                  )}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      {adding ? <AddRoute onDone={() => { setAdding(false); load(); }} /> : (
        <button type="button" disabled={!canWrite} onClick={() => setAdding(true)}>Add route</button>
      )}
    </section>
  );
}

function AddRoute({ onDone }: { onDone: () => void }) {
  const [value, setValue] = useState<RouteFormValue>({ name: "", path: "/", kind: "echo", upstreams: "", targets: "" });
  const [err, setErr] = useState<FieldError | null>(null);
  const [error, setError] = useState("");
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setErr(null);
    setError("");
    try {
      // expectedVersion 0: the route must not exist yet.
      await routeClient.putRoute({ route: toRoute(create(RouteSchema), value), expectedVersion: 0n });
      onDone();
      navigate(`/routes/${encodeURIComponent(value.name)}`);
    } catch (ex) {
      const fe = fieldError(ex);
      if (fe) setErr(fe);
      else setError(errorText(ex));
    }
  };
  return (
    <form onSubmit={submit} aria-label="New route" className="card">
      <h2>New route</h2>
      <RouteForm value={value} onChange={setValue} error={err} kinds={KINDS} />
      {err && !["route.name", "route.path"].some((f) => err.field.startsWith(f)) &&
        !err.field.startsWith("route.") && <p role="alert" className="error">{err.field}: {err.message}</p>}
      {error && <p role="alert" className="error">{error}</p>}
      <button type="submit">Create</button>{" "}
      <button type="button" onClick={onDone}>Cancel</button>
    </form>
  );
}
