// docs/configuration.md's reference is generated from the resource schemas; this fails when a schema changed (a kind
// registered, a field added, an enum widened) and the document was not regenerated, or when a hand-written field note
// names a field that no longer exists.
import { assert, assertEquals } from "./support/assert.ts";
import {
  BEGIN_MARKER,
  DOC_FILE,
  END_MARKER,
  freshDocument,
  renderReference,
  spliceReference,
} from "../scripts/gen_config_docs.ts";
import { z } from "zod";

Deno.test("docs/configuration.md is what scripts/gen_config_docs.ts generates from the schemas", async () => {
  const current = await Deno.readTextFile(DOC_FILE);
  const { text, unusedNotes } = await freshDocument(current);
  assertEquals(unusedNotes, [], "field notes name fields that do not exist: fix FIELD_NOTES in gen_config_docs.ts");
  assert(
    text === current,
    "docs/configuration.md is stale: run npm run gen:docs (deno run -A scripts/gen_config_docs.ts)",
  );
});

Deno.test("the reference has a section for every registered kind, and a table row for every field", () => {
  const registry = {
    "example.dev/v1": {
      Widget: z.strictObject({
        apiVersion: z.string(),
        kind: z.string(),
        metadata: z.strictObject({ name: z.string().min(1) }),
        spec: z.strictObject({
          size: z.number().int().min(1).max(9).meta({ description: "How big." }),
          shape: z.enum(["round", "square"]).optional(),
        }),
      }),
    },
  };
  const { markdown, unusedNotes } = renderReference(registry);
  assert(markdown.includes("## Widget"), markdown);
  // The hand-written notes are for the real kinds: against this registry every one of them names nothing.
  assert(unusedNotes.includes("AIGatewayRoute spec.rules[].backendRefs[].priority"), unusedNotes.join("\n"));
  assert(markdown.includes("| `spec.size` | integer | yes | How big. 1 to 9. |"), markdown);
  assert(markdown.includes("| `spec.shape` | string |  | One of `round`, `square`. |"), markdown);
});

Deno.test("a document without the generated markers is refused, not overwritten", () => {
  let error: unknown;
  try {
    spliceReference("# Configuration\n", "generated");
  } catch (e) {
    error = e;
  }
  assert(error instanceof Error && error.message.includes(BEGIN_MARKER), String(error));
  const spliced = spliceReference(`intro\n${BEGIN_MARKER}\nold\n${END_MARKER}\noutro\n`, "new");
  assertEquals(spliced, `intro\n${BEGIN_MARKER}\n\nnew\n${END_MARKER}\noutro\n`);
});
