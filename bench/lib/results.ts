// Where a benchmark's results go: bench/results/<bench>-<UTC timestamp>.json, with the commit measured.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { REPO } from "./paths.ts";

/** `git <args>` in the repository; its trimmed stdout, or null if git failed. */
export function git(...args: string[]): string | null {
  const r = spawnSync("git", ["-C", REPO, ...args], { encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : null;
}

/** The commit benchmarked, and whether the working tree differed from it (then the numbers are of neither). */
export function gitState(): { commit: string | null; dirty: boolean } {
  return { commit: git("rev-parse", "HEAD"), dirty: (git("status", "--porcelain") ?? "") !== "" };
}

/** The machine measured (a 2-CPU VM and a workstation give different numbers). */
export function hostInfo(): { kernel: string; cpu: string | null; cpus: number; mem_mib: number } {
  const cpus = os.cpus();
  return { kernel: os.release(), cpu: cpus[0]?.model ?? null, cpus: cpus.length, mem_mib: Math.round(os.totalmem() / 1048576) };
}

/** Writes `data` as bench/results/<bench>-<UTC timestamp>.json; returns the file's path. */
export function writeResults(bench: string, data: unknown): string {
  const stamp = new Date().toISOString().replace(/:/g, "").replace(/\.\d+Z$/, "Z");
  const file = path.join(REPO, "bench/results", `${bench}-${stamp}.json`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, `${JSON.stringify(data, null, 2)}\n`);
  return file;
}
