// What the folder reads from the usage stream: a usage event (tollgate.usage.>), a hit event (tollgate.hits.>), a
// record to step over, or one too new for this reader (stop: skipping it would miscount).
//
// decodeUsageEvent validates with zod, which costs ~40 µs an event here: a replica could not fold 100,000 events a
// second through it. `readUsageEvent` first asks a UsageEventReader (one pass over the bytes, no JSON.parse), then
// checks the same schema by hand on the parsed JSON, and on any doubt asks decodeUsageEvent, so it accepts nothing the
// schema refuses (aggregator_test and usage_event_reader_test check that they agree) and reports the schema's own
// errors.
import { decodeHitEvent, HIT_SUBJECT_PREFIX, type HitEvent, HitEventVersionError } from "../../usage/hit_event.ts";
import {
  decodeUsageEvent,
  USAGE_EVENT_VERSION,
  type UsageEvent,
  UsageEventError,
  UsageEventVersionError,
} from "../../usage/usage_event.ts";
import { isReservationId } from "../../usage/reservation.ts";
import { UsageEventReader } from "../../usage/usage_event_reader.ts";

export const USAGE_SUBJECT_PREFIX = "tollgate.usage";

export type DecodedRecord =
  /** timeMs: the event's time in epoch ms (Date.parse of `time`). */
  | { readonly kind: "usage"; readonly event: UsageEvent; readonly timeMs: number }
  | { readonly kind: "hit"; readonly hit: HitEvent }
  | { readonly kind: "skip"; readonly reason: "unreadable" | "subject"; readonly error?: Error }
  | { readonly kind: "tooNew"; readonly error: Error };

const usagePrefix = `${USAGE_SUBJECT_PREFIX}.`;
const hitPrefix = `${HIT_SUBJECT_PREFIX}.`;
const decoder = new TextDecoder();
const defaultReader = new UsageEventReader();

/** `reader` remembers the strings it met (the folder keeps one per replica). */
export function decodeRecord(subject: string, data: Uint8Array, reader = defaultReader): DecodedRecord {
  if (subject.startsWith(usagePrefix)) {
    const fast = reader.read(data);
    if (fast) return { kind: "usage", event: fast, timeMs: reader.timeMs };
    const event = readUsageEvent(data, null);
    if (!(event instanceof Error)) return { kind: "usage", event, timeMs: Date.parse(event.time) };
    return event instanceof UsageEventVersionError
      ? { kind: "tooNew", error: event }
      : { kind: "skip", reason: "unreadable", error: event };
  }
  if (subject.startsWith(hitPrefix)) {
    const hit = decodeHitEvent(data);
    if (!(hit instanceof Error)) return { kind: "hit", hit };
    return hit instanceof HitEventVersionError
      ? { kind: "tooNew", error: hit }
      : { kind: "skip", reason: "unreadable", error: hit };
  }
  return { kind: "skip", reason: "subject" };
}

/** decodeUsageEvent's answer, faster for the events that are valid. With a null reader, JSON.parse and a check by
 * hand come first. */
export function readUsageEvent(
  bytes: Uint8Array,
  reader: UsageEventReader | null = defaultReader,
): UsageEvent | UsageEventError {
  const fast = reader?.read(bytes);
  if (fast) return fast;
  // The non-fatal decoder takes Deno's fast UTF-8 path; a replacement character means the bytes may not be UTF-8
  // (which decodeUsageEvent refuses), so that rare case goes the slow way.
  const text = decoder.decode(bytes);
  if (text.includes("\uFFFD")) return slowly(bytes);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return slowly(bytes);
  }
  return isUsageEventV1(json) ? json : slowly(bytes);
}

/** decodeUsageEvent, which throws for a `time` that is not a date at all (its round-trip refine calls toISOString on
 * an invalid Date): one bad record must not stop the fold. */
function slowly(bytes: Uint8Array): UsageEvent | UsageEventError {
  try {
    return decodeUsageEvent(bytes);
  } catch (cause) {
    return new UsageEventError(`Cannot decode usage event: ${(cause as Error).message}`, { cause });
  }
}

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const EVENT_KEYS = new Set([
  "v",
  "id",
  "time",
  "route",
  "backend",
  "models",
  "tokens",
  "costs",
  "descriptors",
  "status",
  "latencyMs",
  "ttftMs",
  "stream",
  "tenant",
  "reservation",
]);
const TOKEN_KEYS = new Set([
  "inputTokens",
  "outputTokens",
  "totalTokens",
  "cachedInputTokens",
  "cacheCreationInputTokens",
  "reasoningTokens",
]);
const MAX_HITS_ADDEND = 1_000_000_000;

