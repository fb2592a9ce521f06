// An HTTP header list as Envoy holds it: ordered, lower-case names, repeated names allowed, pseudo-headers
// (:method, :path, :authority, :scheme, :status) alongside the others.

export class HeaderList {
  #entries: [string, string][];

  constructor(entries: Iterable<readonly [string, string]> = []) {
    this.#entries = [];
    for (const [k, v] of entries) this.#entries.push([k.toLowerCase(), v]);
  }

  static fromHeaders(h: Headers, pseudo: Readonly<Record<string, string>> = {}): HeaderList {
    const list = new HeaderList(Object.entries(pseudo));
    h.forEach((v, k) => list.#entries.push([k, v]));
    return list;
  }

  get(name: string): string | undefined {
    const n = name.toLowerCase();
    for (const [k, v] of this.#entries) if (k === n) return v;
    return undefined;
  }

  has(name: string): boolean {
    return this.get(name) !== undefined;
  }

  /** Replaces every value of `name` with one value, keeping the position of the first. */
  set(name: string, value: string): void {
    const n = name.toLowerCase();
    let placed = false;
    this.#entries = this.#entries.flatMap(([k, v]): [string, string][] => {
      if (k !== n) return [[k, v]];
      if (placed) return [];
      placed = true;
      return [[k, value]];
    });
    if (!placed) this.#entries.push([n, value]);
  }

  append(name: string, value: string): void {
    this.#entries.push([name.toLowerCase(), value]);
  }

  remove(name: string): void {
    const n = name.toLowerCase();
    this.#entries = this.#entries.filter(([k]) => k !== n);
  }

  entries(): readonly (readonly [string, string])[] {
    return this.#entries;
  }

  /** Regular headers only (no pseudo-headers), for an HTTP/1.1 or fetch request/response. */
  toHeaders(): Headers {
    const h = new Headers();
    for (const [k, v] of this.#entries) if (!k.startsWith(":")) h.append(k, v);
    return h;
  }

  clone(): HeaderList {
    return new HeaderList(this.#entries);
  }

  /** A read-only lower-case name → first value view (what descriptors and route matching read). */
  toMap(): Map<string, string> {
    const m = new Map<string, string>();
    for (const [k, v] of this.#entries) if (!m.has(k)) m.set(k, v);
    return m;
  }
}
