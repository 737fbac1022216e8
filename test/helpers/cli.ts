// Runs the eod CLI as a child process with this Node, the way a user would.
import { spawnSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const CLI = path.join(REPO, "bin/eod.mjs");

export interface CliResult {
  status: number | null;
  /** The signal that killed it, if one did. */
  signal?: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Signals with which qemu's TCG emulator (the kernel lab, RUNVM=1) now and then kills Node: V8 fails a JIT check
 *  or faults. The host never shows it; the README (Development) says what was measured. */
const EMULATOR_CRASHES: readonly string[] = ["SIGSEGV", "SIGTRAP", "SIGILL", "SIGBUS"];

export function eod(...args: string[]): CliResult {
  const run = () => spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", maxBuffer: 256 << 20 });
  let r = run();
  // In the emulator only: a one-shot command the emulator crashed is run again (twice at most), and says so.
  for (let again = 0; again < 2 && process.env.RUNVM === "1" && r.signal && EMULATOR_CRASHES.includes(r.signal); again++) {
    process.stderr.write(`eod ${args.join(" ")} was killed by ${r.signal} under the emulator: running it again\n`);
    r = run();
  }
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

/** Runs eod and throws with its stderr unless it exits 0 (the message names the signal that killed it, if any). */
export function eodOk(...args: string[]): string {
  const r = eod(...args);
  if (r.status !== 0) {
    const how = r.signal ? `was killed by ${r.signal}` : `exited ${r.status}`;
    throw new Error(`eod ${args.join(" ")} ${how}:\n${r.stderr}${r.stdout}`);
  }
  return r.stdout;
}

/** Runs a system tool and returns its status and output. */
export function tool(cmd: string, args: string[]): CliResult {
  const r = spawnSync(cmd, args, { encoding: "utf8", maxBuffer: 64 << 20 });
  return { status: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? (r.error ? String(r.error) : "") };
}

export function haveTool(cmd: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;
}
