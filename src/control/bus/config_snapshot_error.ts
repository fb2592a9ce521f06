// The error of a config snapshot that cannot be encoded, decoded or checked (its own file, so the canonical encoder
// and the snapshot envelope can both throw it without importing each other).
export class ConfigSnapshotError extends Error {
  override readonly name: string = "ConfigSnapshotError";
}
