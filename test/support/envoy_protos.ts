// Envoy's protobuf types at run time, for decoding a rendered bootstrap the way Envoy's own config loader would:
// scripts/gen_proto.sh stages the same (patched) protos that src/protocol/gen is generated from, buf compiles the
// files below with everything they import into a FileDescriptorSet, and @bufbuild/protobuf parses proto3 JSON
// against it. fromJson rejects unknown fields and resolves every google.protobuf.Any by its "@type" in the registry,
// so a misspelled field or a type Envoy does not know fails the decode.
import {
  createFileRegistry,
  type DescMessage,
  fromBinary,
  fromJson,
  type JsonValue,
  type Message,
} from "@bufbuild/protobuf";
import type { Registry } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";

const root = new URL("../../", import.meta.url).pathname;

/** Every message a rendered bootstrap may name in an "@type", by the proto file that declares it. */
const ENVOY_PROTOS = [
  "envoy/config/bootstrap/v3/bootstrap.proto",
  "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto",
  "envoy/extensions/filters/http/ext_proc/v3/ext_proc.proto",
  "envoy/extensions/filters/http/ratelimit/v3/rate_limit.proto",
  "envoy/extensions/filters/http/header_mutation/v3/header_mutation.proto",
  "envoy/extensions/filters/http/upstream_codec/v3/upstream_codec.proto",
  "envoy/extensions/filters/http/router/v3/router.proto",
  "envoy/extensions/upstreams/http/v3/http_protocol_options.proto",
  "envoy/extensions/transport_sockets/tls/v3/tls.proto",
  "envoy/extensions/retry/priority/previous_priorities/v3/previous_priorities_config.proto",
  "envoy/extensions/access_loggers/file/v3/file.proto",
  "envoy/extensions/access_loggers/stream/v3/stream.proto",
];

const BUF_YAML = `version: v2
modules:
  - path: envoy-api
  - path: googleapis
  - path: xds
  - path: protoc-gen-validate
`;

let cached: Promise<Registry> | undefined;

/** Built once per test process (about two seconds): stage, compile, parse. */
export function envoyRegistry(): Promise<Registry> {
  cached ??= buildRegistry();
  return cached;
}

async function buildRegistry(): Promise<Registry> {
  const dir = await Deno.makeTempDir({ prefix: "tollgate-envoy-protos-" });
  try {
    await run(`${root}scripts/gen_proto.sh`, ["--stage-only", `${dir}/stage`]);
    await Deno.writeTextFile(`${dir}/stage/buf.yaml`, BUF_YAML);
    await run(`${root}node_modules/.bin/buf`, [
      "build",
      `${dir}/stage`,
      "--as-file-descriptor-set",
      "--exclude-source-info",
      "-o",
      `${dir}/envoy.binpb`,
      ...ENVOY_PROTOS.flatMap((p) => ["--path", `${dir}/stage/envoy-api/${p}`]),
    ]);
    return createFileRegistry(fromBinary(FileDescriptorSetSchema, await Deno.readFile(`${dir}/envoy.binpb`)));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function run(command: string, args: string[]): Promise<void> {
  const out = await new Deno.Command(command, { args, cwd: root, stdout: "piped", stderr: "piped" }).output();
  if (out.code !== 0) {
    throw new Error(`${command} ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
}

export function messageType(registry: Registry, typeName: string): DescMessage {
  const desc = registry.getMessage(typeName);
  if (!desc) throw new Error(`Envoy type ${typeName} is not in the descriptor set`);
  return desc;
}

/** Strict proto3 JSON decode: unknown fields, unknown enum names and unknown "@type"s all throw. */
export function decodeEnvoy(registry: Registry, typeName: string, json: unknown): Message {
  return fromJson(messageType(registry, typeName), json as JsonValue, { registry });
}
