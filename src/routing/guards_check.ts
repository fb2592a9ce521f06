// The guards of a routed request, before anything is looked up or chosen: jailbreak and prompt-injection detection
// (weighted patterns, then the user's classifier when configured) and PII detection. A block is a 403 in the
// client's error format with a reason code; a classifier that is down fails open or closed as configured (closed
// answers 503: the request was not judged, it could not be). PII found without a block is returned for the
// per-model policies of model selection.
import type { OpenAIError } from "../protocol/openai/errors.ts";
import type { JailbreakGuardConfig, PiiGuardConfig } from "./config.ts";
import { classifyJailbreakRemote, scoreJailbreak } from "./jailbreak.ts";
import { detectPii, type PiiType, piiTypes } from "./pii.ts";

export type GuardResult =
  | { readonly kind: "pass"; readonly piiTypes: readonly PiiType[]; readonly notes: readonly string[] }
  | { readonly kind: "blocked"; readonly error: OpenAIError; readonly notes: readonly string[] };

export interface GuardConfig {
  readonly jailbreak?: JailbreakGuardConfig;
  readonly pii?: PiiGuardConfig;
  /** Whether any model has a PII policy, so detection is needed even without a PII guard. */
  readonly piiPolicies: boolean;
}

export function blockedError(code: string, message: string): OpenAIError {
  return { status: 403, type: "invalid_request_error", code, message, details: `tollgate_${code}` };
}

export async function checkGuards(config: GuardConfig, text: string, signal: AbortSignal): Promise<GuardResult> {
  const notes: string[] = [];
  const jb = config.jailbreak;
  if (jb && text.length > 0) {
    const local = scoreJailbreak(text, { threshold: jb.threshold });
    if (local.jailbreak) {
      notes.push(`jailbreak:${local.score.toFixed(2)}(${local.matched.join("+")})`);
      return {
        kind: "blocked",
        error: blockedError(
          "jailbreak_detected",
          "The request was blocked: it looks like a jailbreak or prompt injection",
        ),
        notes,
      };
    }
    if (jb.remote) {
      try {
        const remote = await classifyJailbreakRemote(text, {
          url: jb.remote.url,
          timeoutMs: jb.remote.timeoutMs,
          signal,
        });
        if (remote.jailbreak) {
          notes.push(`jailbreak_classifier:${remote.score.toFixed(2)}`);
          return {
            kind: "blocked",
            error: blockedError(
              "jailbreak_detected",
              "The request was blocked: it looks like a jailbreak or prompt injection",
            ),
            notes,
          };
        }
      } catch (e) {
        if (signal.aborted) throw signal.reason;
        notes.push("jailbreak_classifier_unavailable");
        if (jb.remote.failureMode === "closed") {
          return {
            kind: "blocked",
            error: {
              status: 503,
              type: "server_error",
              code: "guard_unavailable",
              message: `The request cannot be checked now: ${(e as Error).message}`,
              details: "tollgate_guard_unavailable",
            },
            notes,
          };
        }
      }
    }
  }
  if (!config.pii && !config.piiPolicies) return { kind: "pass", piiTypes: [], notes };
  const found = piiTypes(detectPii(text, {
    ...(config.pii && config.pii.types.length > 0 ? { types: config.pii.types } : {}),
    ...(config.pii ? { allow: config.pii.allow } : {}),
  }));
  if (found.length > 0) notes.push(`pii:${found.join("+")}`);
  if (found.length > 0 && config.pii?.action === "block") {
    return {
      kind: "blocked",
      // The types, never the values: an error body may be logged anywhere.
      error: blockedError("pii_detected", `The request was blocked: it contains personal data (${found.join(", ")})`),
      notes,
    };
  }
  return { kind: "pass", piiTypes: found, notes };
}
