// The Connect clients of every wsgate.v1 service, generated from proto/ (src/gen), over the admin
// port this page was served from. The token lives in sessionStorage (this tab only) and is sent
// in the Authorization header: no cookie, so another site cannot make the browser act for the
// operator.
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { InventoryService } from "./gen/wsgate/v1/inventory_service_pb";
import { LimitService } from "./gen/wsgate/v1/limit_service_pb";
import { RouteService } from "./gen/wsgate/v1/route_service_pb";
import { SessionService } from "./gen/wsgate/v1/session_service_pb";

const TOKEN_KEY = "wsgate.token";

export function getToken(): string {
  return sessionStorage.getItem(TOKEN_KEY) ?? "";
}

export function setToken(token: string) {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

const auth: Interceptor = (next) => async (req) => {
  const token = getToken();
  if (token) req.header.set("Authorization", `Bearer ${token}`);
  return next(req);
};

const transport = createConnectTransport({
  baseUrl: window.location.origin,
  interceptors: [auth],
});

export const routeClient = createClient(RouteService, transport);
export const limitClient = createClient(LimitService, transport);
export const sessionClient = createClient(SessionService, transport);
export const inventoryClient = createClient(InventoryService, transport);

export interface Identity {
  role: "admin" | "viewer";
  tokenId: string;
  auth: boolean; // false: the server has no token file (open)
}

// Who `token` is; null when the server refuses it.
export async function whoami(token: string): Promise<Identity | null> {
  const headers: Record<string, string> = {};
  if (token) headers["Authorization"] = `Bearer ${token}`;
  const r = await fetch("/api/whoami", { headers });
  if (r.status === 401) return null;
  if (!r.ok) throw new Error(`whoami: HTTP ${r.status}`);
  return (await r.json()) as Identity;
}

// "route.path: 'x': must start with '/'" -> { field: "route.path", message: ... }
export interface FieldError {
  field: string;
  message: string;
}

export function fieldError(err: unknown): FieldError | null {
  const e = ConnectError.from(err);
  if (e.code !== Code.InvalidArgument) return null;
  const m = /^([a-z_][a-z0-9_.[\]]*): (.*)$/s.exec(e.rawMessage);
  return m ? { field: m[1], message: m[2] } : null;
}

export function errorText(err: unknown): string {
  const e = ConnectError.from(err);
  return `${Code[e.code] ?? "error"}: ${e.rawMessage}`;
}

export { Code, ConnectError };
