// Flag parsing on node:util's parseArgs in strict mode: an unknown flag or a bad value is a UsageError, which
// main turns into one line on stderr and exit code 2.
import { parseArgs, type ParseArgsConfig } from "node:util";

export class UsageError extends Error {
  override name = "UsageError";
}

export type FlagSpec = NonNullable<ParseArgsConfig["options"]>;

export interface Parsed {
  readonly values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  readonly positionals: string[];
}

export function parseFlags(command: string, args: readonly string[], options: FlagSpec, positionals = 0): Parsed {
  let parsed: Parsed;
  try {
    parsed = parseArgs({
      args: [...args],
      options: { ...options, help: { type: "boolean", short: "h" } },
      strict: true,
      allowPositionals: positionals > 0,
    }) as Parsed;
  } catch (e) {
    const why = e instanceof Error ? e.message.split("\n")[0]!.replace(/ To specify a positional.*$/, "") : String(e);
    throw new UsageError(`tollgate ${command}: ${why}`);
  }
  if (parsed.positionals.length > positionals) {
    throw new UsageError(`tollgate ${command}: unexpected argument "${parsed.positionals[positionals]}"`);
  }
  return parsed;
}

export function stringFlag(p: Parsed, name: string, fallback: string): string {
  const v = p.values[name];
  return typeof v === "string" ? v : fallback;
}

export function listFlag(p: Parsed, name: string): string[] {
  const v = p.values[name];
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : typeof v === "string" ? [v] : [];
}

/** A non-negative number of seconds, e.g. "15" or "0.5". */
export function secondsFlag(command: string, p: Parsed, name: string, fallback: number): number {
  const v = p.values[name];
  if (typeof v !== "string") return fallback;
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n) || n < 0) {
    throw new UsageError(`tollgate ${command}: --${name} must be a non-negative number of seconds, got "${v}"`);
  }
  return n;
}

export function positiveIntFlag(command: string, p: Parsed, name: string, fallback: number): number {
  const v = p.values[name];
  if (typeof v !== "string") return fallback;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n <= 0) {
    throw new UsageError(`tollgate ${command}: --${name} must be a positive integer, got "${v}"`);
  }
  return n;
}

const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"];

/** --log-level, falling back to TOLLGATE_LOG_LEVEL, then info. */
export function logLevelFlag(command: string, p: Parsed): string {
  const level = stringFlag(p, "log-level", Deno.env.get("TOLLGATE_LOG_LEVEL") ?? "info");
  if (!LOG_LEVELS.includes(level)) {
    throw new UsageError(`tollgate ${command}: --log-level must be trace, debug, info, warn or error, got "${level}"`);
  }
  return level;
}
