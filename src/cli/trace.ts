// eod trace <mountpoint> -o <trace.json> [-- command ...]
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import { EodError } from "../errors.ts";
import { callDaemon } from "../daemon/client.ts";
import { socketPathOf } from "../daemon/client.ts";
import type { Trace } from "../image/prefetch.ts";
import { parse } from "./args.ts";
import { loadConfig } from "../config/config.ts";

export const TRACE_USAGE = `Usage: eod trace <mountpoint> -o <trace.json> [--cache-dir <dir>] [-- <command> [args...]]

Records which files of a lazily mounted image a workload touches, in first-touch order, with the byte ranges
touched. With a command, the trace covers the command's run (the exit status is the command's); without one,
it runs until Ctrl-C. Feed the result to eod build --prefetch-from to make a later mount fetch those first.
Trace on a fresh cache: with fscache only misses are seen, and a complete blob raises no events at all.`;

export async function traceCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    output: { type: "string", short: "o" }, config: { type: "string" }, "cache-dir": { type: "string" }, help: { type: "boolean", short: "h" },
  }, TRACE_USAGE);
  if (values.help) { console.log(TRACE_USAGE); return 0; }
  if (positionals.length < 1 || !values.output) throw new EodError("USAGE", TRACE_USAGE);
  const [mountPoint, ...command] = positionals;
  const sock = socketPathOf(loadConfig(values).cacheDir);
  await callDaemon(sock, "POST", "/traces", { mountPoint });
  let status = 0;
  try {
    if (command.length) status = await run(command);
    else await interrupted();
  } finally {
    const trace = await callDaemon<Trace & { truncated: boolean }>(sock, "POST", "/traces/stop", { mountPoint });
    // One file per line: readable, diffable, and easy to cut by hand before --prefetch-from.
    const lines = trace.files.map((f) => JSON.stringify(f)).join(",\n");
    fs.writeFileSync(values.output, `{"mediaType": ${JSON.stringify(trace.mediaType)}, "image": ${JSON.stringify(trace.image)}, "files": [\n${lines}\n]}\n`);
    console.error(`eod: ${trace.files.length} file(s) touched, written to ${values.output}${trace.truncated ? " (the trace hit its size limit: later accesses are missing)" : ""}`);
  }
  return status;
}

function run(command: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(command[0], command.slice(1), { stdio: "inherit" });
    child.once("error", (err) => reject(new EodError("USAGE", `Cannot run ${command[0]}: ${err.message}`)));
    child.once("exit", (code, signal) => resolve(code ?? 128 + (signal ? os.constants.signals[signal] : 0)));
  });
}

function interrupted(): Promise<void> {
  return new Promise((resolve) => {
    process.once("SIGINT", () => resolve());
    process.once("SIGTERM", () => resolve());
  });
}
