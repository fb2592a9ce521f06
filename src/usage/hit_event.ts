// The hit event: hits an aggregator replica's rate limit service added for a request-count rule (a counter no usage
// event feeds), published to JetStream so every other replica adds them too. Replicas fold hit events exactly as they
// fold usage events; the counter and its window travel in the event, computed once by the replica that answered
// Envoy, so every replica adds the hits to the same window whatever its own clock says.
//
//   { "v": 1, "id": "<UUIDv7>", "time": "2025-06-01T12:00:00.123Z", "domain": "ai-gateway",
//     "counterKey": "ai-gateway|generic_key=...", "windowId": "1748779200000/1748779260000", "n": 1,
//     "replica": "aggregator-0" }
//
// A reservation (admission by reservation, docs/rate-limiting.md) is a hit event with `reservation` (the id the
// request's usage event will carry) and `reservedUntil` (epoch ms after which the hold counts no more): folding it holds
// `n` on the counter under that id until the usage event releases it, instead of adding `n` for good.
//
// Versioning follows the usage event's rule: a reader accepts only the versions it knows and rejects unknown fields;
// an event of a newer version reads as "too new" (stop and upgrade), never as something to skip. (`reservation` and
// `reservedUntil` joined version 1 before Tollgate's first release.)
import { createHash } from "node:crypto";
import { parseWindowId, type WindowId } from "./windows.ts";
import { isReservationId } from "./reservation.ts";

export const HIT_EVENT_VERSION = 1;
/** Subjects are `<prefix>.<domain hash>`; the usage stream carries `tollgate.hits.>`. */
export const HIT_SUBJECT_PREFIX = "tollgate.hits";

export interface HitEvent {
  readonly v: 1;
  /** UUIDv7, the JetStream Nats-Msg-Id: a re-sent hit event is stored once. */
  readonly id: string;
  /** When the rate limit service added the hits, RFC 3339 in UTC with milliseconds. */
  readonly time: string;
  readonly domain: string;
  /** MatchedLimit.counterKey: the rule's counter for the request's values. */
  readonly counterKey: string;
  /** The window the hits belong to (`<start>/<end>`, epoch ms), from the answering replica's clock. */
  readonly windowId: WindowId;
  /** A positive whole number of hits. */
  readonly n: number;
  /** The replica that added the hits locally; it settles its own local count when the event comes back. */
  readonly replica: string;
  /** Set (with reservedUntil) when the hits are a reservation: the reservation id. */
  readonly reservation?: string;
  /** Epoch ms: the reservation counts no more from then on. */
  readonly reservedUntil?: number;
}

export class HitEventError extends Error {
  override readonly name: string = "HitEventError";
}

export class HitEventVersionError extends HitEventError {
  override readonly name = "HitEventVersionError";
  constructor(readonly version: number) {
    super(
      `Hit event version ${version} is newer than this reader understands (${HIT_EVENT_VERSION}): ` +
        "upgrade every aggregator replica",
    );
  }
}

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const FIELDS = new Set([
  "v",
  "id",
  "time",
  "domain",
  "counterKey",
  "windowId",
  "n",
  "replica",
  "reservation",
  "reservedUntil",
]);
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

export function encodeHitEvent(e: HitEvent): Uint8Array {
  // Fixed field order: the bytes of an event depend on its values only.
  const { v, id, time, domain, counterKey, windowId, n, replica, reservation, reservedUntil } = e;
  const fields = { v, id, time, domain, counterKey, windowId, n, replica };
  return encoder.encode(JSON.stringify(reservation === undefined ? fields : { ...fields, reservation, reservedUntil }));
}

/** The event, or why it cannot be counted. A HitEventVersionError means the reader is too old for it. */
export function decodeHitEvent(bytes: Uint8Array): HitEvent | HitEventError {
  let json: unknown;
  try {
    json = JSON.parse(decoder.decode(bytes));
  } catch (cause) {
    return new HitEventError("Cannot decode hit event: it is not UTF-8 JSON", { cause });
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    return new HitEventError("Cannot decode hit event: it is not a JSON object");
  }
  const o = json as Record<string, unknown>;
  if (typeof o.v === "number" && Number.isInteger(o.v) && o.v > HIT_EVENT_VERSION) return new HitEventVersionError(o.v);
  const problems: string[] = [];
  for (const key of Object.keys(o)) if (!FIELDS.has(key)) problems.push(`${key}: Unknown field`);
  if (o.v !== HIT_EVENT_VERSION) problems.push(`v: Expected ${HIT_EVENT_VERSION}`);
  if (typeof o.id !== "string" || !UUID_V7.test(o.id)) problems.push("id: Expected a lower-case UUIDv7");
  if (!isCanonicalTime(o.time)) problems.push("time: Expected RFC 3339 UTC with milliseconds");
  if (!isName(o.domain)) problems.push("domain: Expected a non-empty string");
  if (!isName(o.counterKey) || o.counterKey.includes("#")) problems.push("counterKey: Expected a counter key");
  if (typeof o.windowId !== "string" || !parseWindowId(o.windowId)) problems.push("windowId: Expected <start>/<end>");
  if (!Number.isSafeInteger(o.n) || (o.n as number) < 1) problems.push("n: Expected a positive whole number");
  if (!isName(o.replica)) problems.push("replica: Expected a non-empty string");
  if ((o.reservation === undefined) !== (o.reservedUntil === undefined)) {
    problems.push("reservation: Expected reservation and reservedUntil together");
  }
  if (o.reservation !== undefined && !isReservationId(o.reservation)) {
    problems.push("reservation: Expected a reservation id");
  }
  if (o.reservedUntil !== undefined && !Number.isSafeInteger(o.reservedUntil)) {
    problems.push("reservedUntil: Expected epoch milliseconds");
  }
  if (problems.length > 0) {
    const id = typeof o.id === "string" ? ` "${o.id}"` : "";
    return new HitEventError(`Cannot decode hit event${id}: ${problems.join("; ")}`);
  }
  return o as unknown as HitEvent;
}

/**
 * `<prefix>.<domain hash>`: the first 16 hex digits of the SHA-256 of the domain, so a domain with dots stays one
 * subject token (as usageEventSubject does for routes).
 */
export function hitEventSubject(domain: string, prefix = HIT_SUBJECT_PREFIX): string {
  let hash = domainHashes.get(domain);
  if (hash === undefined) {
    hash = createHash("sha256").update(domain).digest("hex").slice(0, 16);
    // Domains are few (one per rate-limit config); the bound only guards against a caller that invents them.
    if (domainHashes.size < 1024) domainHashes.set(domain, hash);
  }
  return `${prefix}.${hash}`;
}

const domainHashes = new Map<string, string>();

function isName(x: unknown): x is string {
  return typeof x === "string" && x.length > 0;
}

function isCanonicalTime(x: unknown): x is string {
  if (typeof x !== "string" || x.length !== 24) return false;
  const ms = Date.parse(x);
  return Number.isFinite(ms) && new Date(ms).toISOString() === x;
}
