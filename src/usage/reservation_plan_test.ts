import { assert, assertEquals } from "../../test/support/assert.ts";
import type { RoutedRequest } from "../protocol/openai/endpoints.ts";
import { compileCosts } from "./costs.ts";
import { buildReservationPlan, reservationMetadata, reserve } from "./reservation_plan.ts";
import { MESSAGE_OVERHEAD, REPLY_PRIMING } from "./reservation_estimate.ts";

const PRICES =
  'model == "gpt-4o" ? input_tokens * 250u + output_tokens * 1000u : input_tokens * 15u + output_tokens * 60u';

function programs(costs: { route: string; metadataKey: string; type: "CEL" | "TotalToken"; cel?: string }[]) {
  const compiled = compileCosts(costs);
  if (!compiled.ok) throw new Error(JSON.stringify(compiled.errors));
  return compiled.costs;
}

function request(model: string, maxTokens: number): RoutedRequest {
  const body = { model, max_tokens: maxTokens, messages: [{ role: "user", content: "abcd" }] };
  return {
    endpoint: "chatCompletions",
    api: "openai",
    model,
    stream: false,
    rawBody: new TextEncoder().encode(JSON.stringify(body)),
    body,
  };
}

// role 1 + user 1 + content 2 + "abcd" 1, one message, reply priming.
const PROMPT = 5 + MESSAGE_OVERHEAD + REPLY_PRIMING;

Deno.test("reserve prices the estimate with a per-model CEL price list and with token types", () => {
  const plan = buildReservationPlan(
    { defaultOutputTokens: 100, metadataKeys: ["micro_usd", "llm_total_token"] },
    programs([
      { route: "default/chat", metadataKey: "micro_usd", type: "CEL", cel: PRICES },
      { route: "default/chat", metadataKey: "llm_total_token", type: "TotalToken" },
      { route: "default/chat", metadataKey: "unreserved", type: "TotalToken" },
    ]),
    [],
  );
  const r = reserve(plan, request("gpt-4o", 20), "r1");
  assertEquals(r.tokens, { inputTokens: PROMPT, outputTokens: 20 });
  assertEquals(r.amounts, { micro_usd: PROMPT * 250 + 20 * 1000, llm_total_token: PROMPT + 20 });
  const cheap = reserve(plan, request("gpt-4o-mini", 20), "r2");
  assertEquals(cheap.amounts.micro_usd, PROMPT * 15 + 20 * 60);
  assertEquals(reservationMetadata(r), {
    tollgate_reservation: "r1",
    tollgate_reserve_micro_usd: PROMPT * 250 + 20 * 1000,
    tollgate_reserve_llm_total_token: PROMPT + 20,
  });
});

Deno.test("reserve takes the dearest price when routes price a cost differently, backends included", () => {
  const plan = buildReservationPlan(
    { defaultOutputTokens: 10, metadataKeys: ["cost"] },
    programs([
      { route: "default/a", metadataKey: "cost", type: "CEL", cel: "total_tokens * 2u" },
      {
        route: "default/b",
        metadataKey: "cost",
        type: "CEL",
        cel: 'backend == "dear.default" ? total_tokens * 9u : 1u',
      },
    ]),
    [{ route: "default/b", backend: "default/cheap" }, { route: "default/b", backend: "default/dear" }],
  );
  assertEquals(plan.costs.get("cost")?.length, 3);
  assertEquals(reserve(plan, request("m", 10), "r").amounts, { cost: (PROMPT + 10) * 9 });
});

Deno.test("reserve writes no amount for a cost that fails, and caps an amount at Envoy's hits_addend limit", () => {
  const plan = buildReservationPlan(
    { defaultOutputTokens: 10, metadataKeys: ["huge", "broken"] },
    programs([
      { route: "default/a", metadataKey: "huge", type: "CEL", cel: "total_tokens * 100000000000u" },
      { route: "default/a", metadataKey: "broken", type: "CEL", cel: 'model == "m" ? output_tokens - 1000000u : 0u' },
    ]),
    [],
  );
  const r = reserve(plan, request("m", 10), "r");
  assertEquals(r.amounts, { huge: 1_000_000_000 });
  assert(!("broken" in r.amounts));
});
