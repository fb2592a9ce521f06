// Rate-limit configuration for the RLS, from two sources that build the same rule tree:
//
// - envoyproxy/ratelimit's YAML (README "The configuration format", src/config/config_impl.go), one domain per YAML
//   document, any number of documents and files;
// - the rules compileGateway derives from Envoy AI Gateway BackendTrafficPolicies (compiled.ts RateLimitRule).
//
// Validation follows envoyproxy/ratelimit's loader (unknown keys, empty domain or key, duplicate domains and
// descriptors, unit required unless unlimited and forbidden with it, replaces entries that are empty or name their
// own limit, share_threshold only on wildcards) with one stricter rule: requests_per_unit is required, as the README
// documents, where the Go loader silently reads a missing one as 0 (which blocks everything). Unit names are
// case-insensitive, as there. Every problem is reported (file, document, line, path); a config with any error yields
// no rules at all, so the caller keeps the config it has.
import YAML, { type Document, isScalar, LineCounter, visit } from "yaml";
import { z } from "zod";
import type { core } from "zod";
import {
  errorAt,
  issueMessage,
  type PathSegment,
  type ResourceError,
  sortErrors,
} from "../control/resources/errors.ts";
import type { RateLimitRule } from "../control/compile/compiled.ts";
import { type DomainRules, type LimitSpec, RateLimitRules, type RuleNode } from "./rate_limit_rules.ts";
import { checkTimeZone, RATE_LIMIT_UNITS, type RateLimitUnitName, type WindowOptions } from "./windows.ts";
import { nodeOffset, yamlValue } from "../control/resources/yaml_positions.ts";

export interface RlsConfigFile {
  readonly file: string;
  readonly text: string;
}

export type RlsConfigResult =
  | { readonly ok: true; readonly rules: RateLimitRules }
  | { readonly ok: false; readonly errors: readonly ResourceError[] };

export interface RlsConfigOptions {
  /** Tollgate's window option (calendar-aligned windows), applied to every domain. */
  readonly windows?: WindowOptions;
}

const MAX_UINT32 = 4_294_967_295;

const rateLimitSchema = z.strictObject({
  unit: z.string().nullish(),
  requests_per_unit: z.number().int().min(0).max(MAX_UINT32).nullish(),
  unlimited: z.boolean().nullish(),
  name: z.string().nullish(),
  replaces: z.array(z.strictObject({ name: z.string().nullish() })).nullish(),
});

// One descriptor level at a time (children stay unknown here), so a mistake in one descriptor does not hide the
// mistakes of its siblings and children: every problem of a file is reported in one pass.
const descriptorSchema = z.strictObject({
  key: z.string(),
  value: z.string().nullish(),
  rate_limit: rateLimitSchema.nullish(),
  shadow_mode: z.boolean().nullish(),
  detailed_metric: z.boolean().nullish(),
  // Newer envoyproxy/ratelimit key that only shapes metric names; accepted so its configs load.
  value_to_metric: z.boolean().nullish(),
  share_threshold: z.boolean().nullish(),
  descriptors: z.array(z.unknown()).nullish(),
});

const rootSchema = z.strictObject({ domain: z.string(), descriptors: z.array(z.unknown()).nullish() });

/** envoyproxy/ratelimit YAML files → rules, or every error found. */
export function parseRlsConfig(files: readonly RlsConfigFile[], options: RlsConfigOptions = {}): RlsConfigResult {
  const errors: ResourceError[] = [...checkOptions(options)];
  const domains: DomainRules[] = [];
  const seen = new Map<string, string>();
  for (const { file, text } of files) {
    const lines = new LineCounter();
    const docs = YAML.parseAllDocuments(text, { lineCounter: lines, prettyErrors: false });
    if (!Array.isArray(docs)) continue;
    docs.forEach((doc, document) => {
      const at = { file, document };
      const lineOf = (path: readonly PathSegment[]) => {
        const offset = nodeOffset(doc, path);
        return offset === undefined ? {} : { line: lines.linePos(offset).line };
      };
      const fail = (path: readonly PathSegment[], message: string) =>
        errors.push({ ...errorAt(at, path, message), ...lineOf(path) });
      const [syntax] = doc.errors;
      if (syntax) {
        const line = lines.linePos(syntax.pos[0]).line;
        errors.push({ ...errorAt(at, "", `Invalid YAML: ${syntax.message.split("\n")[0]}`), line });
        return;
      }
      keepScalarText(doc);
      const raw = yamlValue(doc);
      if (raw instanceof Error) {
        errors.push(errorAt(at, "", `Invalid YAML: ${raw.message}`));
        return;
      }
      if (raw === null || raw === undefined) return;
      const parsed = rootSchema.safeParse(raw, { error: issueMessage });
      if (!parsed.success) {
        reportIssues(parsed.error.issues, [], fail);
        toNodes(childrenOf(raw), ["descriptors"], fail);
        return;
      }
      const { domain } = parsed.data;
      if (domain === "") return fail(["domain"], "Must not be empty");
      const where = `${file}#${document}`;
      const previous = seen.get(domain);
      if (previous !== undefined) return fail(["domain"], `Domain "${domain}" is already defined in ${previous}`);
      seen.set(domain, where);
      domains.push({ domain, descriptors: toNodes(parsed.data.descriptors ?? [], ["descriptors"], fail) });
    });
  }
  if (errors.length > 0) return { ok: false, errors: sortErrors(errors) };
  return { ok: true, rules: new RateLimitRules(domains, options.windows) };
}

