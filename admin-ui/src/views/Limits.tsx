import { useEffect, useState } from "react";
import { useCanWrite } from "../App";
import { errorText, fieldError, limitClient } from "../api";
import type { Limits as LimitsMsg } from "../gen/wsgate/v1/config_pb";
import type { GetLimitsResponse, UpdateLimitsResponse } from "../gen/wsgate/v1/limit_service_pb";
import { snake } from "./routeForm";

// The numeric limits an operator edits in place (the enums stay in the route's JSON).
const FIELDS = ["maxMessageBytes", "messagesPerSecond", "messageBurst", "maxConnections",
  "maxConnectionsPerClient", "maxConnectionsPerAddress", "handshakesPerSecond", "idleTimeoutMs",
  "maxLifetimeMs", "sendQueueBytes", "pingIntervalMs", "pingTimeoutMs"] as const;
type Field = (typeof FIELDS)[number];
const BIG = new Set<Field>(["maxMessageBytes", "sendQueueBytes"]);

function LimitRow(props: { level: string; label: string; configured?: LimitsMsg; effective?: LimitsMsg;
                           onSaved: () => void }) {
  const canWrite = useCanWrite();
  const [edit, setEdit] = useState<Partial<Record<Field, string>>>({});
  const [result, setResult] = useState<UpdateLimitsResponse | null>(null);
  const [error, setError] = useState("");
  const save = async () => {
    setError("");
    setResult(null);
    const limits: Record<string, unknown> = {};
    const paths: string[] = [];
    for (const [f, v] of Object.entries(edit) as [Field, string][]) {
      limits[f] = BIG.has(f) ? BigInt(v || "0") : Number(v || "0");
      paths.push(snake(f));
    }
    if (paths.length === 0) return;
    try {
      const r = await limitClient.updateLimits({ route: props.level, limits, updateMask: { paths } });
      setResult(r);
      setEdit({});
      props.onSaved();
    } catch (e) {
      const fe = fieldError(e);
      setError(fe ? `${fe.field}: ${fe.message}` : errorText(e));
    }
  };
  const id = props.level || "defaults";
  return (
    <fieldset className="card limits" aria-label={`Limits of ${props.label}`}>
      <legend>{props.label}</legend>
      <div className="limit-grid">
        {FIELDS.map((f) => {
          const configured = props.configured ? String(props.configured[f]) : "0";
          const effective = props.effective ? String(props.effective[f]) : "";
          return (
            <label key={f}>
              <span>{snake(f)}</span>
              <input data-testid={`${id}-${f}`} inputMode="decimal" disabled={!canWrite}
                     value={edit[f] ?? configured}
                     onChange={(e) => setEdit({ ...edit, [f]: e.target.value })} />
              {effective && effective !== configured && <small>effective {effective}</small>}
            </label>
          );
        })}
      </div>
      <button type="button" disabled={!canWrite || Object.keys(edit).length === 0} onClick={save}
              aria-label={`Save limits of ${props.label}`}>Save</button>
      {error && <p role="alert" className="error">{error}</p>}
      {result && (
        <p role="status" className="ok">
          Live on open connections: {result.appliedToOpenConnections.join(", ") || "none"}.
          New connections only: {result.appliedToNewConnectionsOnly.join(", ") || "none"}.
        </p>
      )}
    </fieldset>
  );
}

export function Limits() {
  const [limits, setLimits] = useState<GetLimitsResponse | null>(null);
  const [error, setError] = useState("");
  const load = async () => {
    try {
      setLimits(await limitClient.getLimits({}));
    } catch (e) {
      setError(errorText(e));
    }
  };
  useEffect(() => { load(); }, []);
  return (
    <section aria-labelledby="limits-h">
      <h1 id="limits-h">Limits</h1>
      <p>0 means "not set here" (the defaults, then the built-in value apply). Where a route inherits, its
        effective value is shown under the field.</p>
      {error && <p role="alert" className="error">{error}</p>}
      {limits && (
        <>
          <LimitRow level="" label="defaults" configured={limits.defaults} onSaved={load} />
          {limits.routes.map((r) => (
            <LimitRow key={r.route} level={r.route} label={r.route} configured={r.configured}
                      effective={r.effective} onSaved={load} />
          ))}
        </>
      )}
    </section>
  );
}
