import assertModule from "node:assert/strict";
import { assert, assertEquals } from "../../test/support/assert.ts";
import { scoreTools, selectTools, type ToolLike, toolTokens } from "./tool_selection.ts";

const tool = (name: string, description: string, properties: Record<string, unknown> = {}) => ({
  type: "function" as const,
  function: { name, description, parameters: { type: "object", properties } },
});

const TOOLS = [
  tool("get_weather", "Current weather and forecast for a city", {
    city: { type: "string" },
    units: { type: "string" },
  }),
  tool("sendEmail", "Send an email message to a recipient", {
    to: { type: "string", description: "recipient address" },
    subject: { type: "string" },
    body: { type: "string" },
  }),
  tool("search_flights", "Find flights between two airports on a date", {
    origin: { type: "string" },
    destination: { type: "string" },
    date: { type: "string" },
  }),
  tool("create_calendar_event", "Add an event to the user's calendar", {
    title: { type: "string" },
    start: { type: "string", description: "start time" },
  }),
  tool("convert_currency", "Convert an amount between currencies using today's exchange rate", {
    amount: { type: "number" },
    from: { type: "string" },
    to: { type: "string" },
  }),
  tool("query_database", "Run a read-only SQL query against the analytics database", { sql: { type: "string" } }),
];
const names = (ts: readonly ToolLike[]) => ts.map((t) => t.function?.name);

Deno.test("selectTools keeps the tools the prompt is about", () => {
  assertEquals(names(selectTools(TOOLS, "What's the weather forecast in Oslo tomorrow?", 1)), ["get_weather"]);
  assertEquals(names(selectTools(TOOLS, "Email the report to Dana with the subject 'Q3'", 1)), ["sendEmail"]);
  assertEquals(names(selectTools(TOOLS, "How many euros is 250 dollars at the current exchange rate?", 1)), [
    "convert_currency",
  ]);
  assertEquals(names(selectTools(TOOLS, "Find me flights from Lisbon to Berlin on May 3", 1)), ["search_flights"]);
});

Deno.test("selectTools keeps the original order of the kept tools", () => {
  const kept = selectTools(TOOLS, "Book a flight to Rome and add the trip to my calendar", 2);
  assertEquals(names(kept), ["search_flights", "create_calendar_event"]);
});

Deno.test("selectTools returns the very same tool objects", () => {
  const [kept] = selectTools(TOOLS, "run this SQL query", 1);
  assert(kept === TOOLS[5]);
});

Deno.test("selectTools returns every tool when k is at least their number", () => {
  const all = selectTools(TOOLS, "anything", 10);
  assertEquals(names(all), names(TOOLS));
  assert(all !== TOOLS);
  assertEquals(selectTools(TOOLS, "anything", 0), []);
});

Deno.test("selectTools breaks ties by original position", () => {
  assertEquals(names(selectTools(TOOLS, "zzz unrelated words", 2)), ["get_weather", "sendEmail"]);
});

Deno.test("selectTools uses embedding cosine when embeddings are given", () => {
  const tools = TOOLS.slice(0, 3);
  const embeddings = { prompt: [0, 1, 0], tools: [[1, 0, 0], [0.1, 0.9, 0], [0, 0.5, 0.5]] };
  // The text is about the weather, but the embeddings decide.
  assertEquals(names(selectTools(tools, "weather in Oslo", 1, { embeddings })), ["sendEmail"]);
  assertEquals(names(selectTools(tools, "weather in Oslo", 2, { embeddings })), ["sendEmail", "search_flights"]);
});

Deno.test("selectTools rejects an invalid k and embeddings that do not fit the tools", () => {
  assertModule.throws(() => selectTools(TOOLS, "x", -1), /Invalid tool count k=-1/);
  assertModule.throws(() => selectTools(TOOLS, "x", 1.5), /Invalid tool count k=1.5/);
  const wrongCount = { prompt: [1], tools: [[1]] };
  assertModule.throws(() => selectTools(TOOLS, "x", 2, { embeddings: wrongCount }), /1 tool embeddings for 6 tools/);
  assertModule.throws(() => selectTools(TOOLS, "x", 10, { embeddings: wrongCount }), /1 tool embeddings for 6 tools/);
  const wrongDims = { prompt: [1, 0], tools: TOOLS.map(() => [1, 0, 0]) };
  assertModule.throws(() => selectTools(TOOLS, "x", 2, { embeddings: wrongDims }), /2 and 3 dimensions/);
});

Deno.test("tools without a function are known by their type", () => {
  const tools: ToolLike[] = [{ type: "web_search" }, TOOLS[0]!, { type: "code_interpreter" }];
  assertEquals(selectTools(tools, "search the web for news", 1), [{ type: "web_search" }]);
});

Deno.test("parameter names and descriptions count, nested ones included", () => {
  const tools = [
    tool("op_a", "Does a thing", { items: { type: "array", items: { type: "object", properties: { isbn: {} } } } }),
    tool("op_b", "Does another thing", { zipcode: { type: "string" } }),
  ];
  assertEquals(names(selectTools(tools, "look up this isbn", 1)), ["op_a"]);
  assertEquals(names(selectTools(tools, "which zipcode is it", 1)), ["op_b"]);
});

Deno.test("toolTokens splits identifiers, drops stop words and stems", () => {
  assertEquals(toolTokens("getWeatherForecasts for the HTTPServer"), ["get", "weather", "forecast", "http", "server"]);
  assertEquals(toolTokens("send_emails, sending"), ["send", "email", "send"]);
});

Deno.test("scoreTools gives each tool a score in [0, 1]", () => {
  const scores = scoreTools(TOOLS, "weather in Paris");
  assertEquals(scores.length, TOOLS.length);
  assert(scores.every((s) => s >= 0 && s <= 1 + 1e-9));
  assert(scores[0]! > 0 && scores.slice(1).every((s) => s < scores[0]!));
});
