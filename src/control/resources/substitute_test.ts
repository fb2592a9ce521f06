import YAML from "yaml";
import { assertEquals } from "../../../test/support/assert.ts";
import { expandVariables, substituteDocument } from "./substitute.ts";

const env = { HOST: "api.example.com", EMPTY: "", PORT: "8443", FLAG: "true" };

Deno.test("expandVariables replaces set variables and applies defaults like the shell's :=", () => {
  const cases: [string, string][] = [
    ["${HOST}", "api.example.com"],
    ["https://${HOST}:${PORT}/v1", "https://api.example.com:8443/v1"],
    ["${MISSING:=fallback}", "fallback"],
    ["${MISSING:=}", ""],
    ["${EMPTY:=used-when-empty}", "used-when-empty"],
    ["${EMPTY}", ""],
    ["${HOST:=ignored}", "api.example.com"],
    ["${MISSING:=a:=b}", "a:=b"],
    ["cost $5", "cost $5"],
    ["$${HOST} stays literal", "${HOST} stays literal"],
    ["no variables", "no variables"],
  ];
  for (const [input, want] of cases) assertEquals(expandVariables(input, env), { value: want }, input);
});

Deno.test("expandVariables reports unset variables, bad names and unterminated references", () => {
  assertEquals(expandVariables("key=${API_KEY}", env), {
    error: 'Environment variable "API_KEY" is not set and has no default',
  });
  assertEquals(expandVariables("${1X}", env), { error: 'Invalid variable name "1X" in "${1X}"' });
  assertEquals(expandVariables("${}", env), { error: 'Invalid variable name "" in "${}"' });
  assertEquals(expandVariables("a ${HOST", env), { error: 'Unterminated variable reference "${HOST"' });
});

Deno.test("substituteDocument types unquoted values after substitution and leaves quoted ones as strings", () => {
  const doc = YAML.parseDocument(
    [
      "# ${NOT_A_REFERENCE} in a comment is ignored",
      "port: ${PORT}",
      'quoted: "${PORT}"',
      "flag: ${FLAG}",
      "host: ${HOST}",
      "${HOST}: keys are never substituted",
      // In flow collections `{` opens a mapping, so references there must be quoted; block lists need nothing.
      "list:",
      "  - ${PORT}",
      "  - x-${HOST}",
    ].join("\n"),
  );
  assertEquals(substituteDocument(doc, env), []);
  assertEquals(doc.toJS(), {
    port: 8443,
    quoted: "8443",
    flag: true,
    host: "api.example.com",
    "${HOST}": "keys are never substituted",
    list: [8443, "x-api.example.com"],
  });
});

Deno.test("substituteDocument reports each failing value with its field path", () => {
  const doc = YAML.parseDocument("spec:\n  endpoints:\n    - ip:\n        port: ${P}\n  ok: ${HOST}\n");
  const errors = substituteDocument(doc, env);
  assertEquals(errors.map((e) => ({ path: e.path, message: e.message })), [
    { path: ["spec", "endpoints", 0, "ip", "port"], message: 'Environment variable "P" is not set and has no default' },
  ]);
});
