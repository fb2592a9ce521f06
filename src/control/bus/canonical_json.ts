// The canonical encoding a config snapshot is hashed and published in: JSON with every object's keys in order, no
// whitespace, `undefined` members left out. Keys come in the order JSON.stringify gives an object whose keys were
// inserted sorted: integer-like keys first, ascending, then the others by UTF-16 code units. That order is part of the
// snapshot's identity (the same resources must hash the same on every controller, whatever version wrote it), so it
// must not change; canonical_json_test.ts holds it to the JSON.stringify-with-a-replacer definition it replaced.
//
// Anything JSON cannot carry faithfully (a function, a Map, a non-finite number) is an error: a snapshot must survive
// the trip unchanged.
//
// A CanonicalEncoder also remembers the text of every object it met as an array element (a route, a cluster, a
// backend…), by identity: the controller's compiler hands it the same objects for what a change did not touch, so
// encoding 2,000 routes after a one-route change writes one route and joins the rest. The price is the rule that an
// object, once encoded, never changes — compiled sections are immutable everywhere.
import { ConfigSnapshotError } from "./config_snapshot_error.ts";

/** Canonical JSON of `value` ("null" for undefined, as the encoding of an absent snapshot would be). */
export function canonicalJson(value: unknown): string {
  return write(value, "", undefined) ?? "null";
}

export class CanonicalEncoder {
  #memo = new WeakMap<object, string>();

  encode(value: unknown): string {
    return write(value, "", this.#memo) ?? "null";
  }
}

/** Quoted keys: a snapshot repeats a few dozen keys thousands of times. */
const quoted = new Map<string, string>();
function quote(k: string): string {
  let q = quoted.get(k);
  if (q === undefined) {
    q = JSON.stringify(k);
    if (quoted.size < 10_000) quoted.set(k, q);
  }
  return q;
}

/** Array indices come first in an object's own keys, as property enumeration puts them. */
function isArrayIndex(k: string): boolean {
  const c = k.charCodeAt(0);
  if (c < 48 || c > 57) return false;
  return /^(?:0|[1-9][0-9]*)$/.test(k) && Number(k) < 4294967295;
}

/** The text of `value`, or undefined where JSON leaves a member out (undefined). */
function write(value: unknown, key: string, memo: WeakMap<object, string> | undefined): string | undefined {
  switch (typeof value) {
    case "string":
      return JSON.stringify(value);
    case "number":
      if (!Number.isFinite(value)) {
        throw new ConfigSnapshotError(`Cannot encode "${key}": ${value} is not a JSON number`);
      }
      return "" + value;
    case "boolean":
      return value ? "true" : "false";
    case "undefined":
      return undefined;
    case "function":
    case "symbol":
    case "bigint":
      throw new ConfigSnapshotError(`Cannot encode "${key}": a ${typeof value} is not plain JSON`);
  }
  if (value === null) return "null";
  const toJSON = (value as { toJSON?: unknown }).toJSON;
  if (typeof toJSON === "function") return write(toJSON.call(value, key), key, memo);
  if (Array.isArray(value)) return writeArray(value, memo);
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) {
    throw new ConfigSnapshotError(`Cannot encode "${key}": a ${proto?.constructor?.name ?? "value"} is not plain JSON`);
  }
  return writeObject(value as Record<string, unknown>, memo);
}

function writeArray(value: readonly unknown[], memo: WeakMap<object, string> | undefined): string {
  let out = "[";
  for (let i = 0; i < value.length; i++) {
    if (i > 0) out += ",";
    const item: unknown = value[i];
    if (memo !== undefined && typeof item === "object" && item !== null) {
      let text = memo.get(item);
      if (text === undefined) {
        text = write(item, String(i), memo) ?? "null";
        flatten(text);
        memo.set(item, text);
      }
      out += text;
    } else out += write(item, String(i), memo) ?? "null";
  }
  return out + "]";
}

function writeObject(record: Record<string, unknown>, memo: WeakMap<object, string> | undefined): string {
  let keys = Object.keys(record);
  if (keys.length > 0 && isArrayIndex(keys[0]!)) {
    let indices = 1;
    while (indices < keys.length && isArrayIndex(keys[indices]!)) indices++;
    keys = [...keys.slice(0, indices), ...keys.slice(indices).sort()];
  } else keys.sort();
  let out = "{";
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]!;
    const text = write(record[k], k, memo);
    if (text === undefined) continue;
    out += (out.length === 1 ? "" : ",") + quote(k) + ":" + text;
  }
  return out + "}";
}

/**
 * Makes V8 store `text` as one flat string rather than the tree of concatenations it was built as (a number
 * conversion reads it whole), so joining thousands of remembered elements later copies them instead of walking
 * every tree again.
 */
function flatten(text: string): void {
  Number(text);
}
