import { assert, assertEquals } from "./support/assert.ts";
import { startExtProc } from "./support/extproc_fixture.ts";
import { bodyRequest, headersRequest } from "../src/protocol/ext_proc_request.ts";
import type { ProcessingResponse } from "../src/protocol/ext_proc.ts";

const decoder = new TextDecoder();

function setHeaders(r: ProcessingResponse): Record<string, string> {
  const v = r.response?.value as {
    response?: { headerMutation?: { setHeaders: { header?: { key: string; rawValue: Uint8Array } }[] } };
  };
  return Object.fromEntries(
    (v.response?.headerMutation?.setHeaders ?? []).map((h) => [h.header!.key, decoder.decode(h.header!.rawValue)]),
  );
}

const chatHeaders = {
  ":method": "POST",
  ":path": "/v1/chat/completions",
  ":authority": "gateway.local",
  "content-type": "application/json",
  "x-ai-eg-model": "spoofed-by-client",
};
const chatBody = JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }] });

for (const transport of ["tcp", "unix"] as const) {
  Deno.test(`a full chat lifecycle over ${transport} answers each message with the matching response type`, async () => {
    await using fx = await startExtProc(transport);
    const router = fx.client.open("router");
    const h = await router.exchange(headersRequest("requestHeaders", chatHeaders));
    assertEquals(h.response?.$case, "requestHeaders");

    const b = await router.exchange(bodyRequest("requestBody", chatBody));
    assertEquals(b.response?.$case, "requestBody");
    const set = setHeaders(b);
    assertEquals(set["x-ai-eg-model"], "gpt-4o-mini");
    assertEquals(set["x-ai-eg-original-path"], "/v1/chat/completions");
    const requestId = set["x-tollgate-request-id"];
    assert(requestId !== undefined && requestId.length > 0);
    assert((b.response?.value as { response?: { clearRouteCache: boolean } }).response?.clearRouteCache);

    const attempt = fx.client.open("upstream");
    const a = await attempt.exchange(
      headersRequest("requestHeaders", { ...chatHeaders, "x-tollgate-request-id": requestId }),
    );
    assertEquals(a.response?.$case, "requestHeaders");
    assertEquals(
      (a.response?.value as { response?: { headerMutation?: { removeHeaders: string[] } } }).response?.headerMutation
        ?.removeHeaders,
      ["x-tollgate-request-id"],
    );
    assertEquals((await attempt.ended).code, 0);

    const rh = await router.exchange(headersRequest("responseHeaders", { ":status": "200" }));
    assertEquals(rh.response?.$case, "responseHeaders");
    const rb = await router.exchange(bodyRequest("responseBody", `{"id":"x","choices":[]}`));
    assertEquals(rb.response?.$case, "responseBody");
    assertEquals((await router.ended).code, 0);
    assertEquals(fx.server.openStreams, 0);
    assertEquals(fx.server.registeredRouters, 0);
  });
}
