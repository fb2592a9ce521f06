// Where a field of a parsed YAML document sits in its source, for line numbers in located errors.
import { type Document, isMap, isPair, isScalar, isSeq } from "yaml";
import type { PathSegment } from "./errors.ts";

/** Source offset of the deepest node on the path (the key, for a mapping entry). */
export function nodeOffset(doc: Document, path: readonly PathSegment[]): number | undefined {
  let node: unknown = doc.contents;
  let offset = isScalar(node) || isMap(node) || isSeq(node) ? node.range?.[0] : undefined;
  for (const segment of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(segment));
      if (!pair) break;
      if (isScalar(pair.key)) offset = pair.key.range?.[0] ?? offset;
      node = pair.value;
    } else if (isSeq(node) && typeof segment === "number") {
      node = node.items[segment];
      if (isScalar(node) || isMap(node) || isSeq(node)) offset = node.range?.[0] ?? offset;
    } else break;
  }
  return offset;
}

/** The document's value, or why YAML cannot give one (an alias to no anchor, too many aliases: a "billion laughs"). */
export function yamlValue(doc: { toJS(): unknown }): unknown {
  try {
    return doc.toJS();
  } catch (err) {
    return err instanceof Error ? err : new Error(String(err));
  }
}
