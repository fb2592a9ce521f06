// The NATS connection flags every role shares. Secrets come from files (a mounted Kubernetes Secret), never from the
// command line, where `ps` would show them.
import type { NatsConnectOptions } from "../usage/nats_connection.ts";
import { type Parsed, stringFlag, UsageError } from "./args.ts";

export const NATS_FLAGS = {
  nats: { type: "string" },
  "nats-user": { type: "string" },
  "nats-password-file": { type: "string" },
  "nats-token-file": { type: "string" },
  "nats-nkey-file": { type: "string" },
  "nats-ca": { type: "string" },
  "nats-cert": { type: "string" },
  "nats-key": { type: "string" },
} as const;

export const NATS_HELP =
  `  --nats URLS              NATS server URL(s), comma-separated, e.g. nats://nats-0:4222,nats://nats-1:4222
  --nats-user USER         NATS user; its password is read from --nats-password-file
  --nats-password-file F   file holding the NATS password
  --nats-token-file F      file holding a NATS token
  --nats-nkey-file F       file holding an nkey user seed (SU...)
  --nats-ca F              CA certificate (PEM) to verify the NATS servers (TLS)
  --nats-cert F, --nats-key F   client certificate and key (PEM) for mutual TLS`;

function readSecret(command: string, flag: string, path: string): string {
  try {
    return Deno.readTextFileSync(path).trim();
  } catch (e) {
    throw new UsageError(`tollgate ${command}: --${flag}: cannot read ${path}: ${(e as Error).message}`);
  }
}

/** The servers of --nats, or an empty list when the flag is absent. */
export function natsServers(p: Parsed): string[] {
  return stringFlag(p, "nats", "").split(",").map((s) => s.trim()).filter(Boolean);
}

/** Connection options from the flags; undefined when --nats is absent. */
export function natsOptions(command: string, p: Parsed, name: string): NatsConnectOptions | undefined {
  const servers = natsServers(p);
  const has = (flag: string) => typeof p.values[flag] === "string";
  if (servers.length === 0) {
    const stray = Object.keys(NATS_FLAGS).find((f) => f !== "nats" && has(f));
    if (stray) throw new UsageError(`tollgate ${command}: --${stray} needs --nats`);
    return undefined;
  }
  if (has("nats-password-file") && !has("nats-user")) {
    throw new UsageError(`tollgate ${command}: --nats-password-file needs --nats-user`);
  }
  if (has("nats-cert") !== has("nats-key")) {
    throw new UsageError(`tollgate ${command}: --nats-cert and --nats-key go together`);
  }
  const options: { -readonly [K in keyof NatsConnectOptions]: NatsConnectOptions[K] } = { servers, name };
  if (has("nats-user")) options.user = stringFlag(p, "nats-user", "");
  if (has("nats-password-file")) {
    options.pass = readSecret(command, "nats-password-file", stringFlag(p, "nats-password-file", ""));
  }
  if (has("nats-token-file")) {
    options.token = readSecret(command, "nats-token-file", stringFlag(p, "nats-token-file", ""));
  }
  if (has("nats-nkey-file")) {
    options.nkeySeed = readSecret(command, "nats-nkey-file", stringFlag(p, "nats-nkey-file", ""));
  }
  if (has("nats-ca") || has("nats-cert")) {
    options.tls = {
      ...(has("nats-ca") ? { caFile: stringFlag(p, "nats-ca", "") } : {}),
      ...(has("nats-cert") ? { certFile: stringFlag(p, "nats-cert", ""), keyFile: stringFlag(p, "nats-key", "") } : {}),
    };
  }
  return options;
}
