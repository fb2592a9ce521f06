// Reading the client's OpenAI body field by field for the Gemini translation. The body arrived as arbitrary JSON, so
// every read checks the type and names the field when it refuses: 400 when the value is not valid OpenAI, 422 when
// it is valid OpenAI that Vertex AI cannot express. The mapping code throws a Rejection and the translator's
// request() catches exactly that, so request() itself never throws on any body.
import type { ClientError } from "./translator.ts";

export const BACKEND_NAME = "GCP Vertex AI";

export class Rejection extends Error {
  override readonly name = "Rejection";
  constructor(readonly error: ClientError) {
    super(error.message);
  }
}

/** Not valid for the OpenAI API itself. */
export function malformed(message: string, param: string): never {
  throw new Rejection({ status: 400, message, param });
}

/** Valid OpenAI, but not expressible for Vertex AI. */
export function unsupported(message: string, param: string): never {
  throw new Rejection({ status: 422, message, param });
}

export type JsonObject = Readonly<Record<string, unknown>>;

export function isObject(v: unknown): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Own keys only: a client key named "constructor" or "__proto__" must not find anything on Object.prototype. */
export function has(o: JsonObject, key: string): boolean {
  return Object.hasOwn(o, key) && o[key] !== null && o[key] !== undefined;
}

/** The field's value; null counts as absent, as the OpenAI API treats it. */
export function get(o: JsonObject, key: string): unknown {
  return has(o, key) ? o[key] : undefined;
}

export function objectAt(v: unknown, param: string): JsonObject {
  if (!isObject(v)) malformed(`'${param}' must be an object`, param);
  return v;
}

export function arrayAt(v: unknown, param: string): readonly unknown[] {
  if (!Array.isArray(v)) malformed(`'${param}' must be an array`, param);
  return v;
}

export function stringAt(v: unknown, param: string): string {
  if (typeof v !== "string") malformed(`'${param}' must be a string`, param);
  return v;
}

export function booleanAt(v: unknown, param: string): boolean {
  if (typeof v !== "boolean") malformed(`'${param}' must be a boolean`, param);
  return v;
}

export function numberAt(v: unknown, param: string, min: number, max: number): number {
  if (typeof v !== "number" || !Number.isFinite(v) || v < min || v > max) {
    malformed(`'${param}' must be a number from ${min} to ${max}`, param);
  }
  return v;
}

export function integerAt(v: unknown, param: string, min: number): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min) {
    malformed(`'${param}' must be an integer of at least ${min}`, param);
  }
  return v;
}

/** Refuses keys outside `allowed` (null-valued keys are absent, so clients that send `"audio": null` pass). */
export function onlyKeys(o: JsonObject, allowed: ReadonlySet<string>, param: string): void {
  for (const key of Object.keys(o)) {
    if (!allowed.has(key) && o[key] !== null) {
      unsupported(`'${param}.${key}' is not supported by ${BACKEND_NAME}`, `${param}.${key}`);
    }
  }
}
