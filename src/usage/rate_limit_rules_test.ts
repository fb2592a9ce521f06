import { assert, assertEquals } from "../../test/support/assert.ts";
import { parseRlsConfig } from "./rls_config.ts";
import { type DescriptorEntry, RateLimitRules, type RuleNode } from "./rate_limit_rules.ts";

const TESTDATA = new URL("../../testdata/ratelimit/", import.meta.url);
const FILES = ["messaging", "per_ip", "depth", "internal", "replaces", "wildcard", "every_unit"];

async function testdataRules(): Promise<RateLimitRules> {
  const files = await Promise.all(
    FILES.map(async (name) => ({
      file: `${name}.yaml`,
      text: await Deno.readTextFile(new URL(`${name}.yaml`, TESTDATA)),
    })),
  );
  const result = parseRlsConfig(files);
  if (!result.ok) throw new Error(`testdata does not load: ${JSON.stringify(result.errors)}`);
  return result.rules;
}

const RULES = await testdataRules();

const e = (...pairs: [string, string][]): DescriptorEntry[] => pairs.map(([key, value]) => ({ key, value }));

// Each case reads as: in <domain>, the descriptor <entries> gets <want> (requests_per_unit, or "unlimited", or none).
const matchCases: Array<
  { name: string; domain: string; entries: DescriptorEntry[]; want: number | "unlimited" | null }
> = [
  {
    name: "a nested descriptor matches level by level",
    domain: "messaging",
    entries: e(["message_type", "marketing"], ["to_number", "2061111111"]),
    want: 5,
  },
  {
    name: "a key without value matches any value",
    domain: "messaging",
    entries: e(["to_number", "2062222222"]),
    want: 100,
  },
  {
    name: "a placeholder without rate_limit limits nothing at its own depth",
    domain: "messaging",
    entries: e(["message_type", "marketing"]),
    want: null,
  },
  {
    name: "key and value win over the key alone",
    domain: "per_ip",
    entries: e(["remote_address", "192.0.2.66"]),
    want: 0,
  },
  {
    name: "other values fall back to the key alone",
    domain: "per_ip",
    entries: e(["remote_address", "192.0.2.1"]),
    want: 10,
  },
  {
    name: "a request deeper than the limit does not match it (README example 4)",
    domain: "depth",
    entries: e(["tenant", "acme"], ["model", "gpt-4o"]),
    want: null,
  },
  {
    name: "a request as deep as the nested limit matches it",
    domain: "depth",
    entries: e(["tenant", "globex"], ["model", "gpt-4o"]),
    want: 30,
  },
  {
    name: "a request shallower than the nested limit does not match",
    domain: "depth",
    entries: e(["tenant", "globex"]),
    want: null,
  },
  {
    name: "an unlimited descriptor matches as unlimited",
    domain: "internal",
    entries: e(["ldap", "x"]),
    want: "unlimited",
  },
  {
    name: "a wildcard value matches by prefix",
    domain: "wildcard",
    entries: e(["path", "/v1/chat/completions"]),
    want: 2,
  },
  { name: "a wildcard wins over the key alone", domain: "wildcard", entries: e(["path", "/v1/embeddings"]), want: 2 },
  {
    name: "a value no wildcard covers falls back to the key",
    domain: "wildcard",
    entries: e(["path", "/v1/models"]),
    want: 50,
  },
  { name: "an unknown key matches nothing", domain: "messaging", entries: e(["sender", "bob"]), want: null },
  { name: "an unknown domain matches nothing", domain: "nowhere", entries: e(["to_number", "1"]), want: null },
  { name: "a descriptor without entries matches nothing", domain: "messaging", entries: [], want: null },
  { name: "a numeric value in YAML matches its text", domain: "every_unit", entries: e(["status", "200"]), want: 7 },
];

for (const c of matchCases) {
  Deno.test(`matchDescriptor: ${c.name}`, () => {
    const matched = RULES.matchDescriptor(c.domain, c.entries);
    const got = matched === undefined
      ? null
      : matched.limit.kind === "unlimited"
      ? "unlimited"
      : matched.limit.requestsPerUnit;
    assertEquals(got, c.want);
  });
}

