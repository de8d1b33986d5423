// The form for the common fields of each route kind. Server validation errors name a field
// ("route.websocket.upstreams[0]: ..."): the message is shown under the input for that field.
import type { FieldError } from "../api";
import type { Route } from "../gen/wsgate/v1/config_pb";

export const KINDS = ["echo", "websocket", "room", "pubsub", "httpBridge", "externalClient"] as const;
export type Kind = (typeof KINDS)[number];

export interface RouteFormValue {
  name: string;
  path: string;
  kind: Kind;
  upstreams: string; // websocket: one URL per line
  targets: string; // http_bridge / external_client: allowed targets, one per line
}

export function kindOf(r: Route): string {
  return r.kind.case ?? "none";
}

export function fromRoute(r: Route): RouteFormValue {
  const v: RouteFormValue = { name: r.name, path: r.path, kind: (r.kind.case ?? "echo") as Kind, upstreams: "", targets: "" };
  if (r.kind.case === "websocket") v.upstreams = r.kind.value.upstreams.join("\n");
  if (r.kind.case === "httpBridge" || r.kind.case === "externalClient") {
    v.targets = r.kind.value.allowedTargets.join("\n");
  }
  return v;
}

const lines = (s: string) => s.split("\n").map((x) => x.trim()).filter(Boolean);

// Applies the form to `base` (a copy of the stored route, so fields the form lacks survive).
export function toRoute(base: Route, v: RouteFormValue): Route {
  const r: Route = { ...base, name: v.name.trim(), path: v.path.trim() };
  const same = base.kind.case === v.kind;
  switch (v.kind) {
    case "websocket": {
      const cur = same && base.kind.case === "websocket" ? base.kind.value : { $typeName: "wsgate.v1.WebSocketRoute", upstreams: [], forwardHeaders: [], setHeaders: {}, connectTimeoutMs: 0 };
      r.kind = { case: "websocket", value: { ...cur, upstreams: lines(v.upstreams) } as never };
      break;
    }
    case "httpBridge":
    case "externalClient": {
      const cur = same ? (base.kind.value as object) : {};
      r.kind = { case: v.kind, value: { ...cur, allowedTargets: lines(v.targets) } as never };
      break;
    }
    default:
      r.kind = { case: v.kind, value: (same ? base.kind.value : {}) as never };
  }
  return r;
}

function FieldMessage({ error, field }: { error: FieldError | null; field: string }) {
  if (!error || !(error.field === field || error.field.startsWith(field + ".") || error.field.startsWith(field + "["))) {
    return null;
  }
  return <span className="field-error" role="alert" id={`${field}-error`}>{error.field}: {error.message}</span>;
}

export function RouteForm(props: { value: RouteFormValue; onChange: (v: RouteFormValue) => void;
                                   error: FieldError | null; kinds: readonly Kind[]; disabled?: boolean;
                                   nameLocked?: boolean }) {
  const { value: v, onChange, error } = props;
  const set = (patch: Partial<RouteFormValue>) => onChange({ ...v, ...patch });
  const kindField = `route.${snake(v.kind)}`;
  return (
    <fieldset disabled={props.disabled} className="form">
      <label htmlFor="route-name">Name</label>
      <input id="route-name" value={v.name} readOnly={props.nameLocked}
             onChange={(e) => set({ name: e.target.value })} aria-describedby="route.name-error" />
      <FieldMessage error={error} field="route.name" />
      <label htmlFor="route-path">Path</label>
      <input id="route-path" value={v.path} onChange={(e) => set({ path: e.target.value })}
             aria-describedby="route.path-error" />
      <FieldMessage error={error} field="route.path" />
      <label htmlFor="route-kind">Kind</label>
      <select id="route-kind" value={v.kind} onChange={(e) => set({ kind: e.target.value as Kind })}>
        {props.kinds.map((k) => <option key={k} value={k}>{snake(k)}</option>)}
      </select>
      {v.kind === "websocket" && (
        <>
          <label htmlFor="route-upstreams">Upstreams (one ws:// or wss:// URL per line)</label>
          <textarea id="route-upstreams" rows={3} value={v.upstreams}
                    onChange={(e) => set({ upstreams: e.target.value })} />
        </>
      )}
      {(v.kind === "httpBridge" || v.kind === "externalClient") && (
        <>
          <label htmlFor="route-targets">Allowed targets (one pattern per line)</label>
          <textarea id="route-targets" rows={3} value={v.targets}
                    onChange={(e) => set({ targets: e.target.value })} />
        </>
      )}
      <FieldMessage error={error} field={kindField} />
    </fieldset>
  );
}

export function snake(k: string): string {
  return k.replace(/[A-Z]/g, (c) => "_" + c.toLowerCase());
}
