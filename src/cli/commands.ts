// Every `tollgate` subcommand: its flags, its help, and what it runs.
import { type FlagSpec, parseFlags, UsageError } from "./args.ts";
import { AGGREGATOR_FLAGS, AGGREGATOR_HELP, aggregatorCommand } from "./aggregator_command.ts";
import { CONTROLLER_FLAGS, CONTROLLER_HELP, controllerCommand } from "./controller_command.ts";
import { crashRestarts, EXTPROC_FLAGS, EXTPROC_HELP, runSidecar, sidecarOptions } from "./extproc_command.ts";
import { exitWithSupervisor, isSupervisedWorker, supervise } from "./supervisor.ts";
import { VERSION } from "../version.ts";
import { RUN_FLAGS, RUN_HELP, runGateway } from "./run_command.ts";
import { RENDER_FLAGS, RENDER_HELP, renderCommand } from "./render_command.ts";
import { VALIDATE_HELP, validateCommand } from "./validate_command.ts";
import { EVAL_FLAGS, EVAL_HELP, evalCommand } from "./eval_command.ts";

export interface Command {
  readonly summary: string;
  readonly help: string;
  readonly flags: FlagSpec;
  readonly positionals?: number;
  run(args: readonly string[]): Promise<number>;
}

export const COMMANDS: Readonly<Record<string, Command>> = {
  extproc: {
    summary: "Run the ExtProc sidecar (gRPC, Unix socket or TCP)",
    help: EXTPROC_HELP,
    flags: EXTPROC_FLAGS,
    run: (args) => {
      const p = parseFlags("extproc", args, EXTPROC_FLAGS);
      const o = sidecarOptions("extproc", p, "unix:///tmp/tollgate/extproc.sock");
      const restarts = crashRestarts("extproc", p);
      if (restarts > 0 && !isSupervisedWorker()) {
        return supervise({ command: "extproc", args, restartsPerMinute: restarts, logLevel: o.logLevel });
      }
      if (isSupervisedWorker()) exitWithSupervisor();
      return runSidecar("extproc", o);
    },
  },
  run: {
    summary: "Run the whole gateway in one process: the edge on :1975, the ExtProc server, a demo provider",
    help: RUN_HELP,
    flags: RUN_FLAGS,
    positionals: 64,
    run: (args) => runGateway(parseFlags("run", args, RUN_FLAGS, 64)),
  },
  aggregator: {
    summary: "Fold usage events from NATS JetStream into rate-limit windows and serve Envoy's rate limit service",
    help: AGGREGATOR_HELP,
    flags: AGGREGATOR_FLAGS,
    run: aggregatorCommand,
  },
  controller: {
    summary: "Watch resources, compile them and publish config snapshots to NATS KV (leader-elected)",
    help: CONTROLLER_HELP,
    flags: CONTROLLER_FLAGS,
    run: controllerCommand,
  },
  validate: {
    summary: "Validate Envoy AI Gateway resources (YAML): every error with file, document and path",
    help: VALIDATE_HELP,
    flags: {},
    positionals: 64,
    run: (args) => validateCommand(parseFlags("validate", args, {}, 64)),
  },
  render: {
    summary: "Render configuration for real Envoy from the same topology",
    help: RENDER_HELP,
    flags: RENDER_FLAGS,
    positionals: 64,
    run: (args) => renderCommand(parseFlags("render", args, RENDER_FLAGS, 64)),
  },
  eval: {
    summary: "Evaluate semantic routing and the guards on a labelled JSONL file (routing, pii, jailbreak)",
    help: EVAL_HELP,
    flags: EVAL_FLAGS,
    positionals: 2,
    run: evalCommand,
  },
  version: {
    summary: "Print the version",
    help: "Usage: tollgate version\n\nPrints Tollgate's version and the Deno it runs on.\n",
    flags: {},
    run: () => {
      console.log(`tollgate ${VERSION} (deno ${Deno.version.deno}, v8 ${Deno.version.v8})`);
      return Promise.resolve(0);
    },
  },
};

export function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((k) => k.length));
  const lines = Object.entries(COMMANDS).map(([k, c]) => `  ${k.padEnd(width)}  ${c.summary}`);
  return `Usage: tollgate <command> [flags]\n\nCommands:\n${
    lines.join("\n")
  }\n\nRun "tollgate <command> --help" for a command's flags.\n`;
}

/** Runs argv; returns the process exit code. */
export async function dispatch(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "help" || name === "--help" || name === "-h") {
    console.log(usage());
    return name === undefined ? 2 : 0;
  }
  if (name === "--version") return COMMANDS.version!.run([]);
  const command = COMMANDS[name];
  if (!command) {
    throw new UsageError(`tollgate: unknown command "${name}"; commands: ${Object.keys(COMMANDS).join(", ")}`);
  }
  const p = parseFlags(name, rest, command.flags, command.positionals ?? 0);
  if (p.values.help) {
    console.log(command.help);
    return 0;
  }
  return await command.run(rest);
}
