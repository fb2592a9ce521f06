// What one compile may take from the previous one. The controller recompiles everything on every change, but the
// loader hands back the very same resource objects for every file whose text did not change, so a route whose own
// object and every resource it read (its backends, their Backends, the policies and Gateways that attach to it) are
// the same objects as last time compiles to the same result: that result is reused, object for object. Reusing the
// objects matters beyond the compile: the snapshot encoder remembers their text by identity (canonical_json.ts), so a
// one-route change re-encodes one route. A change elsewhere that a route did read (a policy added to its Gateway, a
// Backend edited) shows as a read that now returns something else, and the route compiles again.
//
// Results are kept by the identity of their key resource in WeakMaps: when a file changes, its old resource objects
// become unreachable and their entries go with them.
import { canonicalJson } from "../bus/canonical_json.ts";
import type { ResourceError } from "../resources/errors.ts";
import type { ResourceLookup } from "../resources/references.ts";

type Read =
  | { readonly op: "get"; readonly kind: string; readonly namespace: string; readonly name: string; seen: unknown }
  | { readonly op: "list"; readonly kind: string; readonly seen: readonly unknown[] }
  | { readonly op: "targeting"; readonly namespace: string; readonly name: string; readonly seen: unknown };

interface Entry {
  readonly inputs: readonly unknown[];
  readonly reads: readonly Read[];
  readonly value: unknown;
  readonly errors: readonly ResourceError[];
}

/** Passes lookups through to `inner`, noting each one and what it returned. */
function recording(inner: ResourceLookup, reads: Read[]): ResourceLookup {
  return {
    get: ((kind: string, namespace: string, name: string) => {
      const seen = inner.get(kind as never, namespace, name);
      reads.push({ op: "get", kind, namespace, name, seen });
      return seen;
    }) as ResourceLookup["get"],
    list: ((kind: string) => {
      const seen = inner.list(kind as never);
      reads.push({ op: "list", kind, seen: [...seen] });
      return seen;
    }) as ResourceLookup["list"],
    securityPolicyTargeting: (namespace, name) => {
      const seen = inner.securityPolicyTargeting(namespace, name);
      reads.push({ op: "targeting", namespace, name, seen });
      return seen;
    },
  };
}

function stillReads(index: ResourceLookup, read: Read): boolean {
  switch (read.op) {
    case "get":
      return index.get(read.kind as never, read.namespace, read.name) === read.seen;
    case "list": {
      const now = index.list(read.kind as never);
      return now.length === read.seen.length && now.every((r, i) => r === read.seen[i]);
    }
    case "targeting":
      return index.securityPolicyTargeting(read.namespace, read.name) === read.seen;
  }
}

export class CompileMemo {
  readonly #tables = new Map<string, WeakMap<object, Entry>>();
  readonly #stable = new Map<string, { readonly text: string; readonly value: unknown }>();

  /**
   * `compute(lookup, errors)` for `key`, or what it returned last time for the same `key` object when `inputs` are
   * the same values (by identity) and every lookup it made returns the same objects now. The errors it reported are
   * appended to `errors` either way. `table` names the computation: one key can serve several.
   */
  reuse<T>(
    table: string,
    key: object,
    index: ResourceLookup,
    inputs: readonly unknown[],
    errors: ResourceError[],
    compute: (lookup: ResourceLookup, errors: ResourceError[]) => T,
  ): T {
    let entries = this.#tables.get(table);
    if (!entries) this.#tables.set(table, entries = new WeakMap());
    const hit = entries.get(key);
    if (
      hit && hit.inputs.length === inputs.length && hit.inputs.every((v, i) => v === inputs[i]) &&
      hit.reads.every((r) => stillReads(index, r))
    ) {
      errors.push(...hit.errors);
      return hit.value as T;
    }
    const reads: Read[] = [];
    const own: ResourceError[] = [];
    const value = compute(recording(index, reads), own);
    entries.set(key, { inputs: [...inputs], reads, value, errors: own });
    errors.push(...own);
    return value;
  }

  /** `value`, or the object given under `name` last time when it has the same content (so its identity lasts). */
  stable<T>(name: string, value: T): T {
    const text = canonicalJson(value);
    const last = this.#stable.get(name);
    if (last && last.text === text) return last.value as T;
    this.#stable.set(name, { text, value });
    return value;
  }
}