type Fail = (path: readonly PathSegment[], message: string) => void;

function toNodes(descriptors: readonly unknown[], path: readonly PathSegment[], fail: Fail): RuleNode[] {
  const seen = new Set<string>();
  return descriptors.flatMap((raw, i) => {
    const at = [...path, i];
    const parsed = descriptorSchema.safeParse(raw, { error: issueMessage });
    if (!parsed.success) {
      reportIssues(parsed.error.issues, at, fail);
      toNodes(childrenOf(raw), [...at, "descriptors"], fail);
      return [];
    }
    const d = parsed.data;
    const value = d.value === "" || d.value === null ? undefined : d.value;
    if (d.key === "") fail([...at, "key"], "Must not be empty");
    const identity = `${d.key}\u0000${value ?? ""}\u0000${value === undefined}`;
    if (seen.has(identity)) {
      const what = value === undefined ? `key "${d.key}" and no value` : `key "${d.key}" and value "${value}"`;
      fail(at, `Duplicate descriptor: another one at this level has ${what}`);
    }
    seen.add(identity);
    if (d.share_threshold && !value?.endsWith("*")) {
      fail([...at, "share_threshold"], `Only a wildcard value (ending in "*") can share a threshold`);
    }
    const limit = d.rate_limit ? toLimit(d.rate_limit, [...at, "rate_limit"], fail) : undefined;
    return {
      key: d.key,
      ...(value === undefined ? {} : { value }),
      ...(limit ? { limit } : {}),
      shadowMode: d.shadow_mode ?? false,
      detailedMetric: d.detailed_metric ?? false,
      shareThreshold: d.share_threshold ?? false,
      children: toNodes(d.descriptors ?? [], [...at, "descriptors"], fail),
    };
  });
}

function toLimit(r: z.infer<typeof rateLimitSchema>, at: readonly PathSegment[], fail: Fail): LimitSpec | undefined {
  const name = r.name ?? "";
  const replaces = (r.replaces ?? []).map((entry, j) => {
    const replaced = entry.name ?? "";
    if (replaced === "") fail([...at, "replaces", j, "name"], "Must not be empty");
    else if (replaced === name) fail([...at, "replaces", j, "name"], `Cannot replace its own limit "${name}"`);
    return replaced;
  });
  const unitText = r.unit ?? "";
  const unit = RATE_LIMIT_UNITS.find((u) => u === unitText.toLowerCase());
  if (r.unlimited) {
    if (unit) fail([...at, "unit"], "Must not be set when unlimited is true");
    return { kind: "unlimited", name, replaces };
  }
  if (!unit) {
    const units = RATE_LIMIT_UNITS.map((u) => `"${u}"`).join(", ");
    fail([...at, "unit"], unitText === "" ? "Field is required" : `Expected one of ${units}, got "${unitText}"`);
  }
  if (r.requests_per_unit === undefined || r.requests_per_unit === null) {
    fail([...at, "requests_per_unit"], "Field is required");
  }
  if (!unit || typeof r.requests_per_unit !== "number") return undefined;
  return { kind: "limited", unit, requestsPerUnit: r.requests_per_unit, name, replaces };
}

