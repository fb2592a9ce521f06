// A route's rate_limits turned into the descriptors Envoy's ratelimit filter sends to the rate limit service (RLS),
// and the wire form of a request that carries them.
//
// Envoy's rules (route_components.proto, RateLimit and its actions): each entry's actions run in order and each
// appends one (key, value) entry; if an action cannot append its entry, no descriptor is generated for that entry.
// The one exception is request_headers with skip_if_absent, which omits only its own entry and still sends the rest.
import { BinaryReader, BinaryWriter } from "@bufbuild/protobuf/wire";
import type { DescriptorAction, RateLimitEntry } from "./config.ts";
import { type DynamicMetadata, metadataValue } from "./dynamic_metadata.ts";
import {
  RateLimitDescriptor,
  type RateLimitDescriptor_Entry,
} from "../protocol/gen/envoy/extensions/common/ratelimit/v3/ratelimit.ts";
import type { RateLimitRequest } from "../protocol/gen/envoy/service/ratelimit/v3/rls.ts";
import { UInt64Value } from "../protocol/gen/google/protobuf/wrappers.ts";

/** What the actions read: request headers by lower-case name (":path" and the other pseudo-headers included) and
 * the request's dynamic metadata. */
export interface DescriptorContext {
  readonly headers: ReadonlyMap<string, string>;
  readonly metadata: DynamicMetadata;
}

/** RateLimitDescriptor plus Envoy's per-descriptor hits_addend (field 3, google.protobuf.UInt64Value). The Envoy API
 * our codegen vendors predates that field, so it lives here until the generated types catch up. Absent means the
 * request-level hits_addend applies (0: one hit). */
export interface RlsDescriptor extends RateLimitDescriptor {
  hitsAddend?: number;
}

export interface RlsRequest extends Omit<RateLimitRequest, "descriptors"> {
  descriptors: RlsDescriptor[];
}

/** RateLimit.HitsAddend.number is validated `lte: 1000000000`, and a format result must stay within it too. */
export const MAX_HITS_ADDEND = 1_000_000_000;

/** The descriptors of the entries whose applyOnStreamDone equals `onStreamDone`, in configuration order. */
export function buildDescriptors(
  entries: readonly RateLimitEntry[],
  ctx: DescriptorContext,
  onStreamDone: boolean,
): RlsDescriptor[] {
  const out: RlsDescriptor[] = [];
  for (const entry of entries) {
    if (entry.applyOnStreamDone !== onStreamDone) continue;
    const descriptor = buildDescriptor(entry, ctx);
    if (descriptor) out.push(descriptor);
  }
  return out;
}

function buildDescriptor(entry: RateLimitEntry, ctx: DescriptorContext): RlsDescriptor | undefined {
  const descriptorEntries: RateLimitDescriptor_Entry[] = [];
  for (const action of entry.actions) {
    const produced = runAction(action, ctx);
    if (produced === "skipDescriptor") return undefined;
    if (produced !== "skipEntry") descriptorEntries.push(produced);
  }
  // RLS requires at least one entry per descriptor (min_items: 1); if skip_if_absent removed them all, there is
  // nothing to limit on, so the descriptor is not sent.
  if (descriptorEntries.length === 0) return undefined;
  if (!entry.hitsAddend) return { entries: descriptorEntries };
  const hits = "number" in entry.hitsAddend
    ? entry.hitsAddend.number
    : parseHitsAddend(metadataValue(ctx.metadata, entry.hitsAddend.metadata.namespace, entry.hitsAddend.metadata.key));
  // Envoy: a hits addend that does not resolve to a number in [0, 1e9] "will be treated as an error and the current
  // descriptor will be ignored". Sending it with one hit instead would under-count, so the descriptor is dropped.
  if (hits === undefined || !isValidHitsAddend(hits)) return undefined;
  return { entries: descriptorEntries, hitsAddend: hits };
}

function runAction(
  action: DescriptorAction,
  ctx: DescriptorContext,
): RateLimitDescriptor_Entry | "skipEntry" | "skipDescriptor" {
  switch (action.kind) {
    case "requestHeaders": {
      const value = ctx.headers.get(action.headerName.toLowerCase());
      if (value !== undefined) return { key: action.descriptorKey, value };
      return action.skipIfAbsent ? "skipEntry" : "skipDescriptor";
    }
    case "genericKey":
      return { key: action.descriptorKey || "generic_key", value: action.descriptorValue };
    case "headerValueMatch": {
      const matches = action.headers.every((h) => ctx.headers.get(h.name.toLowerCase()) === h.exact);
      if (matches !== action.expectMatch) return "skipDescriptor";
      return { key: action.descriptorKey || "header_match", value: action.descriptorValue };
    }
    case "metadata": {
      // Envoy reads the metadata value as a string: a number, bool or struct there counts as absent, and so does "".
      const found = metadataValue(ctx.metadata, action.namespace, action.key);
      const value = typeof found === "string" && found !== "" ? found : action.defaultValue;
      if (value === undefined || value === "") return "skipDescriptor";
      return { key: action.descriptorKey, value };
    }
  }
}

/** A metadata value as %DYNAMIC_METADATA% renders it, read as a hits count: a number, or a string of digits. */
function parseHitsAddend(value: unknown): number | undefined {
  if (typeof value === "number") return value;
  if (typeof value === "string" && /^[0-9]+$/.test(value)) return Number(value);
  return undefined;
}

function isValidHitsAddend(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= MAX_HITS_ADDEND;
}

// Wire form. RateLimitRequest: domain = 1, descriptors = 2, hits_addend = 3 (uint32).
// RateLimitDescriptor: entries = 1, limit = 2, hits_addend = 3 (google.protobuf.UInt64Value).
// The generated codecs handle everything but the descriptor's field 3, which is written and read here.

export function encodeRlsRequest(request: RlsRequest): Uint8Array {
  const w = new BinaryWriter();
  if (request.domain !== "") w.uint32(10).string(request.domain);
  for (const d of request.descriptors) {
    w.uint32(18).fork();
    RateLimitDescriptor.encode(d, w);
    if (d.hitsAddend !== undefined) UInt64Value.encode({ value: d.hitsAddend }, w.uint32(26).fork()).join();
    w.join();
  }
  if (request.hitsAddend !== 0) w.uint32(24).uint32(request.hitsAddend);
  return w.finish();
}

export function decodeRlsRequest(bytes: Uint8Array): RlsRequest {
  const r = new BinaryReader(bytes);
  const request: RlsRequest = { domain: "", descriptors: [], hitsAddend: 0 };
  while (r.pos < r.len) {
    const tag = r.uint32();
    if (tag === 10) request.domain = r.string();
    else if (tag === 18) request.descriptors.push(decodeDescriptor(r.bytes()));
    else if (tag === 24) request.hitsAddend = r.uint32();
    else r.skip(tag & 7);
  }
  return request;
}

function decodeDescriptor(bytes: Uint8Array): RlsDescriptor {
  const { entries, limit } = RateLimitDescriptor.decode(bytes);
  const descriptor: RlsDescriptor = limit ? { entries, limit } : { entries };
  const r = new BinaryReader(bytes);
  while (r.pos < r.len) {
    const tag = r.uint32();
    if (tag === 26) descriptor.hitsAddend = UInt64Value.decode(r, r.uint32()).value;
    else r.skip(tag & 7);
  }
  return descriptor;
}
