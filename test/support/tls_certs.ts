// Test certificates made with the openssl CLI in a temporary directory: a CA, a server certificate for 127.0.0.1 and
// localhost, a client certificate, and a second, unrelated CA with its own server and client certificates (what a
// client or server that trusts the wrong authority presents). EC P-256 keys, PEM files, valid for one day.
//
//   await using pki = await makeTestPki();
//   grpc.ServerCredentials.createSsl(null, [{ cert_chain: pki.read(pki.server.cert), private_key: ... }])
import { Buffer } from "node:buffer";

export const OPENSSL_BIN = "/usr/bin/openssl";

export interface CertFiles {
  readonly cert: string;
  readonly key: string;
}

export interface TestPki extends AsyncDisposable {
  readonly dir: string;
  /** The CA that signed `server` and `client`. */
  readonly ca: string;
  readonly server: CertFiles;
  readonly client: CertFiles;
  /** An unrelated CA, and a server and a client certificate it signed. */
  readonly otherCa: string;
  readonly otherServer: CertFiles;
  readonly otherClient: CertFiles;
  /** A file's bytes, as the Buffer grpc-js insists on. */
  read(path: string): Buffer;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  const out = await new Deno.Command(OPENSSL_BIN, { args, cwd, stdout: "piped", stderr: "piped", stdin: "null" })
    .output();
  if (!out.success) {
    throw new Error(`openssl ${args[0]} failed: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
}

const EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

async function makeCa(dir: string, name: string, cn: string): Promise<string> {
  await openssl([
    "req",
    "-x509",
    ...EC_KEY,
    "-keyout",
    `${name}.key`,
    "-out",
    `${name}.crt`,
    "-days",
    "1",
    "-subj",
    `/CN=${cn}`,
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ], dir);
  return `${dir}/${name}.crt`;
}

async function issue(
  dir: string,
  ca: string,
  name: string,
  cn: string,
  usage: "serverAuth" | "clientAuth",
): Promise<CertFiles> {
  const ext = `${dir}/${name}.ext`;
  await Deno.writeTextFile(
    ext,
    [
      "basicConstraints=CA:FALSE",
      "keyUsage=critical,digitalSignature",
      `extendedKeyUsage=${usage}`,
      ...(usage === "serverAuth" ? ["subjectAltName=DNS:localhost,IP:127.0.0.1"] : []),
      "",
    ].join("\n"),
  );
  await openssl(["req", ...EC_KEY, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${cn}`], dir);
  await openssl([
    "x509",
    "-req",
    "-in",
    `${name}.csr`,
    "-CA",
    `${ca}.crt`,
    "-CAkey",
    `${ca}.key`,
    // A random serial per certificate: -CAcreateserial would race on one serial file when issuing in parallel.
    "-set_serial",
    `0x${[...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, "0")).join("")}`,
    "-out",
    `${name}.crt`,
    "-days",
    "1",
    "-extfile",
    ext,
  ], dir);
  return { cert: `${dir}/${name}.crt`, key: `${dir}/${name}.key` };
}

export async function makeTestPki(): Promise<TestPki> {
  const dir = await Deno.makeTempDir({ prefix: "tollgate-pki-" });
  try {
    const [ca, otherCa] = await Promise.all([
      makeCa(dir, "ca", "Tollgate Test CA"),
      makeCa(dir, "other-ca", "Unrelated Test CA"),
    ]);
    const [server, client, otherServer, otherClient] = await Promise.all([
      issue(dir, "ca", "server", "localhost", "serverAuth"),
      issue(dir, "ca", "client", "tollgate-client", "clientAuth"),
      issue(dir, "other-ca", "other-server", "localhost", "serverAuth"),
      issue(dir, "other-ca", "other-client", "intruder", "clientAuth"),
    ]);
    return {
      dir,
      ca,
      server,
      client,
      otherCa,
      otherServer,
      otherClient,
      read: (path) => Buffer.from(Deno.readFileSync(path)),
      async [Symbol.asyncDispose]() {
        await Deno.remove(dir, { recursive: true }).catch(() => {});
      },
    };
  } catch (err) {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw err;
  }
}
