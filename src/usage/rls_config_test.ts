import { assert, assertEquals } from "../../test/support/assert.ts";
import type { RateLimitRule } from "../control/compile/compiled.ts";
import type { ResourceError } from "../control/resources/errors.ts";
import { parseRlsConfig, type RlsConfigResult, rulesFromCompiled } from "./rls_config.ts";

const TESTDATA = new URL("../../testdata/ratelimit/", import.meta.url);
const read = async (name: string) => ({ file: name, text: await Deno.readTextFile(new URL(name, TESTDATA)) });

function errorsOf(result: RlsConfigResult): readonly ResourceError[] {
  assert(!result.ok, "expected the config to be rejected");
  return result.errors;
}

Deno.test("parseRlsConfig loads every example in testdata/ratelimit as one domain per file", async () => {
  const names = ["messaging", "per_ip", "depth", "internal", "replaces", "wildcard", "every_unit"];
  const result = parseRlsConfig(await Promise.all(names.map((n) => read(`${n}.yaml`))));
  assert(result.ok, JSON.stringify(!result.ok && result.errors));
  assertEquals(result.rules.domains.map((d) => d.domain), names);
});

Deno.test("parseRlsConfig reads every unit whatever its case, and the limit's name", async () => {
  const result = parseRlsConfig([await read("every_unit.yaml")]);
  assert(result.ok);
  const limits = result.rules.domains[0]!.descriptors.map((d) => d.limit);
  assertEquals(
    limits.map((l) => l?.kind === "limited" ? l.unit : undefined),
    ["second", "minute", "hour", "day", "week", "month", "year", "second"],
  );
  assertEquals(limits[5]?.name, "monthly");
});

Deno.test("parseRlsConfig reads several domains from the documents of one file", () => {
  const text = [
    "domain: a",
    "descriptors: [{ key: k, rate_limit: { unit: second, requests_per_unit: 1 } }]",
    "---",
    "domain: b",
    "descriptors:",
  ].join("\n");
  const result = parseRlsConfig([{ file: "two.yaml", text }]);
  assert(result.ok);
  assertEquals(result.rules.domains.map((d) => [d.domain, d.descriptors.length]), [["a", 1], ["b", 0]]);
});

Deno.test("parseRlsConfig reports every mistake of a file with its file, document, line and path", async () => {
  const errors = errorsOf(parseRlsConfig([await read("invalid.yaml")]));
  assertEquals(
    errors.map((e) => [e.path, e.message]),
    [
      ["descriptors[0].key", "Must not be empty"],
      ["descriptors[2]", 'Duplicate descriptor: another one at this level has key "dup" and value "a"'],
      ["descriptors[3].rate_limit.unit", "Must not be set when unlimited is true"],
      [
        "descriptors[4].rate_limit.unit",
        'Expected one of "second", "minute", "hour", "day", "week", "month", "year", got "fortnight"',
      ],
      ["descriptors[5].rate_limit.requests_per_unit", "Field is required"],
      ["descriptors[6].rate_limit.replaces[0].name", 'Cannot replace its own limit "me"'],
      ["descriptors[6].rate_limit.replaces[1].name", "Must not be empty"],
      ["descriptors[7].share_threshold", 'Only a wildcard value (ending in "*") can share a threshold'],
      ["descriptors[8].burst", 'Unknown field "burst"'],
      ["descriptors[8].descriptors[0].rate_limit.requests_per_unit", "Field is required"],
      ["descriptors[9].rate_limit.requests_per_unit", "Must be at least 0"],
    ].sort(([a], [b]) => a!.localeCompare(b!)),
  );
  assert(errors.every((e) => e.file === "invalid.yaml" && e.document === 0 && typeof e.line === "number"));
  assertEquals(errors.find((e) => e.path === "descriptors[8].burst")?.line, 22);
});

