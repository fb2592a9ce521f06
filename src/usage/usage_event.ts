// The usage event: one per finished request, published by the sidecar to JetStream and folded by every aggregator
// replica into rate-limit windows. It is the only thing the aggregators know about a request, so it carries exactly
// what they count: the token counts as the provider reported them, the costs, and the descriptors whose counters the
// request hits. docs/usage-event.md is the reference for every field and for the versioning rule.
//
// Versioning: a reader accepts only the versions it knows and rejects unknown fields, so any change of shape, even a
// new optional field, is a new version. An old aggregator refuses a newer event instead of folding half of it.
// (`reservation` and a descriptor's `reserved` joined version 1 before Tollgate's first release; no reader without
// them was ever shipped.)
import { createHash } from "node:crypto";
import { z } from "zod";
import type { TokenUsage } from "../protocol/usage.ts";
import { isReservationId } from "./reservation.ts";

export const USAGE_EVENT_VERSION = 1;

/** One descriptor the request counts against, as Envoy's ratelimit filter sends it on stream done. */
export interface UsageDescriptor {
  /** The rate limit service domain. */
  readonly domain: string;
  /** Outer to inner, as in the RLS request. */
  readonly entries: readonly { readonly key: string; readonly value: string }[];
  /** A fixed hits addend (the rule's cost.response Number). */
  readonly hitsAddend?: number;
  /** The hits addend is the cost under this metadataKey (cost.response Metadata, namespace io.envoy.ai_gateway); when
   * the cost is absent from `costs`, the descriptor counts nothing, as Envoy drops a descriptor whose addend does not
   * resolve. Without hitsAddend and hitsAddendFrom, the descriptor counts one hit. */
  readonly hitsAddendFrom?: string;
  /** What the sidecar asked the rate limit service to reserve on this descriptor before the request (admission by
   * reservation): informational. Folding releases what the log says was held under the event's `reservation`. */
  readonly reserved?: number;
}

export interface UsageEvent {
  readonly v: 1;
  /** UUIDv7 (RFC 9562): sorts by time, unique without coordination; the JetStream Nats-Msg-Id. */
  readonly id: string;
  /** When the response ended, RFC 3339 in UTC with milliseconds ("2025-06-01T12:00:00.123Z"). */
  readonly time: string;
  /** "namespace/name" of the AIGatewayRoute. */
  readonly route: string;
  /** "namespace/name" of the AIServiceBackend that answered the last attempt; absent when no attempt reached one. */
  readonly backend?: string;
  readonly models: {
    /** The model the client asked for. */
    readonly requested: string;
    /** The model sent upstream, when a backendRef's modelNameOverride replaced it. */
    readonly overridden?: string;
    /** The model the provider said answered, when it said. */
    readonly responded?: string;
  };
  /** As the provider reported them: an unreported count is absent, never 0. */
  readonly tokens: TokenUsage;
  /** metadataKey → cost, as written to dynamic metadata; empty unless the response was a 2xx. */
  readonly costs: Readonly<Record<string, number>>;
  readonly descriptors: readonly UsageDescriptor[];
  /** HTTP status sent to the client. */
  readonly status: number;
  /** From the request headers to the end of the response, in milliseconds. */
  readonly latencyMs: number;
  /** From the request headers to the first response body byte, streamed responses only. */
  readonly ttftMs?: number;
  readonly stream: boolean;
  /** Who the request is billed to, when configured; informational, counting uses `descriptors`. */
  readonly tenant?: string;
  /** The reservation id the sidecar gave the request (admission by reservation): folding the event releases what the
   * id holds and puts the actual costs in the window the reservation was held in. */
  readonly reservation?: string;
}

export class UsageEventError extends Error {
  override readonly name: string = "UsageEventError";
}

/** The event is of a newer version than this reader: stop and upgrade, do not skip it (skipping is miscounting). */
export class UsageEventVersionError extends UsageEventError {
  override readonly name = "UsageEventVersionError";
  constructor(readonly version: number) {
    super(
      `Usage event version ${version} is newer than this reader understands (${USAGE_EVENT_VERSION}): ` +
        "upgrade the aggregators before the sidecars",
    );
  }
}

/** Envoy's RateLimit.HitsAddend limit (also MAX_HITS_ADDEND in edge/rate_limit_descriptors.ts). */
const MAX_HITS_ADDEND = 1_000_000_000;
const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

const count = z.int().min(0);
const name = z.string().min(1);
const millis = z.number().min(0);

const descriptorSchema = z.strictObject({
  domain: name,
  entries: z.array(z.strictObject({ key: name, value: z.string() })).min(1),
  hitsAddend: z.int().min(0).max(MAX_HITS_ADDEND).exactOptional(),
  hitsAddendFrom: name.exactOptional(),
  reserved: z.int().min(0).max(MAX_HITS_ADDEND).exactOptional(),
}).refine((d) => d.hitsAddend === undefined || d.hitsAddendFrom === undefined, {
  message: "A descriptor has either hitsAddend or hitsAddendFrom, not both",
});

