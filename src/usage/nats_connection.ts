// NATS for every role: one way to connect (credentials and TLS passed through to nats.js), reconnecting forever,
// and the JetStream stream that carries usage events and request hits.
//
// nats.js only reconnects forever once it has connected once; with `waitOnFirstConnect` it would also wait forever,
// but with no way to give up. So the first connection is a loop of our own that an AbortSignal ends, and after it
// nats.js reconnects by itself (maxReconnectAttempts -1, a jittered wait between attempts).
import {
  connect,
  type ConnectionOptions,
  ErrorCode,
  type JetStreamManager,
  nanos,
  type NatsConnection,
  NatsError,
  nkeyAuthenticator,
  RetentionPolicy,
  type Status,
  StorageType,
  type StreamConfig,
  type StreamInfo,
  type TlsOptions,
} from "nats";
import type { Clock } from "../observability/clock.ts";
import { systemClock } from "../observability/clock.ts";

export interface NatsConnectOptions {
  readonly servers: string | readonly string[];
  /** Shown by the server (connz) to tell connections apart: role and pod, e.g. "tollgate-extproc-7f9c". */
  readonly name?: string;
  readonly user?: string;
  readonly pass?: string;
  readonly token?: string;
  /** An nkey user seed ("SU…"), as read from its file by the caller. */
  readonly nkeySeed?: string;
  /** Passed to nats.js as is: caFile/ca, certFile/cert, keyFile/key, handshakeFirst. */
  readonly tls?: TlsOptions;
  /** Base wait between two attempts to reach a server (default 2000 ms), plus a random jitter (default 500 ms). */
  readonly reconnectWaitMs?: number;
  readonly reconnectJitterMs?: number;
  /** Limit for one attempt to connect (TCP, TLS and the INFO/CONNECT handshake; default 5000 ms). */
  readonly connectTimeoutMs?: number;
  /** Client pings: a connection is declared stale after maxPingOut unanswered pings (default 30 s, 2). */
  readonly pingIntervalMs?: number;
  readonly maxPingOut?: number;
}

export class NatsConnectError extends Error {
  override readonly name = "NatsConnectError";
}

/** What a failed first attempt means: try again (server not there yet) or stop (the credentials are wrong). */
function isPermanent(err: unknown): boolean {
  return (err instanceof NatsError && (err.isAuthError() || err.isPermissionError())) || isTlsCredentialError(err);
}

/**
 * A TLS failure that waiting will not fix: the server's certificate does not verify against the trusted CA (or is
 * for another name, or expired), or the server refused ours (missing, unknown CA, expired). Node's verification
 * codes and OpenSSL's alert codes, as Deno's node:tls reports them.
 */
function isTlsCredentialError(err: unknown): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  if (typeof code !== "string") return false;
  return /^(UNABLE_TO_|SELF_SIGNED_CERT|DEPTH_ZERO_SELF_SIGNED|CERT_|ERR_TLS_CERT_ALTNAME)/.test(code) ||
    /^ERR_SSL_.*ALERT_(BAD_CERTIFICATE|CERTIFICATE_|UNKNOWN_CA|UNSUPPORTED_CERTIFICATE|ACCESS_DENIED)/.test(code);
}

/**
 * With TLS 1.3 a server checks the client's certificate after the handshake has completed on the client side, so
 * its refusal reaches nats.js as a broken write (EPIPE, EPERM), a reset or a timeout, and the alert that says why is
 * lost. When a TLS attempt fails that way, one more attempt limited to TLS 1.2 (where the client certificate is part
 * of the handshake) tells a refused certificate from a network fault. Returns the refusal, or undefined.
 */
async function tlsRefusal(options: ConnectionOptions, err: unknown): Promise<unknown> {
  const code = (err as { code?: unknown } | undefined)?.code;
  const refusedLike = ["EPIPE", "EPERM", "ECONNRESET", ErrorCode.Timeout, ErrorCode.ConnectionTimeout];
  if (options.tls == null || !refusedLike.includes(code as string)) return undefined;
  try {
    const probe = await connect({
      ...options,
      tls: { ...options.tls, maxVersion: "TLSv1.2" } as TlsOptions,
      reconnect: false,
      maxReconnectAttempts: 0,
    });
    await probe.close();
    return undefined;
  } catch (probeErr) {
    return isTlsCredentialError(probeErr) ? probeErr : undefined;
  }
}

export function natsConnectionOptions(o: NatsConnectOptions): ConnectionOptions {
  const options: ConnectionOptions = {
    servers: typeof o.servers === "string" ? o.servers : [...o.servers],
    reconnect: true,
    maxReconnectAttempts: -1,
    waitOnFirstConnect: false,
    reconnectTimeWait: o.reconnectWaitMs ?? 2000,
    reconnectJitter: o.reconnectJitterMs ?? 500,
    reconnectJitterTLS: o.reconnectJitterMs ?? 1000,
    timeout: o.connectTimeoutMs ?? 5000,
    pingInterval: o.pingIntervalMs ?? 30_000,
    maxPingOut: o.maxPingOut ?? 2,
  };
  if (o.name !== undefined) options.name = o.name;
  if (o.user !== undefined) options.user = o.user;
  if (o.pass !== undefined) options.pass = o.pass;
  if (o.token !== undefined) options.token = o.token;
  if (o.nkeySeed !== undefined) options.authenticator = nkeyAuthenticator(new TextEncoder().encode(o.nkeySeed.trim()));
  if (o.tls !== undefined) options.tls = o.tls;
  return options;
}

