import { useEffect, useState } from "react";
import { fromJson, toJson } from "@bufbuild/protobuf";
import { useCanWrite } from "../App";
import { Code, ConnectError, errorText, fieldError, routeClient, type FieldError } from "../api";
import { RouteSchema, type Route } from "../gen/wsgate/v1/config_pb";
import { Link, navigate } from "../router";
import { fromRoute, KINDS, RouteForm, toRoute, type RouteFormValue } from "./routeForm";

export function RouteDetail({ name }: { name: string }) {
  const canWrite = useCanWrite();
  const [route, setRoute] = useState<Route | null>(null);
  const [form, setForm] = useState<RouteFormValue | null>(null);
  const [json, setJson] = useState("");
  const [mode, setMode] = useState<"form" | "json">("form");
  const [fieldErr, setFieldErr] = useState<FieldError | null>(null);
  const [error, setError] = useState("");
  const [conflict, setConflict] = useState(false);
  const [saved, setSaved] = useState("");

  const load = async () => {
    setError("");
    setConflict(false);
    setFieldErr(null);
    try {
      const r = await routeClient.getRoute({ name });
      setRoute(r);
      setForm(fromRoute(r));
      setJson(JSON.stringify(toJson(RouteSchema, r), null, 2));
    } catch (e) {
      setError(errorText(e));
    }
  };
  useEffect(() => { load(); }, [name]);

  const save = async () => {
    if (!route || !form) return;
    setFieldErr(null);
    setError("");
    setSaved("");
    let next: Route;
    try {
      next = mode === "form" ? toRoute(route, form) : fromJson(RouteSchema, JSON.parse(json));
    } catch (e) {
      setError(`JSON: ${String(e)}`);
      return;
    }
    try {
      // The version we loaded: if someone changed the route since, the server refuses.
      const r = await routeClient.putRoute({ route: next, expectedVersion: route.version });
      setRoute(r.route!);
      setForm(fromRoute(r.route!));
      setJson(JSON.stringify(toJson(RouteSchema, r.route!), null, 2));
      setSaved(`Saved: version ${r.route!.version}, config version ${r.configVersion}.`);
    } catch (e) {
      const ce = ConnectError.from(e);
      if (ce.code === Code.FailedPrecondition && /version/i.test(ce.rawMessage)) {
        setConflict(true);
        return;
      }
      const fe = fieldError(e);
      if (fe) setFieldErr(fe);
      else setError(errorText(e));
    }
  };

  return (
    <section aria-labelledby="route-h">
      <p><Link to="/routes">← Routes</Link></p>
      <h1 id="route-h">Route {name}</h1>
      {error && <p role="alert" className="error">{error}</p>}
      {conflict && (
        <p role="alert" className="error">
          Someone else changed this route since you loaded it.{" "}
          <button type="button" onClick={load}>Reload</button>
        </p>
      )}
      {saved && <p role="status" className="ok">{saved}</p>}
      {route && form && (
        <>
          <p>Version {route.version.toString()}</p>
          <div role="tablist" aria-label="Editor">
            <button role="tab" type="button" aria-selected={mode === "form"} onClick={() => setMode("form")}>Form</button>
            <button role="tab" type="button" aria-selected={mode === "json"} onClick={() => setMode("json")}>JSON</button>
          </div>
          {mode === "form" ? (
            <RouteForm value={form} onChange={setForm} error={fieldErr} kinds={KINDS}
                       disabled={!canWrite} nameLocked />
          ) : (
            <>
              <label htmlFor="route-json">The whole route (proto3 JSON)</label>
              <textarea id="route-json" rows={18} className="code" value={json} readOnly={!canWrite}
                        onChange={(e) => setJson(e.target.value)} />
            </>
          )}
          {fieldErr && mode === "json" && (
            <p role="alert" className="error">{fieldErr.field}: {fieldErr.message}</p>
          )}
          {fieldErr && mode === "form" && !/^route\.(name|path|websocket|http_bridge|external_client)/.test(fieldErr.field) && (
            <p role="alert" className="error">{fieldErr.field}: {fieldErr.message}</p>
          )}
          <p>
            <button type="button" onClick={save} disabled={!canWrite}>Save</button>{" "}
            <button type="button" onClick={() => navigate(`/sessions?route=${encodeURIComponent(name)}`)}>
              Sessions of this route
            </button>
          </p>
        </>
      )}
    </section>
  );
}
