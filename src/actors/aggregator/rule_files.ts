// The aggregator's rules from files: envoyproxy/ratelimit YAML (--rules) and Envoy AI Gateway resources (--resources,
// whose BackendTrafficPolicies compile to rules). Either, both (their domains must differ) or neither.
//
// Which counters usage events feed comes from the resources: the descriptors of every `apply_on_stream_done` entry (a
// rule's cost.response, Metadata or Number) are the ones the sidecar puts in usage events, so the rate limit service
// only checks them. The shape is matched on the counter, whichever config produced the matching rule, so a
// hand-written YAML rule for the same descriptors is fed by usage events too. Without --resources no counter is
// usage-fed and every hit the RLS receives is counted and shared as a hit event.
import { compileGateway } from "../../control/compile/compile_gateway.ts";
import type { CompiledGateway } from "../../control/compile/compiled.ts";
import { DEFAULT_RATE_LIMIT_DOMAIN } from "../../control/gateway_config.ts";
import type { ResourceError } from "../../control/resources/errors.ts";
import { loadResources } from "../../control/resources/load.ts";
import type { DescriptorAction } from "../../edge/config.ts";
import { type AggregatorRuleSet, UsageFedRules, type UsageFedTemplate } from "../../usage/aggregator_core.ts";
import { type DomainRules, RateLimitRules } from "../../usage/rate_limit_rules.ts";
import { parseRlsConfig, type RlsConfigFile, rulesFromCompiled } from "../../usage/rls_config.ts";
import type { WindowOptions } from "../../usage/windows.ts";

export interface RuleSources {
  /** envoyproxy/ratelimit YAML files or directories (every *.yaml and *.yml in them). */
  readonly rules: readonly string[];
  /** Envoy AI Gateway resource files or directories. */
  readonly resources: readonly string[];
  /** The rate limit domain the resources' rules live in (the sidecars' and Envoy's; default "ai-gateway"). */
  readonly domain?: string;
  readonly env?: Readonly<Record<string, string | undefined>>;
}

export type RuleLoad =
  | { readonly ok: true; readonly ruleSet: AggregatorRuleSet }
  | { readonly ok: false; readonly errors: readonly ResourceError[] };

export function emptyRuleSet(): AggregatorRuleSet {
  return { rules: RateLimitRules.empty(), usageFed: new UsageFedRules() };
}

export async function loadRuleSources(s: RuleSources): Promise<RuleLoad> {
  const errors: ResourceError[] = [];
  const domains: DomainRules[] = [];
  let usageFed = new UsageFedRules();
  let windows: WindowOptions = {};
  if (s.rules.length > 0) {
    const files = await readYamlFiles(s.rules, errors);
    const parsed = parseRlsConfig(files);
    if (parsed.ok) domains.push(...parsed.rules.domains);
    else errors.push(...parsed.errors);
  }
  if (s.resources.length > 0) {
    const compiled = await compileResources(s.resources, s.domain ?? DEFAULT_RATE_LIMIT_DOMAIN, s.env ?? {});
    if ("errors" in compiled) errors.push(...compiled.errors);
    else {
      // The RateLimitOptions' calendar applies to every window this replica serves, --rules' domains included.
      const calendar = compiled.rateLimitOptions?.calendar;
      if (calendar) windows = { calendar };
      const rules = rulesFromCompiled(compiled.rateLimitRules, { windows });
      if (!rules.ok) errors.push(...rules.errors);
      else {
        for (const d of rules.rules.domains) {
          if (domains.some((x) => x.domain === d.domain)) {
            errors.push({
              file: s.rules.join(", "),
              path: "domain",
              message: `Domain "${d.domain}" is defined by both --rules and the --resources' BackendTrafficPolicies`,
            });
          }
        }
        domains.push(...rules.rules.domains);
        usageFed = new UsageFedRules(usageFedTemplates(compiled, s.domain ?? DEFAULT_RATE_LIMIT_DOMAIN));
      }
    }
  }
  if (errors.length > 0) return { ok: false, errors };
  return { ok: true, ruleSet: { rules: new RateLimitRules(domains, windows), usageFed } };
}

/** The descriptor shapes of the stream-done entries: what usage events carry. */
export function usageFedTemplates(compiled: CompiledGateway, domain: string): UsageFedTemplate[] {
  const templates: UsageFedTemplate[] = [];
  for (const route of compiled.edge.routes) {
    for (const entry of route.rateLimits) {
      if (!entry.applyOnStreamDone) continue;
      templates.push({ domain: compiled.edge.rateLimit?.domain ?? domain, entries: entry.actions.map(templateEntry) });
    }
  }
  return templates;
}

function templateEntry(a: DescriptorAction): { key: string; value?: string } {
  switch (a.kind) {
    case "genericKey":
    case "headerValueMatch":
      return { key: a.descriptorKey, value: a.descriptorValue };
    case "requestHeaders":
    case "metadata":
      return { key: a.descriptorKey };
  }
}

async function compileResources(
  paths: readonly string[],
  domain: string,
  env: Readonly<Record<string, string | undefined>>,
): Promise<CompiledGateway | { errors: readonly ResourceError[] }> {
  const loaded = await loadResources(paths, { env: env as Record<string, string> });
  if (loaded.errors.length > 0) return { errors: loaded.errors };
  // Only the rate-limit part matters here; the ExtProc target and timeouts are placeholders, and credentials are
  // never resolved (the aggregator needs no Secret).
  const compiled = compileGateway(loaded.resources, {
    extProcTarget: "unix:///unused.sock",
    messageTimeoutMs: 10_000,
    failureModeAllow: false,
    rateLimit: { target: "127.0.0.1:8081", domain },
  });
  return compiled.ok ? compiled : { errors: compiled.errors };
}

async function readYamlFiles(paths: readonly string[], errors: ResourceError[]): Promise<RlsConfigFile[]> {
  const files: RlsConfigFile[] = [];
  for (const path of paths) {
    let names: string[];
    try {
      names = (await Deno.stat(path)).isDirectory ? (await yamlIn(path)).sort() : [path];
    } catch (e) {
      const why = e instanceof Deno.errors.NotFound ? "No such file or directory" : (e as Error).message;
      errors.push({ file: path, path: "", message: why });
      continue;
    }
    for (const file of names) {
      try {
        files.push({ file, text: await Deno.readTextFile(file) });
      } catch (e) {
        errors.push({ file, path: "", message: `Cannot read the file: ${(e as Error).message}` });
      }
    }
  }
  return files;
}

async function yamlIn(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    const path = `${dir.replace(/\/$/, "")}/${e.name}`;
    if (e.isDirectory) out.push(...await yamlIn(path));
    else if (e.isFile && /\.ya?ml$/.test(e.name)) out.push(path);
  }
  return out;
}
