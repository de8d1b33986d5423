import { useEffect, useRef, useState } from "react";
import { useCanWrite } from "../App";
import { Code, ConnectError, errorText, fieldError, routeClient, type FieldError } from "../api";
import type { Route } from "../gen/wsgate/v1/config_pb";
import { Link, navigate } from "../router";
import { fromRoute, KINDS, RouteForm, toRoute, type RouteFormValue } from "./routeForm";
import { offsetOf, RouteTextError, routeFromJsonText, routeFromYamlText, routeToJsonText,
         routeToYamlText } from "./routeText";

type Mode = "form" | "json" | "yaml";
const MODES: { mode: Mode; label: string }[] = [
  { mode: "form", label: "Form" }, { mode: "json", label: "JSON" }, { mode: "yaml", label: "YAML" }];

export function RouteDetail({ name }: { name: string }) {
  const canWrite = useCanWrite();
  // `route` is the stored route (its version is the one a save expects); `draft` is the route
  // being edited, the base of the form (fields the form lacks come from it) and of both texts.
  const [route, setRoute] = useState<Route | null>(null);
  const [draft, setDraft] = useState<Route | null>(null);
  const [form, setForm] = useState<RouteFormValue | null>(null);
  const [json, setJson] = useState("");
  const [yaml, setYaml] = useState("");
  const [mode, setMode] = useState<Mode>("form");
  const [textErr, setTextErr] = useState<RouteTextError | null>(null);
  const [fieldErr, setFieldErr] = useState<FieldError | null>(null);
  const [error, setError] = useState("");
  const [conflict, setConflict] = useState(false);
  const [saved, setSaved] = useState("");
  const editor = useRef<HTMLTextAreaElement>(null);

  const show = (r: Route) => {
    setDraft(r);
    setForm(fromRoute(r));
    setJson(routeToJsonText(r));
    setYaml(routeToYamlText(r));
  };

  const load = async () => {
    setError("");
    setConflict(false);
    setFieldErr(null);
    setTextErr(null);
    try {
      const r = await routeClient.getRoute({ name });
      setRoute(r);
      show(r);
    } catch (e) {
      setError(errorText(e));
    }
  };
  useEffect(() => { load(); }, [name]);

  // The route as the current editor has it; throws RouteTextError for a text that is not one.
  const current = (): Route => {
    if (mode === "json") return routeFromJsonText(json);
    if (mode === "yaml") return routeFromYamlText(yaml);
    return toRoute(draft!, form!);
  };

  // A syntax error puts the cursor where it is.
  const showTextError = (e: RouteTextError) => {
    setTextErr(e);
    const ta = editor.current;
    if (ta && e.line) {
      const at = offsetOf(ta.value, e.line, e.col ?? 1);
      ta.focus();
      ta.setSelectionRange(at, at);
    }
  };

  // Switching converts what is in the current editor, so nothing typed is lost; a text that is
  // not a route keeps its editor open with the error shown.
  const switchTo = (m: Mode) => {
    if (m === mode || !draft || !form) return;
    let r: Route;
    try {
      r = current();
    } catch (e) {
      if (e instanceof RouteTextError) { showTextError(e); return; }
      throw e;
    }
    setTextErr(null);
    setFieldErr(null);
    show(r);
    setMode(m);
  };

  const save = async () => {
    if (!route || !draft || !form) return;
    setFieldErr(null);
    setTextErr(null);
    setError("");
    setSaved("");
    let next: Route;
    try {
      next = current();
    } catch (e) {
      if (e instanceof RouteTextError) { showTextError(e); return; }
      throw e;
    }
    try {
      // The version we loaded: if someone changed the route since, the server refuses.
      const r = await routeClient.putRoute({ route: next, expectedVersion: route.version });
      setRoute(r.route!);
      show(r.route!);
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

  const text = mode === "json" ? json : yaml;
  const setText = mode === "json" ? setJson : setYaml;
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
            {MODES.map(({ mode: m, label }) => (
              <button key={m} role="tab" type="button" aria-selected={mode === m} onClick={() => switchTo(m)}>
                {label}
              </button>
            ))}
          </div>
          {mode === "form" ? (
            <RouteForm value={form} onChange={setForm} error={fieldErr} kinds={KINDS}
                       disabled={!canWrite} nameLocked />
          ) : (
            <>
              <label htmlFor="route-text">
                {mode === "json"
                  ? "The whole route (proto3 JSON)"
                  : "The whole route (YAML, as in the config file)"}
              </label>
              <textarea id="route-text" ref={editor} rows={18} className="code" value={text}
                        readOnly={!canWrite} spellCheck={false}
                        aria-invalid={textErr ? true : undefined}
                        aria-describedby={textErr ? "route-text-error" : undefined}
                        onChange={(e) => { setText(e.target.value); setTextErr(null); }} />
            </>
          )}
          {textErr && (
            <div role="alert" className="error" id="route-text-error">
              <p>{textErr.message}</p>
              {textErr.excerpt && <pre className="excerpt">{textErr.excerpt}</pre>}
            </div>
          )}
          {fieldErr && mode !== "form" && (
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
