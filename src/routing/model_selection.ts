// From candidates to one model: best score first, skipping a model that may not receive the PII the prompt carries
// or whose context window the prompt does not fit; the fallback model is the last candidate. When no candidate may
// receive the PII, the request is blocked. Then the chosen model's reasoning family says how to switch reasoning on
// (or off) in the body. Pure.
import type { ModelPolicyConfig, ModelRef, ReasoningEffort, ReasoningFamilyConfig } from "./config.ts";
import type { PiiType } from "./pii.ts";

export type Selection =
  | {
    readonly kind: "selected";
    readonly model: string;
    readonly reasoning: boolean;
    /** Better-scored models passed over, and why. */
    readonly skipped: readonly { readonly model: string; readonly why: "pii" | "context" }[];
  }
  | { readonly kind: "blocked"; readonly piiTypes: readonly PiiType[] };

export interface SelectionContext {
  readonly piiTypes: readonly PiiType[];
  readonly estimatedTokens: number;
  readonly policies: ReadonlyMap<string, ModelPolicyConfig>;
}

export function mayReceive(policy: ModelPolicyConfig | undefined, types: readonly PiiType[]): boolean {
  if (!policy) return true;
  const { allowByDefault, allowed, denied } = policy.pii;
  return types.every((t) => allowByDefault ? !denied.includes(t) : allowed.includes(t));
}

export function selectModel(candidates: readonly ModelRef[], fallback: string, ctx: SelectionContext): Selection {
  const list = candidates.some((c) => c.model === fallback)
    ? candidates
    : [...candidates, { model: fallback, score: 0, reasoning: false }];
  const skipped: { model: string; why: "pii" | "context" }[] = [];
  let tooLong: ModelRef | undefined;
  for (const c of list) {
    const policy = ctx.policies.get(c.model);
    if (!mayReceive(policy, ctx.piiTypes)) {
      skipped.push({ model: c.model, why: "pii" });
      continue;
    }
    const window = policy?.contextWindow;
    if (window !== undefined && ctx.estimatedTokens > window) {
      skipped.push({ model: c.model, why: "context" });
      const best = tooLong && ctx.policies.get(tooLong.model)?.contextWindow;
      if (!tooLong || (best !== undefined && window > best)) tooLong = c;
      continue;
    }
    return { kind: "selected", model: c.model, reasoning: c.reasoning, skipped };
  }
  // Every model PII allows is too small: the largest of them, and the model says what it thinks of the length.
  if (tooLong) return { kind: "selected", model: tooLong.model, reasoning: tooLong.reasoning, skipped };
  return { kind: "blocked", piiTypes: ctx.piiTypes };
}

/**
 * The body with reasoning set for the chosen model, or the same object when nothing changes. A value the client set
 * itself is kept: routing chooses a default, the client's explicit choice wins.
 */
export function applyReasoning(
  body: Readonly<Record<string, unknown>>,
  family: ReasoningFamilyConfig | undefined,
  reasoning: boolean,
  effort: ReasoningEffort | undefined,
): Readonly<Record<string, unknown>> {
  if (!family) return body;
  if (family.type === "chat_template_kwargs") {
    const kwargs = body.chat_template_kwargs;
    const current = typeof kwargs === "object" && kwargs !== null && !Array.isArray(kwargs)
      ? kwargs as Record<string, unknown>
      : {};
    if (family.parameter in current) return body;
    return { ...body, chat_template_kwargs: { ...current, [family.parameter]: reasoning } };
  }
  if (!reasoning || body[family.parameter] !== undefined) return body;
  return { ...body, [family.parameter]: effort ?? "medium" };
}
