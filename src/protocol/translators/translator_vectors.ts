// Shared runner for request vectors in testdata/translators/<pair>/requests.json (test support for translators).
import { assertEquals } from "../../../test/support/assert.ts";
import { type BackendSchema, type ClientEndpoint, isClientError, type Translator } from "./translator.ts";

interface RequestVector {
  readonly name: string;
  readonly endpoint: ClientEndpoint;
  readonly model: string;
  readonly stream?: boolean;
  readonly forceStreamUsage?: boolean;
  readonly backend: BackendSchema;
  readonly body: Record<string, unknown>;
  readonly expected:
    | { readonly path: string; readonly headers: Record<string, string>; readonly body: unknown }
    | { readonly error: { readonly status: number; readonly message: string } };
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export async function runRequestVectors(pair: string, translator: Translator): Promise<void> {
  const url = new URL(`../../../testdata/translators/${pair}/requests.json`, import.meta.url);
  const vectors = JSON.parse(await Deno.readTextFile(url)) as RequestVector[];
  for (const v of vectors) {
    const rawBody = encoder.encode(JSON.stringify(v.body));
    const out = translator.request({
      endpoint: v.endpoint,
      body: v.body,
      rawBody,
      model: v.model,
      stream: v.stream ?? false,
      forceStreamUsage: v.forceStreamUsage ?? false,
      backend: v.backend,
    });
    if ("error" in v.expected) {
      assertEquals(isClientError(out) ? { status: out.status, message: out.message } : out, v.expected.error, v.name);
      continue;
    }
    if (isClientError(out)) throw new Error(`${v.name}: unexpected error ${out.message}`);
    assertEquals(out.path, v.expected.path, v.name);
    assertEquals(out.headers, v.expected.headers, v.name);
    if (v.expected.body === "UNCHANGED") assertEquals(out.body, rawBody, `${v.name}: the client's bytes`);
    else assertEquals(JSON.parse(decoder.decode(out.body)), v.expected.body, v.name);
  }
}
