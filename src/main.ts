// CLI entry point: `tollgate <command> [flags]`. Wiring only; each command lives in src/cli/.
import { dispatch } from "./cli/commands.ts";
import { UsageError } from "./cli/args.ts";

try {
  Deno.exit(await dispatch(Deno.args));
} catch (e) {
  if (e instanceof UsageError) {
    console.error(e.message);
    Deno.exit(2);
  }
  console.error(`tollgate: ${e instanceof Error ? e.message : String(e)}`);
  Deno.exit(1);
}
