// Helpers for lazy-mount tests: an `eod serve` child process and cleanup of daemons and mounts by pid.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { eodOk, REPO } from "./cli.ts";
import { abortFuseConnection } from "../../src/sys/fuse.ts";

const EOD = path.join(REPO, "bin/eod.mjs");

export interface Served {
  url: string;
  pid: number;
  setFaults(rule: object | null): Promise<void>;
  stats(): Promise<{ requests: number; bytes: number; byPath: Record<string, { requests: number; bytes: number }> }>;
  resetStats(): Promise<void>;
  stop(): void;
}

const children = new Set<ChildProcess>();
process.on("exit", () => { for (const c of children) c.kill("SIGKILL"); });

/** Starts `eod serve <dir> --listen 127.0.0.1:0` and waits for its URL line. */
export async function serve(dir: string, ...args: string[]): Promise<Served> {
  const child = spawn(process.execPath, [EOD, "serve", dir, "--listen", "127.0.0.1:0", ...args], { stdio: ["ignore", "pipe", "inherit"] });
  children.add(child);
  const url = await new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (c: Buffer) => {
      out += c.toString();
      const line = out.split("\n")[0];
      if (out.includes("\n")) resolve(line.trim());
    });
    child.once("exit", (code) => reject(new Error(`eod serve exited ${code}`)));
  });
  const ctl = async (method: string, p: string, body?: unknown) => {
    const r = await fetch(new URL(p, url), { method, body: body === undefined ? undefined : JSON.stringify(body), headers: { "content-type": "application/json" } });
    if (!r.ok) throw new Error(`${method} ${p}: HTTP ${r.status}`);
    return r.headers.get("content-type")?.includes("json") ? r.json() : r.text();
  };
  return {
    url, pid: child.pid!,
    async setFaults(rule) { await (rule ? ctl("POST", "_eod/faults", rule) : ctl("DELETE", "_eod/faults")); },
    async stats() { return (await ctl("GET", "_eod/stats")) as Awaited<ReturnType<Served["stats"]>>; },
    async resetStats() { await ctl("POST", "_eod/stats/reset"); },
    stop() { child.kill("SIGTERM"); children.delete(child); },
  };
}

/** Files of random bytes (name → size) in <work>/src, built into <work>/img (256 KiB chunks) and served over HTTP. */
export async function serveRandomFiles(work: string, files: Record<string, number>): Promise<{ src: string; server: Served }> {
  const src = path.join(work, "src");
  fs.mkdirSync(src);
  for (const [name, size] of Object.entries(files)) fs.writeFileSync(path.join(src, name), randomBytes(size));
  const img = path.join(work, "img");
  eodOk("build", src, "-o", img, "--chunk-size", "256K");
  return { src, server: await serve(img) };
}

/** Bytes the server sent for paths under blobs/ that are not chunk tables. */
export function blobBytes(stats: { byPath: Record<string, { bytes: number }> }): number {
  return Object.entries(stats.byPath).filter(([p]) => p.startsWith("blobs/") && !p.endsWith(".ctab")).reduce((n, [, v]) => n + v.bytes, 0);
}

/** Unmounts everything mounted below `root` and kills the holder and the daemon of `cacheDir` (by their pid files). */
export function cleanup(root: string, cacheDir?: string): void {
  if (cacheDir) { // before the unmounts: the cache directory may live on a file system under root
    for (const f of ["holder.pid", "daemon.pid"]) { // the holder first, or it starts a new daemon
      try {
        const pid = Number(fs.readFileSync(path.join(cacheDir, f), "utf8"));
        if (pid > 1) process.kill(pid, "SIGKILL");
      } catch { /* none */ }
    }
  }
  const mounted = fs.readFileSync("/proc/self/mounts", "utf8").split("\n").map((l) => l.split(" ")[1]?.replace(/\\040/g, " "))
    .filter((m): m is string => !!m && (m === root || m.startsWith(`${root}/`))).reverse(); // not a sibling like root2
  // A FUSE connection whose server is gone but whose fd someone still holds leaves its readers (and a plain
  // umount) waiting: end it first.
  for (const m of mounted) {
    try { abortFuseConnection(m); } catch { /* not FUSE, or gone meanwhile */ }
  }
  for (const m of mounted) spawnSync("umount", ["-l", m]);
}

/** Runs `eod` with the given env additions; resolves with status and output (never throws). */
export function eodAsync(args: string[], env: Record<string, string> = {}): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [EOD, ...args], { env: { ...process.env, ...env } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => { stdout += c; });
    child.stderr.on("data", (c: Buffer) => { stderr += c; });
    child.on("close", (status) => resolve({ status, stdout, stderr })); // after the output, unlike "exit"
  });
}

/** Reads a file in a child process (so a blocked read never blocks the test); resolves with its sha256 or its error code. */
export function readInChild(file: string, timeoutMs = 60_000): Promise<{ sha256?: string; error?: string; zeros?: number }> {
  const script = `
    const fs = require("node:fs"); const c = require("node:crypto");
    try { const b = fs.readFileSync(process.argv[1]); let z = 0; for (const x of b) if (x === 0) z++;
      console.log(JSON.stringify({ sha256: c.createHash("sha256").update(b).digest("hex"), zeros: z })); }
    catch (e) { console.log(JSON.stringify({ error: e.code ?? e.message })); }`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["-e", script, file], { stdio: ["ignore", "pipe", "inherit"] });
    children.add(child);
    let out = "";
    const timer = setTimeout(() => { child.kill("SIGKILL"); reject(new Error(`reading ${file} took over ${timeoutMs} ms`)); }, timeoutMs);
    child.stdout.on("data", (c: Buffer) => { out += c; });
    // "close", not "exit": under load the output may still be in the pipe when the process has exited
    child.on("close", (code, signal) => { clearTimeout(timer); children.delete(child); try { resolve(JSON.parse(out)); } catch { reject(new Error(`reader printed ${JSON.stringify(out)} and exited with ${signal ?? code}`)); } });
  });
}

/** A scratch directory for lazy-mount tests: fresh cache + mount point pairs, and one teardown for all of them. */
export function lazyWorkspace(work: string): { fresh(): { cache: string; mnt: string }; teardown(...servers: Array<Served | undefined>): void } {
  let n = 0;
  return {
    fresh() {
      const cache = path.join(work, `cache${++n}`);
      const mnt = path.join(work, `mnt${n}`);
      fs.mkdirSync(mnt);
      return { cache, mnt };
    },
    /** Unmounts everything under `work`, kills every cache's daemon by pid, stops the servers, removes `work`. */
    teardown(...servers) {
      for (const d of fs.readdirSync(work).filter((name) => name.startsWith("cache"))) cleanup(work, path.join(work, d));
      cleanup(work);
      for (const s of servers) s?.stop();
      fs.rmSync(work, { recursive: true, force: true });
    },
  };
}
