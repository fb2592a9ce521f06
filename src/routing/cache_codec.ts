// Byte encodings for cache records stored as JSON: response bodies as base64, unit embeddings as little-endian
// float32 in base64 (a quarter of the size of JSON numbers, and exact for what the cache compares).

const CHUNK = 0x8000;

export function encodeBase64(bytes: Uint8Array): string {
  let binary = "";
  // String.fromCharCode takes its bytes as arguments: in chunks, to stay under the engine's argument limit.
  for (let i = 0; i < bytes.length; i += CHUNK) binary += String.fromCharCode(...bytes.subarray(i, i + CHUNK));
  return btoa(binary);
}

export function decodeBase64(text: string): Uint8Array {
  const binary = atob(text);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

export function encodeUnit(unit: Float32Array): string {
  const bytes = new Uint8Array(unit.length * 4);
  const view = new DataView(bytes.buffer);
  unit.forEach((x, i) => view.setFloat32(i * 4, x, true));
  return encodeBase64(bytes);
}

/** The vector, or undefined when the text is not whole float32 values. */
export function decodeUnit(text: string): Float32Array | undefined {
  let bytes: Uint8Array;
  try {
    bytes = decodeBase64(text);
  } catch {
    return undefined;
  }
  if (bytes.length === 0 || bytes.length % 4 !== 0) return undefined;
  const view = new DataView(bytes.buffer);
  return Float32Array.from({ length: bytes.length / 4 }, (_, i) => view.getFloat32(i * 4, true));
}