/**
 * nats.js v2's node transport, on Deno, drops its socket listeners when it closes a connection the server refused
 * (-ERR Authorization Violation, or a client certificate refused after a TLS 1.3 handshake) while the server resets
 * the same socket or its TLS alert is still being read: the reset or the alert then surfaces, around the moment
 * connect() rejects, as an uncaught error that would end the process. While an attempt runs (and one tick after it
 * failed), and while a connection lives (nats.js reconnects the same way), exactly those errors — a socket reset
 * or a TLS alert nobody listens to any more — are swallowed, nothing else.
 */
let strayListeners = 0;
function swallowStraySocketError(e: ErrorEvent): void {
  const code = (e.error as { code?: unknown } | undefined)?.code;
  if (code === "ECONNRESET" || code === "EPIPE" || (typeof code === "string" && code.startsWith("ERR_SSL_"))) {
    e.preventDefault();
  }
}
function holdStraySocketErrors(): () => void {
  if (strayListeners++ === 0) globalThis.addEventListener("error", swallowStraySocketError);
  let released = false;
  return () => {
    if (released) return;
    released = true;
    if (--strayListeners === 0) globalThis.removeEventListener("error", swallowStraySocketError);
  };
}
async function outlastSocketReset(): Promise<void> {
  const release = holdStraySocketErrors();
  try {
    await new Promise((r) => setTimeout(r, 10));
  } finally {
    release();
  }
}

/**
 * A live NATS connection that reconnects by itself. `closed()` resolves once it is closed for good: undefined
 * after `close()`, the error when nats.js gave up (an authorization error on reconnect, for instance).
 */
export interface NatsLink extends AsyncDisposable {
  readonly nc: NatsConnection;
  closed(): Promise<Error | undefined>;
  /** Tells `listener` when the connection drops (false) and comes back (true); returns the unsubscribe. */
  watch(listener: (connected: boolean) => void): () => void;
  close(): Promise<void>;
}

function linkOf(nc: NatsConnection): NatsLink {
  const release = holdStraySocketErrors();
  const closed = nc.closed().then((e) => e instanceof Error ? e : undefined);
  closed.finally(release);
  return {
    nc,
    closed: () => closed,
    watch(listener) {
      // A QueuedIterator underneath: stop() ends it, typed only as an AsyncIterable.
      const status = nc.status() as AsyncIterable<Status> & { stop?: () => void };
      let active = true;
      (async () => {
        for await (const s of status) {
          if (!active) break;
          if (s.type === "disconnect") listener(false);
          else if (s.type === "reconnect") listener(true);
        }
      })().catch(() => {});
      closed.then(() => active && listener(false));
      return () => {
        active = false;
        status.stop?.();
      };
    },
    close: async () => {
      if (!nc.isClosed()) await nc.close();
      await closed;
    },
    async [Symbol.asyncDispose]() {
      await this.close();
    },
  };
}

/**
 * Connects, trying again after a jittered wait while no server answers, until `signal` aborts. Wrong credentials
 * fail at once with a NatsConnectError: waiting would not fix them.
 */
