// `--listen` values: unix:///abs/path.sock (the sidecar default), or host:port for TCP.

export type ListenAddress =
  | { readonly kind: "unix"; readonly path: string }
  | { readonly kind: "tcp"; readonly host: string; readonly port: number };

export function parseListenAddress(text: string): ListenAddress {
  if (text.startsWith("unix://")) {
    const path = text.slice("unix://".length);
    if (!path.startsWith("/")) throw new Error(`Invalid listen address "${text}": a Unix socket path must be absolute`);
    return { kind: "unix", path };
  }
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\[\]]*)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) {
    throw new Error(`Invalid listen address "${text}": expected unix:///path.sock, HOST:PORT or :PORT`);
  }
  return { kind: "tcp", host: m[1] ?? (m[2] || "0.0.0.0"), port };
}

/** The address in grpc-js's bind syntax, which is also how we print it. */
export function formatListenAddress(a: ListenAddress): string {
  return a.kind === "unix" ? `unix://${a.path}` : `${a.host.includes(":") ? `[${a.host}]` : a.host}:${a.port}`;
}
