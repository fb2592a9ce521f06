// A bounded table of counts by label: at most `capacity` labels, plus one "other" cell. A new label arriving when the
// table is full evicts the smallest label (fewest tokens, then fewest requests) into "other" and starts its own count
// — the Space-Saving rule — so labels that keep coming back hold on to their row, and the table's total is always
// exactly what was added.
export interface Cell {
  requests: number;
  tokens: number;
  inputTokens: number;
  outputTokens: number;
  errors: number;
}

export function emptyCell(): Cell {
  return { requests: 0, tokens: 0, inputTokens: 0, outputTokens: 0, errors: 0 };
}

export class LabelTable {
  readonly capacity: number;
  readonly #cells = new Map<string, Cell>();
  #other: Cell | undefined;

  constructor(capacity: number) {
    this.capacity = capacity;
  }

  /** Labels held, "other" included. */
  get size(): number {
    return this.#cells.size + (this.#other ? 1 : 0);
  }

  add(label: string, add: Readonly<Cell>): void {
    let cell = this.#cells.get(label);
    if (!cell) {
      if (this.#cells.size >= this.capacity) this.#evictSmallest();
      this.#cells.set(label, cell = emptyCell());
    }
    addCell(cell, add);
  }

  get(label: string): Readonly<Cell> | undefined {
    return this.#cells.get(label);
  }

  /** Every label with its cell, then "other" when anything was evicted into it. */
  *entries(): IterableIterator<[string, Readonly<Cell>]> {
    yield* this.#cells;
    if (this.#other) yield ["other", this.#other];
  }

  total(): Cell {
    const t = emptyCell();
    for (const [, c] of this.entries()) addCell(t, c);
    return t;
  }

  #evictSmallest(): void {
    let smallest: [string, Cell] | undefined;
    for (const entry of this.#cells) {
      const [, c] = entry;
      if (
        !smallest || c.tokens < smallest[1].tokens ||
        (c.tokens === smallest[1].tokens && c.requests < smallest[1].requests)
      ) {
        smallest = entry;
      }
    }
    if (!smallest) return;
    this.#cells.delete(smallest[0]);
    addCell(this.#other ??= emptyCell(), smallest[1]);
  }
}

export function addCell(into: Cell, add: Readonly<Cell>): void {
  into.requests += add.requests;
  into.tokens += add.tokens;
  into.inputTokens += add.inputTokens;
  into.outputTokens += add.outputTokens;
  into.errors += add.errors;
}