export async function connectNats(
  o: NatsConnectOptions,
  { signal, clock = systemClock, onRetry }: {
    signal?: AbortSignal;
    clock?: Clock;
    onRetry?: (err: unknown, attempt: number) => void;
  } = {},
): Promise<NatsLink> {
  const options = natsConnectionOptions(o);
  const where = displayNatsServers(o.servers);
  for (let attempt = 1;; attempt++) {
    signal?.throwIfAborted();
    const release = holdStraySocketErrors();
    try {
      const nc = await connect(options);
      if (signal?.aborted) {
        await nc.close();
        signal.throwIfAborted();
      }
      return linkOf(nc);
    } catch (err) {
      await outlastSocketReset();
      if (signal?.aborted) throw signal.reason;
      const refusal = isPermanent(err) ? err : await tlsRefusal(options, err);
      if (refusal !== undefined) {
        throw new NatsConnectError(`Cannot connect to NATS at ${where}: ${describeFailure(refusal)}`, { cause: err });
      }
      onRetry?.(err, attempt);
    } finally {
      release();
    }
    const wait = (options.reconnectTimeWait ?? 2000) + Math.random() * (options.reconnectJitter ?? 0);
    await new Promise<void>((resolve, reject) => {
      const timer = clock.setTimeout(() => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      }, wait);
      const onAbort = () => {
        clock.clearTimeout(timer);
        reject(signal?.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }
}

/** The servers for logs and errors: a user and password written into a URL (nats://u:p@host) are left out. */
export function displayNatsServers(servers: string | readonly string[]): string {
  return [servers].flat().map((s) => s.replace(/^([a-z]+:\/\/)?[^@/]*@/i, "$1")).join(", ");
}

/** One line that says what failed: TLS failures name the side that refused. */
function describeFailure(err: unknown): string {
  const message = (err as Error).message.replace(/\s+/g, " ").trim();
  const code = (err as { code?: unknown }).code;
  if (typeof code !== "string" || !isTlsCredentialError(err)) return message;
  return code.startsWith("ERR_SSL_")
    ? `the server refused the client's TLS certificate (${message})`
    : `the server's TLS certificate did not verify (${message})`;
}

export const USAGE_STREAM = "TOLLGATE_USAGE";
export const USAGE_SUBJECTS = ["tollgate.usage.>", "tollgate.hits.>"] as const;

export interface UsageStreamOptions {
  readonly name?: string;
  readonly subjects?: readonly string[];
  /** 1 for a single server, 3 for a cluster (survives the loss of one node). */
  readonly replicas?: number;
  /**
   * How long JetStream remembers a Nats-Msg-Id to drop a second copy (default 10 minutes). Publishers re-send an
   * event whose acknowledgement they never got when they replay their spool, and that copy is only dropped if it
   * arrives within this window of the first: it must be at least the longest NATS outage (plus a probe interval)
   * for which "counted once" must hold. Beyond it, events that were in flight at the moment NATS failed (at most
   * the publisher's maxInFlight) may be stored twice; events spooled while NATS was down are sent once whatever the
   * outage. JetStream keeps every id of the window in memory: ~100 bytes per event in the window.
   */
  readonly duplicateWindowMs?: number;
  /** How long events are kept (default 7 days); aggregators snapshot well within it. */
  readonly maxAgeMs?: number;
}

function isStreamNotFound(err: unknown): boolean {
  return err instanceof NatsError && err.api_error?.err_code === 10059;
}

function isNameInUse(err: unknown): boolean {
  return err instanceof NatsError && err.api_error?.err_code === 10058;
}

/**
 * Creates the usage stream, or updates the settings we own on an existing one (subjects, replicas, duplicate
 * window, max age), so every role can call it at start. Limits retention and file storage cannot be changed on an
 * existing stream: a stream created otherwise is an error, not something to paper over.
 */
export async function ensureUsageStream(jsm: JetStreamManager, o: UsageStreamOptions = {}): Promise<StreamInfo> {
  const want = {
    name: o.name ?? USAGE_STREAM,
    subjects: [...(o.subjects ?? USAGE_SUBJECTS)],
    num_replicas: o.replicas ?? 1,
    duplicate_window: nanos(o.duplicateWindowMs ?? 10 * 60_000),
    max_age: nanos(o.maxAgeMs ?? 7 * 24 * 3600_000),
  };
  for (let attempt = 0;; attempt++) {
    let current: StreamInfo;
    try {
      current = await jsm.streams.info(want.name);
    } catch (err) {
      if (!isStreamNotFound(err)) throw err;
      try {
        return await jsm.streams.add({ ...want, retention: RetentionPolicy.Limits, storage: StorageType.File });
      } catch (addErr) {
        // Another process created it between our two calls: read it again and compare.
        if (isNameInUse(addErr) && attempt === 0) continue;
        throw addErr;
      }
    }
    const c = current.config;
    if (c.retention !== RetentionPolicy.Limits || c.storage !== StorageType.File) {
      throw new Error(
        `Cannot use stream ${want.name} for usage: it has ${c.retention} retention and ${c.storage} storage, ` +
          `usage needs limits retention and file storage`,
      );
    }
    const same = c.num_replicas === want.num_replicas && c.duplicate_window === want.duplicate_window &&
      c.max_age === want.max_age && [...c.subjects].sort().join() === [...want.subjects].sort().join();
    if (same) return current;
    const update: Partial<StreamConfig> = { ...c, ...want };
    return await jsm.streams.update(want.name, update);
  }
}

/**
 * One NATS connection for a process, dialled once in the background and shared by everyone who asks (the usage
 * sink, the config subscriber). `get` waits for it, or gives up when the caller's signal aborts.
 */
export interface SharedNatsLink {
  get(signal?: AbortSignal): Promise<NatsLink>;
  /** The link if it is connected already. */
  readonly current: NatsLink | undefined;
  close(): Promise<void>;
}

export function sharedNatsLink(dial: (signal: AbortSignal) => Promise<NatsLink>): SharedNatsLink {
  const stop = new AbortController();
  let current: NatsLink | undefined;
  const dialled = dial(stop.signal).then((link) => current = link);
  dialled.catch(() => {}); // Seen by every get(); a failure here is not unhandled.
  return {
    get current() {
      return current;
    },
    get(signal) {
      if (!signal) return dialled;
      signal.throwIfAborted();
      return new Promise<NatsLink>((resolve, reject) => {
        const onAbort = () => reject(signal.reason);
        signal.addEventListener("abort", onAbort, { once: true });
        dialled.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
      });
    },
    async close() {
      stop.abort();
      await dialled.then((link) => link.close(), () => {});
    },
  };
}
