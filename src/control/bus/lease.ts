// One active controller at a time: a lease in the NATS KV bucket TOLLGATE_CONTROLLER, key `leader`.
//
//   leader   {"holder":"controller-a","acquiredAt":"…","renewedAt":"…","ttlMs":15000}
//
// The bucket's max age is the lease TTL, so JetStream itself removes a lease nobody renews: a controller that dies
// (or loses NATS) lets its lease expire and a standby's `create` succeeds at its next try. Taking and renewing are
// compare-and-set on the key's KV revision: `create` only when no lease exists, `update` only on the revision the
// holder last wrote, so two controllers can never both believe a renewal succeeded. A holder that cannot renew
// within the TTL (measured on its own monotonic clock from its last successful write) stops acting as leader before
// anyone else can take over; the config head's own compare-and-set (config_store.ts) fences whatever slips through.
import type { JetStreamClient, KV } from "nats";

export const LEASE_BUCKET = "TOLLGATE_CONTROLLER";
const LEASE_KEY = "leader";

export interface LeaseRecord {
  readonly holder: string;
  readonly acquiredAt: string;
  readonly renewedAt: string;
  readonly ttlMs: number;
}

export type AcquireResult =
  | { readonly acquired: true; readonly revision: number }
  | { readonly acquired: false; readonly holder: string | undefined };

export class LeaseLostError extends Error {
  override readonly name = "LeaseLostError";
}

export class LeaseStore {
  readonly #kv: KV;
  /** The TTL the bucket enforces (its max age), which wins over what a caller asked for. */
  readonly ttlMs: number;
  #acquiredAt = "";

  private constructor(kv: KV, ttlMs: number) {
    this.#kv = kv;
    this.ttlMs = ttlMs;
  }

  static async open(
    js: JetStreamClient,
    o: { readonly ttlMs: number; readonly bucket?: string; readonly replicas?: number },
  ): Promise<LeaseStore> {
    const kv = await js.views.kv(o.bucket ?? LEASE_BUCKET, {
      history: 1,
      ttl: o.ttlMs,
      replicas: o.replicas ?? 1,
      allow_direct: false,
    });
    const status = await kv.status();
    return new LeaseStore(kv, status.ttl > 0 ? status.ttl : o.ttlMs);
  }

  /** Takes the lease if nobody holds it (or this holder still does, e.g. after a quick restart). */
  async tryAcquire(holder: string): Promise<AcquireResult> {
    this.#acquiredAt = new Date().toISOString();
    try {
      return { acquired: true, revision: await this.#kv.create(LEASE_KEY, this.#record(holder)) };
    } catch {
      // Someone holds it, or held it a moment ago: look.
    }
    const entry = await this.#kv.get(LEASE_KEY);
    if (!entry || entry.operation !== "PUT") return { acquired: false, holder: undefined };
    const current = parse(entry.value);
    if (current?.holder !== holder) return { acquired: false, holder: current?.holder };
    try {
      return { acquired: true, revision: await this.#kv.update(LEASE_KEY, this.#record(holder), entry.revision) };
    } catch {
      return { acquired: false, holder: undefined };
    }
  }

  /** Renews the lease written at `revision`; throws LeaseLostError when it is not ours any more. */
  async renew(holder: string, revision: number): Promise<number> {
    try {
      return await this.#kv.update(LEASE_KEY, this.#record(holder), revision);
    } catch (err) {
      throw new LeaseLostError(`Lost the controller lease held by ${holder} at revision ${revision}`, { cause: err });
    }
  }

  /** Gives the lease up (a clean stop), so a standby need not wait for the TTL. */
  async release(revision: number): Promise<void> {
    await this.#kv.delete(LEASE_KEY, { previousSeq: revision }).catch(() => {/* not ours any more */});
  }

  /** Who holds the lease now, if anyone. */
  async holder(): Promise<string | undefined> {
    const entry = await this.#kv.get(LEASE_KEY);
    return entry?.operation === "PUT" ? parse(entry.value)?.holder : undefined;
  }

  #record(holder: string): Uint8Array {
    const record: LeaseRecord = {
      holder,
      acquiredAt: this.#acquiredAt,
      renewedAt: new Date().toISOString(),
      ttlMs: this.ttlMs,
    };
    return new TextEncoder().encode(JSON.stringify(record));
  }
}

function parse(bytes: Uint8Array): LeaseRecord | undefined {
  try {
    const r = JSON.parse(new TextDecoder().decode(bytes)) as Partial<LeaseRecord>;
    return typeof r.holder === "string" ? r as LeaseRecord : undefined;
  } catch {
    return undefined;
  }
}
