// Flag values shared by the benchmarks.

/** A whole number of at least `min` from a flag's text, or an error naming the flag. */
export function intFlag(name: string, text: string, min: number): number {
  const n = Number(text);
  if (text.trim() === "" || !Number.isSafeInteger(n) || n < min) {
    throw new Error(`--${name} must be an integer of at least ${min}, got "${text}"`);
  }
  return n;
}