Deno.test("matchDescriptor gives each value of a value-less key its own counter", () => {
  const a = RULES.matchDescriptor("messaging", e(["to_number", "2061111111"]))!;
  const b = RULES.matchDescriptor("messaging", e(["to_number", "2062222222"]))!;
  assert(a.counterKey !== b.counterKey);
});

Deno.test("matchDescriptor gives each value under a wildcard its own counter unless share_threshold is set", () => {
  const chat = RULES.matchDescriptor("wildcard", e(["path", "/v1/chat/completions"]))!;
  const chat2 = RULES.matchDescriptor("wildcard", e(["path", "/v1/chat/other"]))!;
  const embed = RULES.matchDescriptor("wildcard", e(["path", "/v1/embeddings"]))!;
  const embed2 = RULES.matchDescriptor("wildcard", e(["path", "/v1/embed-v2"]))!;
  assert(chat.counterKey !== chat2.counterKey);
  assertEquals(embed.counterKey, embed2.counterKey);
});

Deno.test("matchDescriptor builds a stable, readable counter key from the domain and the request's values", async () => {
  const m = RULES.matchDescriptor("messaging", e(["message_type", "marketing"], ["to_number", "+1 206|#="]))!;
  assertEquals(m.counterKey, "messaging|message_type=marketing|to_number=%2B1%20206%7C%23%3D");
  assertEquals(m.statKey, "messaging.message_type_marketing.to_number");
  const again = (await testdataRules()).matchDescriptor(
    "messaging",
    e(["message_type", "marketing"], ["to_number", "+1 206|#="]),
  );
  assertEquals(again?.counterKey, m.counterKey);
});

Deno.test("matchDescriptor reports the request's values as the stat key with detailed_metric", () => {
  const m = RULES.matchDescriptor("every_unit", e(["status", "200"]))!;
  assertEquals(m.statKey, "every_unit.status_200");
});

const node = (key: string, more: Partial<RuleNode> = {}): RuleNode => ({
  key,
  shadowMode: false,
  detailedMetric: false,
  shareThreshold: false,
  children: [],
  ...more,
});
const limited = (requestsPerUnit: number) => ({
  kind: "limited" as const,
  unit: "second" as const,
  requestsPerUnit,
  name: "",
  replaces: [],
});

Deno.test("matchDescriptor keeps the most specific choice at a level and does not backtrack", () => {
  // envoyproxy/ratelimit's GetLimit: ("a", "x") picks the key+value node, which has no children, so a request
  // ("a", "x"), ("b", "y") is not limited even though the value-less "a" has a matching child.
  const rules = new RateLimitRules([{
    domain: "d",
    descriptors: [
      node("a", { value: "x", limit: limited(1) }),
      node("a", { children: [node("b", { limit: limited(2) })] }),
    ],
  }]);
  assertEquals(rules.matchDescriptor("d", e(["a", "x"], ["b", "y"])), undefined);
  assertEquals(rules.matchDescriptor("d", e(["a", "z"], ["b", "y"]))?.limit, limited(2));
});

Deno.test("matchDescriptor compares keys and values apart, so an underscore cannot shift a key into a value", () => {
  const rules = new RateLimitRules([{ domain: "d", descriptors: [node("a", { value: "b_c*", limit: limited(1) })] }]);
  assertEquals(rules.matchDescriptor("d", e(["a_b", "c_anything"])), undefined);
  assertEquals(rules.matchDescriptor("d", e(["a", "b_c1"]))?.limit, limited(1));
});

Deno.test("matchDescriptor tries wildcards in config order", () => {
  const rules = new RateLimitRules([{
    domain: "d",
    descriptors: [
      node("p", { value: "/v1*", limit: limited(1) }),
      node("p", { value: "/v1/chat*", limit: limited(2) }),
    ],
  }]);
  assertEquals(rules.matchDescriptor("d", e(["p", "/v1/chat"]))?.limit, limited(1));
});
