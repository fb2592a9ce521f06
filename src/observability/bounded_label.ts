// A Prometheus label fed from request data (a model name, a tenant) with a cap on distinct values. Every value is
// a time series held until the process exits, so a client that invents a new model name per request would
// otherwise grow the registry without bound. The first `cap` values seen keep their name; later ones share
// `overflow`.

export class BoundedLabel {
  readonly #seen = new Set<string>();
  readonly #cap: number;
  readonly #overflow: string;

  constructor(cap: number, overflow: string) {
    if (!Number.isSafeInteger(cap) || cap < 0) throw new RangeError(`A label cap must be an integer >= 0, got ${cap}`);
    this.#cap = cap;
    this.#overflow = overflow;
  }

  /** The label value to record for `value`. */
  of(value: string): string {
    if (this.#seen.has(value)) return value;
    if (this.#seen.size >= this.#cap) return this.#overflow;
    this.#seen.add(value);
    return value;
  }

  /** Distinct values admitted so far. */
  get size(): number {
    return this.#seen.size;
  }
}
