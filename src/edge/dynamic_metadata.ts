// Envoy's dynamic metadata for one HTTP request: filter namespace → struct (as decoded JSON). ext_proc writes it
// (only for namespaces listed in receiving_namespaces), the ratelimit filter and the access log read it.

export type DynamicMetadata = Map<string, Record<string, unknown>>;

/** Merges a processor's dynamic_metadata into the request's, keeping only the namespaces the filter accepts. */
export function mergeDynamicMetadata(
  into: DynamicMetadata,
  incoming: Readonly<Record<string, unknown>> | undefined,
  receivingNamespaces: readonly string[],
): void {
  if (!incoming) return;
  for (const [namespace, value] of Object.entries(incoming)) {
    if (!receivingNamespaces.includes(namespace)) continue;
    if (typeof value !== "object" || value === null || Array.isArray(value)) continue;
    into.set(namespace, { ...into.get(namespace), ...(value as Record<string, unknown>) });
  }
}

/** The value of %DYNAMIC_METADATA(namespace:key)%, or undefined. */
export function metadataValue(md: DynamicMetadata, namespace: string, key: string): unknown {
  return md.get(namespace)?.[key];
}
