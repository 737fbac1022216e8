// Child processes of a benchmark, timed: a command, or the eod CLI. Output is kept (capped) for reports.
import { spawn } from "node:child_process";
import { EOD, NODE } from "./paths.ts";

export interface RunResult { code: number | null; signal: string | null; stdout: string; stderr: string; seconds: number; timedOut: boolean }

/** Pids of the children running now: what an interrupted bench kills before it cleans up. */
export const runningChildren = new Set<number>();

const OUTPUT_CAP = 1 << 20;

export function run(cmd: string, args: string[], opts: { timeoutMs?: number; env?: Record<string, string>; stdout?: "pipe" | "ignore" } = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(cmd, args, { stdio: ["ignore", opts.stdout ?? "pipe", "pipe"], env: { ...process.env, ...opts.env } });
    if (child.pid) runningChildren.add(child.pid);
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    child.stdout?.setEncoding("utf8").on("data", (d: string) => { if (stdout.length < OUTPUT_CAP) stdout += d; });
    child.stderr!.setEncoding("utf8").on("data", (d: string) => { if (stderr.length < OUTPUT_CAP) stderr += d; });
    const timer = setTimeout(() => { timedOut = true; child.kill("SIGKILL"); }, opts.timeoutMs ?? 300_000);
    const done = (code: number | null, signal: string | null, err?: Error) => {
      clearTimeout(timer);
      if (child.pid) runningChildren.delete(child.pid);
      resolve({ code, signal, stdout, stderr: err ? `${stderr}spawn error: ${err.message}` : stderr, seconds: Number(process.hrtime.bigint() - t0) / 1e9, timedOut });
    };
    child.on("error", (err) => done(null, null, err));
    child.on("close", (code, signal) => done(code, signal));
  });
}

/** How a run ended, for messages. */
export function describe(r: RunResult): string {
  return r.timedOut ? "timed out" : r.signal ? `killed by ${r.signal}` : `exit ${r.code}`;
}

export function eod(args: string[], opts: { timeoutMs?: number } = {}): Promise<RunResult> {
  return run(NODE, [EOD, ...args], opts);
}

/**
 * `eod <args>` that must succeed; returns its stdout. `retryWhen`: a failure worth one more try (e.g. the
 * emulator crashing V8 at start-up, not eod failing).
 */
export async function eodOk(args: string[], timeoutMs = 600_000, retryWhen?: (r: RunResult) => boolean): Promise<string> {
  let r = await eod(args, { timeoutMs });
  if (r.code !== 0 && retryWhen?.(r)) r = await eod(args, { timeoutMs });
  if (r.code !== 0) throw new Error(`eod ${args.join(" ")}: ${describe(r)}\n${r.stderr.trim().slice(-2000)}`);
  return r.stdout;
}