/**
 * Envoy AI Gateway rules (as compileGateway emits them) → rules. Each rule's descriptor chain becomes a path in its
 * domain's tree, shared with other rules where their chains agree, with the limit on its last descriptor.
 */
export function rulesFromCompiled(rules: readonly RateLimitRule[], options: RlsConfigOptions = {}): RlsConfigResult {
  const errors: ResourceError[] = [...checkOptions(options)];
  type Draft = { key: string; value?: string; limit?: LimitSpec; shadowMode: boolean; children: Draft[] };
  // Each level's nodes by key and value as well as in order: every rule starts with its route's own descriptor, so
  // the first level has a node per route, and finding one by scanning made thousands of routes quadratic.
  const levels = new WeakMap<Draft[], Map<string, Draft>>();
  const roots = new Map<string, Draft[]>();
  for (const rule of rules) {
    const at = { file: "", kind: "BackendTrafficPolicy", name: rule.policy };
    const path = `spec.rateLimit.global.rules[${rule.ruleIndex}]`;
    if (rule.descriptors.length === 0) {
      errors.push({ ...at, path, message: "A rule needs at least one descriptor" });
      continue;
    }
    let level = roots.get(rule.domain) ?? [];
    roots.set(rule.domain, level);
    let node: Draft | undefined;
    for (const d of rule.descriptors) {
      let byKey = levels.get(level);
      if (!byKey) levels.set(level, byKey = new Map());
      const id = `${d.key}\u0000${d.value ?? ""}\u0000${d.value === undefined}`;
      node = byKey.get(id);
      if (!node) {
        node = { key: d.key, ...(d.value === undefined ? {} : { value: d.value }), shadowMode: false, children: [] };
        level.push(node);
        byKey.set(id, node);
      }
      level = node.children;
    }
    if (node!.limit) {
      errors.push({ ...at, path, message: "Another rule already limits the same descriptors" });
      continue;
    }
    const unit: RateLimitUnitName = rule.limit.unit;
    node!.limit = { kind: "limited", unit, requestsPerUnit: rule.limit.requests, name: "", replaces: [] };
    node!.shadowMode = rule.shadowMode;
  }
  if (errors.length > 0) return { ok: false, errors };
  const freeze = (drafts: Draft[]): RuleNode[] =>
    drafts.map((d) => ({ ...d, detailedMetric: false, shareThreshold: false, children: freeze(d.children) }));
  const domains = [...roots].map(([domain, drafts]) => ({ domain, descriptors: freeze(drafts) }));
  return { ok: true, rules: new RateLimitRules(domains, options.windows) };
}

function checkOptions(options: RlsConfigOptions): ResourceError[] {
  const calendar = options.windows?.calendar;
  if (!calendar) return [];
  const errors: ResourceError[] = [];
  const zone = checkTimeZone(calendar.timeZone);
  if (zone) errors.push({ file: "", path: "windows.calendar.timeZone", message: zone });
  const start = calendar.weekStartsOn;
  if (start !== undefined && !(Number.isInteger(start) && start >= 0 && start <= 6)) {
    errors.push({
      file: "",
      path: "windows.calendar.weekStartsOn",
      message: "Must be an integer from 0 (Sunday) to 6",
    });
  }
  return errors;
}

/** envoyproxy/ratelimit reads domain, key, value and name into Go strings, so `value: 200` is the text "200". */
function keepScalarText(doc: Document): void {
  visit(doc, {
    Pair(_, pair) {
      if (!isScalar(pair.key) || !["domain", "key", "value", "name"].includes(String(pair.key.value))) return;
      const v = pair.value;
      if (isScalar(v) && v.value !== null && typeof v.value !== "string" && typeof v.source === "string") {
        v.value = v.source;
      }
    },
  });
}

function reportIssues(issues: readonly core.$ZodIssue[], at: readonly PathSegment[], fail: Fail): void {
  for (const issue of issues) {
    const path = [...at, ...issue.path.map((p) => (typeof p === "number" ? p : String(p)))];
    if (issue.code === "unrecognized_keys") {
      for (const key of issue.keys) fail([...path, key], `Unknown field "${key}"`);
    } else fail(path, issue.message);
  }
}

/** The descriptors list of a node that failed its schema, to check them anyway. */
function childrenOf(raw: unknown): unknown[] {
  const children = typeof raw === "object" && raw !== null ? (raw as { descriptors?: unknown }).descriptors : undefined;
  return Array.isArray(children) ? children : [];
}
