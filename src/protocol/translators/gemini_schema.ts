// JSON Schema, as OpenAI clients send it for tool parameters and response_format, to Vertex AI's Schema: "a select
// subset of an OpenAPI 3.0 schema object" (https://cloud.google.com/vertex-ai/docs/reference/rest/v1/Schema).
// Keywords that only annotate, or only widen what is allowed, are dropped: the model's output still satisfies the
// client's schema. Keywords that narrow it and have no Vertex equivalent are refused (422), so a client never gets
// output that breaks its schema without being told.
import { BACKEND_NAME, isObject, type JsonObject, unsupported } from "./gemini_request_fields.ts";

const KEPT = new Set([
  "format",
  "title",
  "description",
  "nullable",
  "default",
  "example",
  "required",
  "minItems",
  "maxItems",
  "minProperties",
  "maxProperties",
  "minLength",
  "maxLength",
  "pattern",
  "minimum",
  "maximum",
  "propertyOrdering",
]);

const DROPPED = new Set([
  "$schema",
  "$id",
  "$comment",
  "$defs",
  "definitions",
  "examples",
  "deprecated",
  "readOnly",
  "writeOnly",
  "contentEncoding",
  "contentMediaType",
  // Widening only: Gemini writes the declared properties, which every additionalProperties value allows.
  "additionalProperties",
]);

const TYPES = new Map([
  ["string", "STRING"],
  ["number", "NUMBER"],
  ["integer", "INTEGER"],
  ["boolean", "BOOLEAN"],
  ["array", "ARRAY"],
  ["object", "OBJECT"],
  ["null", "NULL"],
]);

/** Deep enough for real schemas; a deeper one is refused instead of exhausting the stack. */
const MAX_DEPTH = 48;

interface Walk {
  readonly root: JsonObject;
  readonly resolving: ReadonlySet<string>;
  readonly depth: number;
}

/** `param` names the schema in errors ("tools[0].function.parameters"). */
export function toVertexSchema(schema: JsonObject, param: string): Record<string, unknown> {
  return convert(schema, param, { root: schema, resolving: new Set(), depth: 0 });
}

function refuse(param: string, why: string): never {
  unsupported(`'${param}' ${why}, which the ${BACKEND_NAME} schema cannot express`, param);
}

function convert(s: JsonObject, param: string, w: Walk): Record<string, unknown> {
  if (w.depth > MAX_DEPTH) refuse(param, `nests deeper than ${MAX_DEPTH} levels`);
  const inner = { ...w, depth: w.depth + 1 };
  let out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(s)) {
    const at = `${param}.${key}`;
    if (KEPT.has(key)) out[key] = value;
    else if (DROPPED.has(key)) continue;
    else if (key === "type") out = { ...out, ...convertType(value, at) };
    else if (key === "enum" || key === "const") out = { ...out, ...convertEnum(key === "enum" ? value : [value], at) };
    else if (key === "items") out.items = convert(schemaAt(value, at), at, inner);
    else if (key === "properties") out.properties = convertProperties(value, at, inner);
    else if (key === "anyOf") out = { ...out, ...convertAnyOf(value, at, inner) };
    else if (key === "allOf") out = { ...out, ...convertAllOf(value, at, inner) };
    else if (key === "$ref") out = { ...out, ...convertRef(value, at, inner) };
    else refuse(param, `uses the keyword '${key}'`);
  }
  return out;
}

function schemaAt(v: unknown, param: string): JsonObject {
  if (!isObject(v)) refuse(param, "is not a schema object");
  return v;
}

function convertType(v: unknown, param: string): Record<string, unknown> {
  const names = Array.isArray(v) ? v : [v];
  const types = names.map((n) => (typeof n === "string" ? TYPES.get(n) : undefined));
  if (types.length === 0 || types.some((t) => t === undefined)) refuse(param, "is not a JSON Schema type");
  const nullable = types.length > 1 && types.includes("NULL");
  const rest = nullable ? types.filter((t) => t !== "NULL") : types;
  const typed = rest.length === 1 ? { type: rest[0] } : { anyOf: rest.map((t) => ({ type: t })) };
  return nullable ? { ...typed, nullable: true } : typed;
}

/** Vertex enums are strings only; a null among the values becomes nullable. */
function convertEnum(v: unknown, param: string): Record<string, unknown> {
  if (!Array.isArray(v)) refuse(param, "is not an array of values");
  const values = v.filter((x) => x !== null);
  if (!values.every((x) => typeof x === "string")) refuse(param, "lists values that are not strings");
  return values.length < v.length ? { enum: values, nullable: true } : { enum: values };
}

function convertProperties(v: unknown, param: string, w: Walk): Record<string, unknown> {
  if (!isObject(v)) refuse(param, "is not an object of schemas");
  const out: Record<string, unknown> = {};
  for (const [name, sub] of Object.entries(v)) {
    Object.defineProperty(out, name, {
      value: convert(schemaAt(sub, `${param}.${name}`), `${param}.${name}`, w),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

/** Pydantic's Optional[X] is anyOf [X, {type: null}]: that becomes X with nullable. */
function convertAnyOf(v: unknown, param: string, w: Walk): Record<string, unknown> {
  if (!Array.isArray(v) || v.length === 0) refuse(param, "is not a non-empty array of schemas");
  const isNull = (x: unknown) => isObject(x) && x.type === "null" && Object.keys(x).length === 1;
  const rest = v.filter((x) => !isNull(x));
  const nullable = rest.length < v.length ? { nullable: true } : {};
  if (rest.length === 0) return { type: "NULL" };
  if (rest.length === 1) return { ...convert(schemaAt(rest[0], `${param}[0]`), `${param}[0]`, w), ...nullable };
  return { anyOf: rest.map((x, i) => convert(schemaAt(x, `${param}[${i}]`), `${param}[${i}]`, w)), ...nullable };
}

/** One-element allOf is how generators attach a description to a $ref; more than one is an intersection. */
function convertAllOf(v: unknown, param: string, w: Walk): Record<string, unknown> {
  if (!Array.isArray(v) || v.length !== 1) refuse(param, "is an intersection of several schemas");
  return convert(schemaAt(v[0], `${param}[0]`), `${param}[0]`, w);
}

/** Local references are inlined; a recursive one cannot be. */
function convertRef(v: unknown, param: string, w: Walk): Record<string, unknown> {
  const match = typeof v === "string" ? /^#\/(\$defs|definitions)\/([^/]+)$/.exec(v) : null;
  if (!match) refuse(param, "is a reference outside this schema's $defs");
  const [ref, section, name] = match;
  if (w.resolving.has(ref)) refuse(param, `is a recursive reference to ${ref}`);
  const defs = w.root[section!];
  const target = isObject(defs) && Object.hasOwn(defs, name!) ? defs[name!] : undefined;
  if (target === undefined) refuse(param, `refers to ${ref}, which is not defined`);
  return convert(schemaAt(target, param), param, { ...w, resolving: new Set([...w.resolving, ref]) });
}
