// Node's strict assertions (Deno implements node:assert), under the names our tests use.
import assertModule from "node:assert/strict";

export function assert(value: unknown, message?: string): asserts value {
  if (message === undefined) assertModule.ok(value);
  else assertModule.ok(value, message);
}
export function assertEquals<T>(actual: unknown, expected: T, message?: string): asserts actual is T {
  if (message === undefined) assertModule.deepStrictEqual(actual, expected);
  else assertModule.deepStrictEqual(actual, expected, message);
}
export function assertMatch(actual: string, re: RegExp): void {
  assertModule.match(actual, re);
}
