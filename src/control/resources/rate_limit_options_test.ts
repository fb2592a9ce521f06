import { assert, assertEquals } from "../../../test/support/assert.ts";
import { compileGateway } from "../compile/compile_gateway.ts";
import { formatResourceError } from "./errors.ts";
import { parseResources } from "./load.ts";
import { validateReferences } from "./references.ts";

const RESERVATION = await Deno.readTextFile(
  new URL("../../../testdata/resources/reservation/reservation.yaml", import.meta.url),
);
const MONEY = await Deno.readTextFile(
  new URL("../../../testdata/resources/money_budget/money_budget.yaml", import.meta.url),
);
const options = {
  extProcTarget: "unix:///x.sock",
  messageTimeoutMs: 1000,
  failureModeAllow: false,
  rateLimit: { target: "127.0.0.1:8081", domain: "ai-gateway" },
};

/** The example without its RateLimitOptions document, with `spec` as the RateLimitOptions' spec instead. */
function withOptions(base: string, spec: string): string {
  const without = base.slice(0, base.lastIndexOf("---\napiVersion: tollgate.dev/v1alpha1"));
  return spec === ""
    ? without
    : `${without}---\napiVersion: tollgate.dev/v1alpha1\nkind: RateLimitOptions\nmetadata: { name: opts }\nspec:\n${spec}`;
}

function compile(text: string) {
  const parsed = parseResources(text, "gateway.yaml");
  const loadErrors = [...parsed.errors, ...validateReferences(parsed.resources)].map(formatResourceError);
  if (loadErrors.length > 0) return { ok: false as const, errors: loadErrors };
  const compiled = compileGateway(parsed.resources, options);
  return compiled.ok ? compiled : { ok: false as const, errors: compiled.errors.map(formatResourceError) };
}

Deno.test("RateLimitOptions with reservation adds a reserving entry per charged rule and one marker entry per route", () => {
  const compiled = compile(RESERVATION);
  assert(compiled.ok, JSON.stringify(compiled));
  assertEquals(compiled.rateLimitOptions, {
    reservation: { defaultOutputTokens: 256, metadataKeys: ["llm_total_token"] },
  });
  const limits = compiled.edge.routes[0]!.rateLimits;
  const shape = limits.map((e) => [e.applyOnStreamDone, e.hitsAddend, e.actions.map((a) => a.descriptorKey)]);
  const descriptor = ["httproute/default/reservation/rule/0/match/0/*", "rule-0-match-0"];
  assertEquals(shape, [
    [false, { number: 0 }, descriptor],
    [true, { metadata: { namespace: "io.envoy.ai_gateway", key: "llm_total_token" } }, descriptor],
    [false, { metadata: { namespace: "io.envoy.ai_gateway", key: "tollgate_reserve_llm_total_token" } }, descriptor],
    [false, undefined, ["tollgate_reservation"]],
  ]);
  // The rules the rate limit service serves are the same: a reservation holds on the rule's own counter.
  const plain = compile(withOptions(RESERVATION, ""));
  assert(plain.ok);
  assertEquals(compiled.rateLimitRules, plain.rateLimitRules);
});

Deno.test("RateLimitOptions without reservation, or with enabled false, changes no route", () => {
  const plain = compile(withOptions(RESERVATION, ""));
  const off = compile(withOptions(RESERVATION, "  reservation: { enabled: false }\n"));
  assert(plain.ok && off.ok);
  assertEquals(off.edge.routes, plain.edge.routes);
  assertEquals(off.rateLimitOptions, {});
  assertEquals(plain.rateLimitOptions, undefined);
});

Deno.test("RateLimitOptions' calendar takes a weekday by name or number, and the money budget compiles", () => {
  const named = compile(withOptions(RESERVATION, "  calendar: { timeZone: America/New_York, weekStartsOn: Sunday }\n"));
  assert(named.ok);
  assertEquals(named.rateLimitOptions, { calendar: { timeZone: "America/New_York", weekStartsOn: 0 } });
  const money = compile(MONEY);
  assert(money.ok, JSON.stringify(money));
  assertEquals(money.rateLimitOptions, {
    calendar: { timeZone: "Europe/Paris" },
    reservation: { defaultOutputTokens: 1024, metadataKeys: ["usd_micros"] },
  });
  // One rule, two model matches: a counter per match, as Envoy Gateway keys them.
  assertEquals(money.rateLimitRules.map((r) => [r.limit, r.route]), [
    [{ requests: 5_000_000, unit: "month" }, "httproute/default/money-budget/rule/0/match/0/*"],
    [{ requests: 5_000_000, unit: "month" }, "httproute/default/money-budget/rule/0/match/1/*"],
  ]);
});

Deno.test("RateLimitOptions errors are located: zone, unknown field, a cost no rule charges, a second document", () => {
  const bad = compile(withOptions(
    RESERVATION,
    "  calendar: { timeZone: Mars/Olympus }\n  reservation: { defaultOutputTokens: -1, budget: 3 }\n",
  ));
  assert(!bad.ok);
  assertEquals(bad.errors, [
    'gateway.yaml#5:99 RateLimitOptions default/opts spec.calendar.timeZone: Unknown time zone "Mars/Olympus"',
    "gateway.yaml#5:100 RateLimitOptions default/opts spec.reservation.defaultOutputTokens: Must be at least 0",
    'gateway.yaml#5:100 RateLimitOptions default/opts spec.reservation.budget: Unknown field "budget"',
  ]);
  const uncharged = compile(withOptions(RESERVATION, "  reservation: { metadataKeys: [llm_total_token, usd] }\n"));
  assert(!uncharged.ok);
  assertEquals(uncharged.errors, [
    'gateway.yaml#5 RateLimitOptions default/opts spec.reservation.metadataKeys[1]: No rate-limit rule charges the cost "usd" (cost.response from io.envoy.ai_gateway)',
  ]);
  const twice = compile(
    `${RESERVATION}---\napiVersion: tollgate.dev/v1alpha1\nkind: RateLimitOptions\nmetadata: { name: other }\nspec: {}\n`,
  );
  assert(!twice.ok);
  assertEquals(twice.errors, [
    "gateway.yaml#6 RateLimitOptions default/other metadata.name: Only one RateLimitOptions may be defined; one is in gateway.yaml#5",
  ]);
});
