// `tollgate validate FILE|DIR...`: loads, checks and compiles resources the way the controller will, and reports
// every problem at once with file, document, resource and field path.
import { loadGatewayConfig } from "../control/gateway_config.ts";
import { formatResourceError } from "../control/resources/errors.ts";
import { type Parsed, UsageError } from "./args.ts";

export const VALIDATE_HELP = `Usage: tollgate validate FILE|DIR...

Validates Envoy AI Gateway resources (aigateway.envoyproxy.io AIGatewayRoute, AIServiceBackend,
BackendSecurityPolicy; gateway.envoyproxy.io Backend, BackendTrafficPolicy; Secret; Gateway, GatewayClass):
schemas (unknown fields are errors), \${VAR} substitution from the environment, cross references, and
compilation. Prints every error as FILE[#DOC]:LINE KIND NAME PATH: MESSAGE and exits 1 if there is any.
`;

export async function validateCommand(p: Parsed): Promise<number> {
  if (p.positionals.length === 0) throw new UsageError("tollgate validate: give at least one FILE or DIR");
  const result = await loadGatewayConfig(p.positionals, {
    extProcTarget: "unix:///run/tollgate/extproc.sock",
    env: Deno.env.toObject(),
  });
  if (!result.ok) {
    for (const e of result.errors) console.error(formatResourceError(e));
    console.error(`${result.errors.length} error(s)`);
    return 1;
  }
  const { edge, compiled } = result;
  console.log(
    `OK: ${edge.routes.length} route(s), ${edge.clusters.length} cluster(s), ${compiled.backends.length} backend(s), ` +
      `${compiled.models.length} model(s), ${compiled.rateLimitRules.length} rate-limit rule(s)`,
  );
  for (const n of result.notes) console.log(`note: ${n}`);
  return 0;
}