type Obj = Record<string, unknown>;

/** usage_event.ts's schema, by hand. False means "not sure", never "certainly invalid". */
function isUsageEventV1(x: unknown): x is UsageEvent {
  if (!isObject(x)) return false;
  for (const k in x) if (!EVENT_KEYS.has(k)) return false;
  if (x.v !== USAGE_EVENT_VERSION) return false;
  if (typeof x.id !== "string" || !UUID_V7.test(x.id)) return false;
  if (!isTime(x.time) || !isName(x.route) || !optional(x, "backend", isName) || !optional(x, "tenant", isName)) {
    return false;
  }
  if (!optional(x, "reservation", isReservationId)) {
    return false;
  }
  if (!isModels(x.models) || !isTokens(x.tokens) || !isCosts(x.costs)) return false;
  if (!Array.isArray(x.descriptors) || !x.descriptors.every(isDescriptor)) return false;
  if (!Number.isSafeInteger(x.status) || (x.status as number) < 100 || (x.status as number) > 599) return false;
  if (!isMillis(x.latencyMs) || !optional(x, "ttftMs", isMillis) || typeof x.stream !== "boolean") return false;
  return x.stream || !("ttftMs" in x);
}

function isModels(x: unknown): boolean {
  if (!isObject(x)) return false;
  for (const k in x) if (k !== "requested" && k !== "overridden" && k !== "responded") return false;
  return isName(x.requested) && optional(x, "overridden", isName) && optional(x, "responded", isName);
}

function isTokens(x: unknown): boolean {
  if (!isObject(x)) return false;
  for (const k in x) if (!TOKEN_KEYS.has(k) || !isCount(x[k])) return false;
  return true;
}

function isCosts(x: unknown): boolean {
  if (!isObject(x)) return false;
  for (const k in x) if (k === "" || !isCount(x[k])) return false;
  return true;
}

function isDescriptor(x: unknown): boolean {
  if (!isObject(x)) return false;
  for (const k in x) {
    if (k !== "domain" && k !== "entries" && k !== "hitsAddend" && k !== "hitsAddendFrom" && k !== "reserved") {
      return false;
    }
  }
  if (!isName(x.domain) || !Array.isArray(x.entries) || x.entries.length === 0) return false;
  for (const e of x.entries) {
    if (!isObject(e) || !isName(e.key) || typeof e.value !== "string") return false;
    for (const k in e) if (k !== "key" && k !== "value") return false;
  }
  const addend = (v: unknown) => isCount(v) && (v as number) <= MAX_HITS_ADDEND;
  if (!optional(x, "hitsAddend", addend) || !optional(x, "hitsAddendFrom", isName)) return false;
  if (!optional(x, "reserved", addend)) return false;
  return !("hitsAddend" in x && "hitsAddendFrom" in x);
}

function isObject(x: unknown): x is Obj {
  // JSON.parse makes plain objects only; a "__proto__" key becomes an own property and fails the key checks.
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function optional(o: Obj, key: string, check: (v: unknown) => boolean): boolean {
  return !(key in o) || check(o[key]);
}

function isName(x: unknown): boolean {
  return typeof x === "string" && x.length > 0;
}

function isCount(x: unknown): boolean {
  return Number.isSafeInteger(x) && (x as number) >= 0;
}

function isMillis(x: unknown): boolean {
  return typeof x === "number" && Number.isFinite(x) && x >= 0;
}

/**
 * The canonical form z.iso.datetime({ precision: 3 }) plus the round-trip refine accept: YYYY-MM-DDTHH:MM:SS.sssZ with
 * a real calendar date. Read digit by digit: Date.parse + toISOString cost more than the rest of the check.
 */
function isTime(x: unknown): boolean {
  if (typeof x !== "string" || x.length !== 24) return false;
  for (let i = 0; i < 24; i++) {
    const c = x.charCodeAt(i);
    const want = TIME_SHAPE.charCodeAt(i);
    if (want === 100 /* d */ ? c < 48 || c > 57 : c !== want) return false;
  }
  const n = (from: number, to: number) => Number(x.slice(from, to));
  const [year, month, day] = [n(0, 4), n(5, 7), n(8, 10)];
  if (month < 1 || month > 12 || day < 1 || n(11, 13) > 23 || n(14, 16) > 59 || n(17, 19) > 59) return false;
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  return day <= (month === 2 ? (leap ? 29 : 28) : DAYS_IN_MONTH[month - 1]!);
}

const TIME_SHAPE = "dddd-dd-ddTdd:dd:dd.dddZ";
const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