const usageEventSchema: z.ZodType<UsageEvent> = z.strictObject({
  v: z.literal(USAGE_EVENT_VERSION),
  id: z.string().regex(UUID_V7, "Expected a lower-case UUIDv7"),
  time: z.iso.datetime({ precision: 3 }).refine(
    (t) => !Number.isNaN(Date.parse(t)) && new Date(t).toISOString() === t,
    "Not a calendar time",
  ),
  route: name,
  backend: name.exactOptional(),
  models: z.strictObject({
    requested: name,
    overridden: name.exactOptional(),
    responded: name.exactOptional(),
  }),
  tokens: z.strictObject({
    inputTokens: count.exactOptional(),
    outputTokens: count.exactOptional(),
    totalTokens: count.exactOptional(),
    cachedInputTokens: count.exactOptional(),
    cacheCreationInputTokens: count.exactOptional(),
    reasoningTokens: count.exactOptional(),
  }),
  costs: z.record(name, count),
  descriptors: z.array(descriptorSchema),
  status: z.int().min(100).max(599),
  latencyMs: millis,
  ttftMs: millis.exactOptional(),
  stream: z.boolean(),
  tenant: name.exactOptional(),
  reservation: z.string().refine(isReservationId, "Expected a reservation id").exactOptional(),
}).refine((e) => e.stream || e.ttftMs === undefined, {
  message: "ttftMs is only for streamed responses",
  path: ["ttftMs"],
});

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

export function encodeUsageEvent(e: UsageEvent): Uint8Array {
  return encoder.encode(JSON.stringify(e));
}

/** The event, or why it cannot be counted. A UsageEventVersionError means the reader is too old for it. */
export function decodeUsageEvent(bytes: Uint8Array): UsageEvent | UsageEventError {
  let json: unknown;
  try {
    json = JSON.parse(decoder.decode(bytes));
  } catch (cause) {
    return new UsageEventError("Cannot decode usage event: it is not UTF-8 JSON", { cause });
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    return new UsageEventError("Cannot decode usage event: it is not a JSON object");
  }
  // Checked before the schema: a newer event must read as "too new", not as a list of unknown fields.
  const v = (json as { v?: unknown }).v;
  if (typeof v === "number" && Number.isInteger(v) && v > USAGE_EVENT_VERSION) return new UsageEventVersionError(v);
  const parsed = usageEventSchema.safeParse(json);
  if (parsed.success) return parsed.data;
  const id = (json as { id?: unknown }).id;
  const issues = parsed.error.issues.map((i) => `${i.path.length > 0 ? i.path.join(".") : "event"}: ${i.message}`);
  return new UsageEventError(
    `Cannot decode usage event${typeof id === "string" ? ` "${id}"` : ""}: ${issues.join("; ")}`,
    { cause: parsed.error },
  );
}

/**
 * The subject an event is published on: `<prefix>.<route hash>`, where the hash is the first 16 hex digits of the
 * SHA-256 of the route ("namespace/name"). Route names may hold dots, which NATS reads as token separators, so the
 * route is hashed into one token; consumers filter one route with its subject, or all with `<prefix>.*`.
 */
export function usageEventSubject(prefix: string, e: Pick<UsageEvent, "route">): string {
  if (!/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(prefix)) {
    throw new UsageEventError(
      `Invalid usage subject prefix "${prefix}": expected dot-separated tokens of A-Z a-z 0-9 _ -`,
    );
  }
  return `${prefix}.${createHash("sha256").update(e.route).digest("hex").slice(0, 16)}`;
}

/** The `time` of an event that ended at `epochMs` (wall clock, milliseconds since the Unix epoch). */
export function usageEventTime(epochMs: number): string {
  return new Date(Math.floor(epochMs)).toISOString();
}

/**
 * A UUIDv7 for an event that ended at `epochMs`. The 48-bit millisecond timestamp comes first, so ids sort by time;
 * the 12 bits after the version hold the fraction of the millisecond (RFC 9562 §6.2, method 3), so ids from one
 * clock sort within a millisecond too; the remaining 62 bits are random.
 */
export function usageEventId(
  epochMs: number,
  randomBytes: (into: Uint8Array) => Uint8Array = (into) => crypto.getRandomValues(into),
): string {
  if (!Number.isFinite(epochMs) || epochMs < 0 || epochMs >= 2 ** 48) {
    throw new UsageEventError(`Cannot make a usage event id for time ${epochMs}: outside the UUIDv7 range`);
  }
  const ms = Math.floor(epochMs);
  const fraction = Math.floor((epochMs - ms) * 4096);
  const b = randomBytes(new Uint8Array(16));
  for (let i = 0; i < 6; i++) b[i] = Math.floor(ms / 2 ** (8 * (5 - i))) & 0xff;
  b[6] = 0x70 | (fraction >> 8);
  b[7] = fraction & 0xff;
  b[8] = 0x80 | (b[8]! & 0x3f);
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
