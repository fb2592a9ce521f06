// What an ExtProc sidecar runs when its config comes over NATS: the received snapshot, materialised with credentials
// this pod resolves itself (mounted Secrets, environment), swapped in one assignment. When the mounted Secrets
// change, the same snapshot is materialised again with the new values (same revision), so a rotated key is used
// from the next stream on, without a restart and without the controller.
import type { Clock } from "../../observability/clock.ts";
import type { Logger } from "../../observability/logger.ts";
import { materializeSnapshot } from "../gateway_config.ts";
import { localSecrets, RecordingResolver, secretEnvName } from "../secrets.ts";
import { watchSecrets } from "../secrets_watch.ts";
import type { GatewaySnapshot } from "../snapshot.ts";
import { canonicalJson, type ConfigSnapshot } from "./config_snapshot.ts";
import type { CompiledGateway } from "../compile/compiled.ts";

export interface SidecarConfigOptions {
  /** Served until a config arrives. */
  readonly initial: GatewaySnapshot;
  /** Mounted Secrets (<dir>/<namespace>/<name>/<key>); undefined: environment only. */
  readonly secretsDir?: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly clock: Clock;
  readonly log: Logger;
  /** Re-check the mounted Secrets this often besides watching them (default 10 s). */
  readonly secretsPollMs?: number;
}

export class SidecarConfig implements Disposable {
  readonly #o: SidecarConfigOptions;
  #current: GatewaySnapshot;
  #received: { snapshot: ConfigSnapshot; revision: number } | undefined;
  /** The semantic routers running, with their canonical text (see #materialize). */
  #routers: { readonly text: string; readonly configs: NonNullable<CompiledGateway["semanticRouters"]> } | undefined;
  #secrets: RecordingResolver | undefined;
  #unresolved: string[] = [];
  readonly #watch: Disposable | undefined;

  constructor(o: SidecarConfigOptions) {
    this.#o = o;
    this.#current = o.initial;
    this.#watch = o.secretsDir === undefined ? undefined : watchSecrets({
      dir: o.secretsDir,
      clock: o.clock,
      onChange: () => this.#secretsChanged(),
      ...(o.secretsPollMs === undefined ? {} : { pollMs: o.secretsPollMs }),
    });
  }

  /** The snapshot a new stream starts with. */
  readonly current = (): GatewaySnapshot => this.#current;

  /** Secret keys the running config names that this pod cannot read ("namespace/name/key"). */
  get unresolvedSecrets(): readonly string[] {
    return this.#unresolved;
  }

  /** The subscriber's `apply`: throws (and changes nothing) when the snapshot cannot be served. */
  readonly apply = (snapshot: ConfigSnapshot, applied: { readonly revision: number }): void => {
    this.#materialize(snapshot, applied.revision);
  };

  #materialize(snapshot: ConfigSnapshot, revision: number): void {
    const dir = this.#o.secretsDir;
    const secrets = new RecordingResolver(localSecrets({ env: this.#o.env, ...(dir === undefined ? {} : { dir }) }));
    // Routers are kept by identity by what runs them (routing_table.ts: engines, their trained classifiers and their
    // caches): a snapshot whose routers are the same as the running ones keeps the running objects, so a change to a
    // route elsewhere does not start every router over with empty caches.
    const routers = snapshot.gateway.semanticRouters;
    const routersText = routers === undefined ? undefined : canonicalJson(routers);
    const running = this.#routers;
    const gateway: CompiledGateway = running && routersText === running.text
      ? { ...snapshot.gateway, semanticRouters: running.configs }
      : snapshot.gateway;
    const result = materializeSnapshot(gateway, {
      revision,
      rateLimitDomain: snapshot.rateLimitDomain,
      env: this.#o.env,
      secret: secrets.resolve,
      missingSecrets: "omit",
    });
    if (!result.ok) {
      throw new Error(`Cannot serve config revision ${revision}: ${result.errors.map((e) => e.message).join("; ")}`);
    }
    const unresolved = secrets.unresolved.map((r) => `${r.namespace}/${r.name}/${r.key}`);
    for (const ref of secrets.unresolved) {
      this.#o.log.error(
        {
          secret: `${ref.namespace}/${ref.name}`,
          key: ref.key,
          dir: this.#o.secretsDir ?? null,
          env: secretEnvName(ref),
        },
        "A Secret key the config names is not available to this sidecar; its backend gets no credentials",
      );
    }
    this.#current = result.snapshot;
    this.#received = { snapshot: { ...snapshot, gateway }, revision };
    this.#routers = routersText === undefined || gateway.semanticRouters === undefined
      ? undefined
      : { text: routersText, configs: gateway.semanticRouters };
    this.#secrets = secrets;
    this.#unresolved = unresolved;
  }

  #secretsChanged(): void {
    const received = this.#received;
    if (!received || !this.#secrets?.changed()) return;
    try {
      this.#materialize(received.snapshot, received.revision);
      this.#o.log.info({ revision: received.revision }, "Re-read rotated credentials");
    } catch (err) {
      this.#o.log.error({ err }, "Cannot re-read rotated credentials; keeping the ones in use");
    }
  }

  [Symbol.dispose](): void {
    this.#watch?.[Symbol.dispose]();
  }
}
