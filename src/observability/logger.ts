// Structured JSON logs through pino. Credentials must never reach a log line: callers never log header maps or
// bodies, and these redaction paths catch the usual names if a structure slips through.
import pino from "pino";

export type Logger = pino.Logger;

export const REDACTED_PATHS = [
  "authorization",
  "*.authorization",
  "headers.authorization",
  "headers['api-key']",
  "headers['x-api-key']",
  "*.apiKey",
  "*.api_key",
  "*.password",
  "*.secret",
  "*.token",
  "*.secretAccessKey",
];

export interface LoggerOptions {
  readonly level?: string;
  /** Where lines go; stdout when omitted. */
  readonly destination?: pino.DestinationStream;
  readonly role?: string;
}

export function createLogger(o: LoggerOptions = {}): Logger {
  const options: pino.LoggerOptions = {
    level: o.level ?? Deno.env.get("TOLLGATE_LOG_LEVEL") ?? "info",
    base: o.role ? { role: o.role } : {},
    redact: { paths: REDACTED_PATHS, censor: "[redacted]" },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  return o.destination ? pino(options, o.destination) : pino(options);
}

/** A logger that writes nothing (benchmarks and tests that do not read logs). */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
