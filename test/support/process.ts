// Runs bin/tollgate as a child process, as a user would, and reads its JSON log lines.
const root = new URL("../../", import.meta.url).pathname;
export const TOLLGATE = `${root}bin/tollgate`;

export async function runTollgate(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(TOLLGATE, { args, stdout: "piped", stderr: "piped", stdin: "null" }).output();
  const d = new TextDecoder();
  return { code: out.code, stdout: d.decode(out.stdout), stderr: d.decode(out.stderr) };
}

export interface Spawned extends AsyncDisposable {
  readonly child: Deno.ChildProcess;
  /** Resolves with the first JSON log line whose msg matches. */
  waitForLog(msg: string): Promise<Record<string, unknown>>;
  readonly lines: Record<string, unknown>[];
}

export function spawnTollgate(args: string[], env: Record<string, string> = {}): Spawned {
  const child = new Deno.Command(TOLLGATE, { args, env, stdout: "piped", stderr: "inherit", stdin: "null" }).spawn();
  const lines: Record<string, unknown>[] = [];
  const waiters: Array<{ msg: string; resolve: (l: Record<string, unknown>) => void }> = [];
  const reading = (async () => {
    let buf = "";
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const text = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let line: Record<string, unknown>;
        try {
          line = JSON.parse(text);
        } catch {
          line = { text };
        }
        lines.push(line);
        for (const w of waiters.splice(0)) {
          if (line.msg === w.msg) w.resolve(line);
          else waiters.push(w);
        }
      }
    }
  })();
  return {
    child,
    lines,
    waitForLog(msg) {
      const seen = lines.find((l) => l.msg === msg);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        waiters.push({ msg, resolve });
        child.status.then(() => reject(new Error(`tollgate exited before logging "${msg}"`)));
      });
    },
    async [Symbol.asyncDispose]() {
      try {
        child.kill("SIGKILL");
      } catch { /* already exited */ }
      await child.status;
      await reading;
    },
  };
}
