// `tollgate extproc` runs its server in a worker process and restarts it at once when it crashes. Deno 2.9.6's
// node:http2 can abort the whole process when a client closes an HTTP/2 connection that has carried a few hundred
// streams (nghttp2 assertion in find_stream_on_goaway_func, denoland/deno#36788) — a crash no JavaScript can catch.
// Envoy closes its connections on drains and idle timeouts, so without a supervisor the container would restart
// instead, behind Kubernetes' growing crash-loop back-off, and every request in the meantime fails. The supervisor
// only restarts crashes (killed by a signal, or an abort/segfault exit code); a clean exit or a startup error (exit
// 1, 2) ends it with the worker's code, and too many crashes in a minute end it with the last one.
import process from "node:process";
import { createLogger } from "../observability/logger.ts";

/** Set in the worker's environment so that it serves instead of supervising. */
export const WORKER_ENV = "TOLLGATE_SUPERVISED_WORKER";

export interface SupervisorOptions {
  readonly command: string;
  readonly args: readonly string[];
  /** Restarts allowed within any 60 s; one more crash ends the supervisor. */
  readonly restartsPerMinute: number;
  readonly logLevel: string;
}

const ROOT = new URL("../../", import.meta.url).pathname;

/** An abnormal end worth a restart: a signal (SIGABRT, SIGSEGV, SIGKILL…) or the shell's 128+N for one. */
export function isCrash(status: Deno.CommandStatus): boolean {
  return status.signal !== null || status.code >= 128;
}

export function isSupervisedWorker(): boolean {
  return Deno.env.get(WORKER_ENV) === "1";
}

/**
 * In a worker: exits when the supervisor is gone (killed with SIGKILL, it could not stop us), so no orphan keeps
 * the socket. Returns the stop function.
 */
export function exitWithSupervisor(intervalMs = 500): () => void {
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid !== parent) {
      console.error("tollgate: the supervisor is gone; the worker exits");
      Deno.exit(1);
    }
  }, intervalMs);
  Deno.unrefTimer(timer);
  return () => clearInterval(timer);
}

export async function supervise(o: SupervisorOptions): Promise<number> {
  const logger = createLogger({ level: o.logLevel, role: `${o.command}-supervisor` });
  let stopping: Deno.Signal | undefined;
  let child: Deno.ChildProcess | undefined;
  for (const s of ["SIGTERM", "SIGINT"] as const) {
    Deno.addSignalListener(s, () => {
      stopping = s;
      try {
        child?.kill(s);
      } catch { /* between two workers */ }
    });
  }
  const crashes: number[] = [];
  for (;;) {
    child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        "--allow-all",
        "--config",
        `${ROOT}deno.json`,
        `${ROOT}src/main.ts`,
        o.command,
        ...o.args,
      ],
      env: { [WORKER_ENV]: "1" },
      stdin: "null",
      stdout: "inherit",
      stderr: "inherit",
    }).spawn();
    if (crashes.length === 0) logger.info({ worker: child.pid }, "Worker started");
    const status = await child.status;
    if (stopping) return status.signal === null ? status.code : 0;
    if (!isCrash(status)) {
      logger.info({ worker: child.pid, code: status.code }, "Worker exited");
      return status.code;
    }
    const now = Date.now();
    crashes.push(now);
    while (crashes.length > 0 && crashes[0]! < now - 60_000) crashes.shift();
    if (crashes.length > o.restartsPerMinute) {
      logger.error(
        { worker: child.pid, code: status.code, signal: status.signal, crashes: crashes.length },
        "Worker crashed too often; giving up",
      );
      return status.code === 0 ? 1 : status.code;
    }
    logger.error(
      { worker: child.pid, code: status.code, signal: status.signal, crashesLastMinute: crashes.length },
      "Worker crashed; restarting it",
    );
    // A short pause, growing with the crashes of the last minute, so a worker that dies at start does not spin.
    await new Promise((r) => setTimeout(r, Math.min(50 * 2 ** (crashes.length - 1), 2000)));
    if (stopping) return 0;
  }
}
