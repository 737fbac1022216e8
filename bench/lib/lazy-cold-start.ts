// One lazy cold start from a registry: `eod mount <ref>` into a fresh cache directory (its daemon started by
// the mount, inside the clock, or before the clock as a service would be), then the cold-start command
// chrooted into the mount; what the daemon says it fetched (`eod status --json`, and its log: when it
// listened, the mount's own load) is taken before the umount. Everything is unmounted and killed by pid
// afterwards, whatever happened.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { runColdCommand } from "./cold-start.ts";
import { EOD, NODE } from "./paths.ts";
import { describe, run } from "./run.ts";
import { cleanup } from "../../test/helpers/lazy.ts";
import { ensureDaemon } from "../../src/daemon/spawn.ts";

/** No docker config.json: the benches' registries need no credentials and the host's must not be read. */
export const NO_DOCKER_CONFIG = { DOCKER_CONFIG: path.join(os.tmpdir(), "eod-bench-no-docker-config") };

export interface LazyColdStart {
  /** eod mount start → command ended. */
  seconds: number;
  mountS: number;
  runS: number;
  ok: boolean;
  /** The command's or a step's failure. */
  problem: string | null;
  daemon: DaemonFetches | null;
}

/** What the daemon did: its start, its load of the image at the mount, and its fetches for the kernel's misses. */
export interface DaemonFetches {
  /** Seconds from the `eod mount` start until the daemon logged its start (null when it ran before). */
  daemonUpS: number | null;
  loadBytes: number | null;
  /** The daemon's own time for the mount request (resolve, index, bootstrap, tables, mount(2)). */
  loadMs: number | null;
  fetchedBytes: number;
  /** Plain bytes the daemon decoded from them (a seek index's bytes from a checkpoint to a piece included). */
  inflatedBytes: number;
  fetches: number;
  misses: number;
  blobs: number;
  remoteRequests: number;
  remoteBytes: number;
  corrupt: number;
  errors: number;
  /** The frontend's time from a kernel miss to its answer (fanotify), when it reports one. */
  fillLatencyMs: { count: number; p50: number; p90: number; max: number } | null;
}

async function eodIn(args: string[], timeoutMs: number) {
  return run(NODE, [EOD, ...args], { env: NO_DOCKER_CONFIG, timeoutMs });
}

export interface LazyColdStartOptions {
  /** Start the cache daemon before the clock, as a host running it as a service has it (default: the mount does). */
  daemonAhead?: boolean;
  /** Called when the mount returned (a bench takes its link's byte count there). */
  onMounted?: () => void;
}

/** Mounts `ref` at `dir`/mnt with the cache `dir`/cache, runs the cold command; `dir` is removed after. */
export async function lazyColdStart(ref: string, dir: string, opts: LazyColdStartOptions = {}): Promise<LazyColdStart> {
  const mnt = path.join(dir, "mnt");
  const cache = path.join(dir, "cache");
  fs.mkdirSync(mnt, { recursive: true });
  try {
    if (opts.daemonAhead) await ensureDaemon(cache, "fanotify");
    const wall0 = Date.now();
    const t0 = performance.now();
    const m = await eodIn(["mount", ref, mnt, "--cache-dir", cache, "--frontend", "fanotify"], 300_000);
    const mountS = (performance.now() - t0) / 1000;
    opts.onMounted?.();
    if (m.code !== 0) return { seconds: mountS, mountS, runS: 0, ok: false, problem: `eod mount: ${describe(m)}: ${m.stderr.trim().slice(-2000)}`, daemon: null };
    const r = await runColdCommand(mnt);
    const seconds = (performance.now() - t0) / 1000;
    const daemon = await daemonFetches(cache, wall0);
    const u = await eodIn(["umount", mnt, "--cache-dir", cache], 60_000);
    const problem = r.code !== 0 ? `cold command: ${describe(r)}: ${r.stderr.trim().slice(-2000)}` : u.code !== 0 ? `eod umount: ${describe(u)}: ${u.stderr.trim()}` : null;
    return { seconds, mountS, runS: r.seconds, ok: r.code === 0, problem, daemon };
  } finally {
    cleanup(dir, cache);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function daemonFetches(cache: string, wall0: number): Promise<DaemonFetches | null> {
  const st = await eodIn(["status", "--cache-dir", cache, "--json"], 30_000);
  if (st.code !== 0) return null;
  const s = JSON.parse(st.stdout) as {
    blobs?: Array<{ fetchedBytes: number; inflatedBytes: number; fetches: number; misses: number; corrupt: number; errors: number }>;
    remotes?: Array<{ requests: number; bytes: number }>;
    frontend?: { fillLatencyMs?: { count: number; p50: number; p90: number; max: number } };
  };
  const blobs = s.blobs ?? [];
  const sum = (k: "fetchedBytes" | "inflatedBytes" | "fetches" | "misses" | "corrupt" | "errors") => blobs.reduce((n, b) => n + b[k], 0);
  const log = daemonLog(cache);
  const up = log.started ? (Date.parse(log.started.time) - wall0) / 1000 : null;
  return {
    daemonUpS: up !== null && up >= 0 ? up : null, loadBytes: log.mounted?.loadBytes ?? null, loadMs: log.mounted?.ms ?? null,
    fetchedBytes: sum("fetchedBytes"), inflatedBytes: sum("inflatedBytes"), fetches: sum("fetches"), misses: sum("misses"), corrupt: sum("corrupt"), errors: sum("errors"), blobs: blobs.length,
    remoteRequests: (s.remotes ?? []).reduce((n, r) => n + r.requests, 0), remoteBytes: (s.remotes ?? []).reduce((n, r) => n + r.bytes, 0),
    fillLatencyMs: s.frontend?.fillLatencyMs ?? null,
  };
}

interface LogLine { time: string; msg: string; loadBytes?: number; ms?: number }

/** The daemon log's first "daemon started" and "mounted" lines. */
function daemonLog(cache: string): { started?: LogLine; mounted?: LogLine } {
  const out: { started?: LogLine; mounted?: LogLine } = {};
  try {
    for (const line of fs.readFileSync(path.join(cache, "daemon.log"), "utf8").split("\n")) {
      if (!line.startsWith("{")) continue;
      const j = JSON.parse(line) as LogLine;
      if (j.msg === "daemon started") out.started ??= j;
      if (j.msg === "mounted") out.mounted ??= j;
    }
  } catch { /* no log: leave them unknown */ }
  return out;
}
