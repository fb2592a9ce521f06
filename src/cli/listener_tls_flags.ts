// TLS for the gRPC listeners Envoy calls: the ExtProc sidecar and the rate limit service. Plaintext stays the default
// (a Unix socket shared with Envoy inside one pod needs none); TCP across hosts is where these flags belong. Files
// are read and checked once at start, so a bad one is a usage error rather than a failed handshake later.
import { Buffer } from "node:buffer";
import { createPrivateKey, X509Certificate } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import { type Parsed, stringFlag, UsageError } from "./args.ts";

export const LISTENER_TLS_FLAGS = {
  "tls-cert": { type: "string" },
  "tls-key": { type: "string" },
  "tls-client-ca": { type: "string" },
} as const;

export const LISTENER_TLS_HELP =
  `  --tls-cert F, --tls-key F   serve the gRPC listener over TLS with this certificate (chain) and key, PEM;
                           plaintext without them. Read at start: restart to pick up a renewed certificate
  --tls-client-ca F        with --tls-cert: require a client certificate signed by this CA (PEM), i.e. mutual TLS`;

/**
 * A listener's TLS material. The key stays in a private field and toJSON shows only file names, so logging the
 * options of a role can never print it.
 */
export class ListenerTls {
  readonly certFile: string;
  readonly keyFile: string;
  readonly clientCaFile: string | undefined;
  readonly #cert: Buffer;
  readonly #key: Buffer;
  readonly #clientCa: Buffer | undefined;

  constructor(
    files: { certFile: string; keyFile: string; clientCaFile?: string | undefined },
    pem: { cert: Buffer; key: Buffer; clientCa?: Buffer | undefined },
  ) {
    this.certFile = files.certFile;
    this.keyFile = files.keyFile;
    this.clientCaFile = files.clientCaFile;
    this.#cert = pem.cert;
    this.#key = pem.key;
    this.#clientCa = pem.clientCa;
  }

  /** Whether clients must present a certificate signed by the client CA. */
  get mutual(): boolean {
    return this.#clientCa !== undefined;
  }

  /** grpc-js server credentials: TLS, and with a client CA, a verified client certificate required. */
  credentials(): grpc.ServerCredentials {
    // Without a client CA, grpc-js would fill `ca` with GRPC_DEFAULT_SSL_ROOTS_FILE_PATH's bundle when that is set,
    // and Deno's node:tls then sends a handshake clients reject (HandshakePayloadTooLarge). The server's own chain
    // stands in: with no client certificate requested, it verifies nothing.
    return grpc.ServerCredentials.createSsl(
      this.#clientCa ?? this.#cert,
      [{ cert_chain: this.#cert, private_key: this.#key }],
      this.#clientCa !== undefined,
    );
  }

  toJSON(): Record<string, string> {
    return {
      certFile: this.certFile,
      keyFile: this.keyFile,
      ...(this.clientCaFile ? { clientCaFile: this.clientCaFile } : {}),
    };
  }
}

function readPem(command: string, flag: string, path: string): Buffer {
  try {
    return Buffer.from(Deno.readFileSync(path));
  } catch (e) {
    throw new UsageError(`tollgate ${command}: --${flag}: cannot read ${path}: ${(e as Error).message}`);
  }
}

function certificate(command: string, flag: string, path: string, pem: Buffer): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (e) {
    throw new UsageError(`tollgate ${command}: --${flag}: ${path} is not a PEM certificate: ${(e as Error).message}`);
  }
}

/** The listener's TLS from --tls-cert, --tls-key and --tls-client-ca; undefined (plaintext) without them. */
export function listenerTlsOptions(command: string, p: Parsed): ListenerTls | undefined {
  const has = (flag: string) => typeof p.values[flag] === "string";
  if (has("tls-cert") !== has("tls-key")) {
    throw new UsageError(`tollgate ${command}: --tls-cert and --tls-key go together`);
  }
  if (!has("tls-cert")) {
    if (has("tls-client-ca")) {
      throw new UsageError(`tollgate ${command}: --tls-client-ca needs --tls-cert and --tls-key`);
    }
    return undefined;
  }
  const certFile = stringFlag(p, "tls-cert", "");
  const keyFile = stringFlag(p, "tls-key", "");
  const clientCaFile = has("tls-client-ca") ? stringFlag(p, "tls-client-ca", "") : undefined;
  const cert = readPem(command, "tls-cert", certFile);
  const key = readPem(command, "tls-key", keyFile);
  const clientCa = clientCaFile !== undefined ? readPem(command, "tls-client-ca", clientCaFile) : undefined;
  const x509 = certificate(command, "tls-cert", certFile, cert);
  let matches: boolean;
  try {
    matches = x509.checkPrivateKey(createPrivateKey(key));
  } catch (e) {
    throw new UsageError(
      `tollgate ${command}: --tls-key: ${keyFile} is not a PEM private key: ${(e as Error).message}`,
    );
  }
  if (!matches) {
    throw new UsageError(`tollgate ${command}: --tls-key: ${keyFile} is not the key of the certificate in ${certFile}`);
  }
  if (clientCa) certificate(command, "tls-client-ca", clientCaFile!, clientCa);
  return new ListenerTls({ certFile, keyFile, clientCaFile }, { cert, key, clientCa });
}
