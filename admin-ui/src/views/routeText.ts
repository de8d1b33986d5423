// A route as text: proto3 JSON (lowerCamelCase, as the JSON editor always showed it) or YAML in
// the gateway's config format (the protobuf JSON mapping written as YAML, snake_case names as in
// the config files; the server's loader takes lowerCamelCase too, and so does fromJson here).
// Unknown fields and wrong types are refused by fromJson before anything is sent.
import { fromJson, toJson, type JsonValue } from "@bufbuild/protobuf";
import { parse as parseYaml, stringify as stringifyYaml, YAMLParseError } from "yaml";
import { RouteSchema, type Route } from "../gen/wsgate/v1/config_pb";

// Why a text is not a route. `line`/`col` (1-based) are set for a syntax error.
export class RouteTextError extends Error {
  constructor(message: string, readonly line?: number, readonly col?: number, readonly excerpt?: string) {
    super(message);
    this.name = "RouteTextError";
  }
}

export function routeToJsonText(r: Route): string {
  return JSON.stringify(toJson(RouteSchema, r), null, 2);
}

export function routeToYamlText(r: Route): string {
  return stringifyYaml(toJson(RouteSchema, r, { useProtoFieldName: true }));
}

export function routeFromJsonText(text: string): Route {
  let json: JsonValue;
  try {
    json = JSON.parse(text) as JsonValue;
  } catch (e) {
    throw new RouteTextError(`JSON syntax error: ${e instanceof Error ? e.message : String(e)}`);
  }
  return decode(json);
}

export function routeFromYamlText(text: string): Route {
  let value: unknown;
  try {
    // Integers as BigInt, so a uint64 above 2^53 keeps its digits (see plain() below).
    value = parseYaml(text, { intAsBigInt: true });
  } catch (e) {
    if (e instanceof YAMLParseError) {
      const at = e.linePos?.[0];
      // The package's message ends with " at line L, column C:" and a caret excerpt.
      const [head, ...rest] = e.message.split("\n");
      const what = head.replace(/ at line \d+, column \d+:?$/, "");
      const excerpt = rest.join("\n").replace(/^\n+|\n+$/g, "");
      throw new RouteTextError(
        at ? `YAML syntax error at line ${at.line}, column ${at.col}: ${what}` : `YAML syntax error: ${what}`,
        at?.line, at?.col, excerpt || undefined);
    }
    throw new RouteTextError(`YAML: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (value === null || value === undefined) {
    throw new RouteTextError("The YAML is empty: a route is a mapping (name, path, its kind and more)");
  }
  return decode(plain(value));
}

function decode(json: JsonValue): Route {
  try {
    return fromJson(RouteSchema, json);
  } catch (e) {
    // e.g. 'cannot decode message wsgate.v1.Route from JSON: key "bogus" is unknown'
    throw new RouteTextError(`Not a valid route: ${e instanceof Error ? e.message : String(e)}`);
  }
}

// YAML values as JSON values: integers back to numbers while exact, to decimal strings (which
// the protobuf JSON mapping accepts for 64-bit integers) beyond that.
function plain(v: unknown): JsonValue {
  if (typeof v === "bigint") {
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
  }
  if (Array.isArray(v)) return v.map(plain);
  if (v !== null && typeof v === "object") {
    const o: { [k: string]: JsonValue } = {};
    for (const [k, x] of Object.entries(v)) o[k] = plain(x);
    return o;
  }
  return v as JsonValue;
}

// The offset in `text` of a 1-based line and column (to put the cursor at a syntax error).
export function offsetOf(text: string, line: number, col: number): number {
  let off = 0;
  for (let i = 1; i < line; i++) {
    const nl = text.indexOf("\n", off);
    if (nl < 0) return text.length;
    off = nl + 1;
  }
  return Math.min(off + col - 1, text.length);
}
