// Runs the eod CLI as a child process with this Node, the way a user would.
import { spawnSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const CLI = path.join(REPO, "bin/eod.mjs");

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function eod(...args: string[]): CliResult {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", maxBuffer: 256 << 20 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Runs eod and throws with its stderr unless it exits 0. */
export function eodOk(...args: string[]): string {
  const r = eod(...args);
  if (r.status !== 0) throw new Error(`eod ${args.join(" ")} exited ${r.status}:\n${r.stderr}${r.stdout}`);
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