const invalidCases: Array<{ name: string; files: { file: string; text: string }[]; want: [string, string, string][] }> =
  [
    {
      name: "a domain defined twice",
      files: [{ file: "a.yaml", text: "domain: x" }, { file: "b.yaml", text: "domain: x" }],
      want: [["b.yaml", "domain", 'Domain "x" is already defined in a.yaml#0']],
    },
    {
      name: "an empty domain",
      files: [{ file: "a.yaml", text: 'domain: ""' }],
      want: [["a.yaml", "domain", "Must not be empty"]],
    },
    {
      name: "a missing domain",
      files: [{ file: "a.yaml", text: "descriptors: []" }],
      want: [["a.yaml", "domain", "Field is required"]],
    },
    {
      name: "a document that is not a mapping",
      files: [{ file: "a.yaml", text: "- domain: x" }],
      want: [["a.yaml", "", "Expected an object, got an array"]],
    },
    {
      name: "broken YAML",
      files: [{ file: "a.yaml", text: "domain: [x" }],
      want: [[
        "a.yaml",
        "",
        "Invalid YAML: Flow sequence in block collection must be sufficiently indented and end with a ]",
      ]],
    },
  ];

for (const c of invalidCases) {
  Deno.test(`parseRlsConfig rejects ${c.name}`, () => {
    const errors = errorsOf(parseRlsConfig(c.files));
    assertEquals(errors.map((e) => [e.file, e.path, e.message.split("\n")[0]]), c.want);
  });
}

Deno.test("parseRlsConfig gives no rules at all when one file of several is invalid", async () => {
  const result = parseRlsConfig([await read("messaging.yaml"), await read("invalid.yaml")]);
  assert(!result.ok);
});

Deno.test("parseRlsConfig rejects an unknown time zone for calendar windows", () => {
  const errors = errorsOf(parseRlsConfig([], { windows: { calendar: { timeZone: "Nowhere/Land", weekStartsOn: 9 } } }));
  assertEquals(errors.map((e) => e.path), ["windows.calendar.timeZone", "windows.calendar.weekStartsOn"]);
});

const rule = (ruleIndex: number, descriptors: RateLimitRule["descriptors"], requests = 10): RateLimitRule => ({
  domain: "ai-gateway",
  policy: "default/tokens",
  ruleIndex,
  route: "default/chat",
  descriptors,
  limit: { requests, unit: "hour" },
  shadowMode: ruleIndex === 1,
});

Deno.test("rulesFromCompiled builds the same tree as the YAML for Envoy AI Gateway rules", () => {
  const route = { key: "default/chat", value: "default/chat" };
  const fromRules = rulesFromCompiled([
    rule(0, [route, { key: "rule-0-match-0" }], 100),
    rule(1, [route, { key: "rule-1-match--1", value: "rule-1-match--1" }], 5),
  ]);
  const fromYaml = parseRlsConfig([{
    file: "same.yaml",
    text: `
domain: ai-gateway
descriptors:
  - key: default/chat
    value: default/chat
    descriptors:
      - key: rule-0-match-0
        rate_limit: { unit: hour, requests_per_unit: 100 }
      - key: rule-1-match--1
        value: rule-1-match--1
        shadow_mode: true
        rate_limit: { unit: hour, requests_per_unit: 5 }
`,
  }]);
  assert(fromRules.ok && fromYaml.ok);
  assertEquals(fromRules.rules.domains, fromYaml.rules.domains);
  const entries = [{ key: "default/chat", value: "default/chat" }, { key: "rule-0-match-0", value: "tenant-a" }];
  assertEquals(
    fromRules.rules.matchDescriptor("ai-gateway", entries)?.counterKey,
    fromYaml.rules.matchDescriptor("ai-gateway", entries)?.counterKey,
  );
});

Deno.test("rulesFromCompiled rejects two rules that limit the same descriptor chain", () => {
  const chain = [{ key: "r", value: "r" }];
  const errors = errorsOf(rulesFromCompiled([rule(0, chain), rule(3, chain)]));
  assertEquals(errors.map((e) => [e.kind, e.name, e.path]), [[
    "BackendTrafficPolicy",
    "default/tokens",
    "spec.rateLimit.global.rules[3]",
  ]]);
});
