// Admission by reservation: the names every party agrees on (docs/rate-limiting.md).
//
// 1. The sidecar's router stream, once it has the request body, estimates what the request may cost and writes, to
//    dynamic metadata namespace io.envoy.ai_gateway, `tollgate_reserve_<metadataKey>` (the estimate of each reserved
//    cost) and `tollgate_reservation` (a fresh reservation id).
// 2. Envoy's ratelimit filter sends, at request time, each reserving rule's descriptor with hits_addend
//    %DYNAMIC_METADATA(io.envoy.ai_gateway:tollgate_reserve_<key>)% and one marker descriptor
//    [("tollgate_reservation", <id>)].
// 3. The rate limit service, seeing the marker, treats hits on usage-fed counters as a reservation: OVER_LIMIT when
//    count + reservation > limit, else the reservation is held on the counter under the id (and published as a hit
//    event carrying the id, so every replica holds it).
// 4. The request's usage event carries the id; folding it releases what the id holds and adds the actual cost in the
//    reservation's window. A request that fails releases everything (its actual cost is 0).
export { AI_GATEWAY_METADATA_NAMESPACE as AI_GATEWAY_NAMESPACE } from "../control/compile/compiled.ts";

/** The descriptor key of the marker descriptor; its value is the reservation id. */
export const RESERVATION_DESCRIPTOR_KEY = "tollgate_reservation";
/** The dynamic metadata key (namespace io.envoy.ai_gateway) holding the reservation id. */
export const RESERVATION_METADATA_KEY = "tollgate_reservation";

/** The dynamic metadata key holding the estimate of the cost written under `costKey`. */
export function reserveMetadataKey(costKey: string): string {
  return `tollgate_reserve_${costKey}`;
}

/** Reservation ids are UUIDv7 from the sidecar; the service accepts any short token of these characters and treats
 * anything else as no reservation (the hits are then only checked). */
const RESERVATION_ID = /^[A-Za-z0-9-]{1,64}$/;

export function isReservationId(x: unknown): x is string {
  return typeof x === "string" && RESERVATION_ID.test(x);
}

/** How long a held reservation counts when no usage event releases it (a sidecar that died, a client that went away
 * before the response ended): long enough for the slowest streamed answer, short enough not to eat a monthly budget. */
export const RESERVATION_HOLD_MS = 15 * 60_000;
