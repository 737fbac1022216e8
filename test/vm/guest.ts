// What the guest scripts that drive eod inside the kernel-lab VM share (test/vm/fscache-e2e.ts,
// test/vm/fuse-e2e.ts): running eod with a script's environment, retrying a start the emulator crashes,
// `eod serve`, step timestamps, hashing a mount, and printing the report the host test looks for.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { reportLine } from "../helpers/guest-report.ts";

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const EOD = path.join(REPO, "bin/eod.mjs");

/**
 * Under qemu's TCG a Node process now and then dies in V8's own code while starting up: a V8 fatal error
 * ("# Fatal error in , line 0") or SIGSEGV/SIGILL/SIGTRAP before it did anything (an `eod mount` killed by
 * SIGSEGV with no daemon log yet failed a run before step 1), or the daemon an `eod mount` started does ("The
 * daemon … did not start (it was killed by SIGSEGV)"; the holder does not restart a first daemon that fails).
 * That is the emulator, not eod: such a start is tried again, up to STARTS starts in all.
 */
const CRASH_SIGNALS = new Set(["SIGSEGV", "SIGILL", "SIGBUS", "SIGTRAP", "SIGFPE", "SIGABRT"]);
const STARTS = 3;
const DAEMON_CRASHED = new RegExp(`did not start \\(it was killed by (${[...CRASH_SIGNALS].join("|")})\\)`);

function emulatorCrash(signal: string | null | undefined, stderr: string): boolean {
  return (signal != null && CRASH_SIGNALS.has(signal)) || stderr.includes("# Fatal error in") || DAEMON_CRASHED.test(stderr);
}

export interface EodResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface Server {
  url: string;
  /** Sets (or with null clears) the server's fault rule (eod serve's _eod/faults). */
  faults(rule: object | null): Promise<void>;
}

export interface GuestOptions {
  /** The script's name, for its report line (test/helpers/guest-report.ts). */
  name: string;
  /** The environment of every eod process: each script's own timeouts and fetch sizes. */
  env: NodeJS.ProcessEnv;
  /**
   * Deadline of one eod command. Longer than eod mount's own wait for its daemon (EOD_DAEMON_START_TIMEOUT_MS),
   * so that eod reports a slow daemon itself.
   */
  eodTimeoutMs: number;
}

export class Guest {
  /** The JSON report printed by finish(); step() records the current step in it. */
  readonly report: Record<string, unknown> = {};
  private readonly servers: ChildProcess[] = [];
  private readonly t0 = Date.now();
  private readonly opts: GuestOptions;

  constructor(opts: GuestOptions) {
    this.opts = opts;
  }

  /** Progress on stderr, so a run that stalls shows where; a failure's report names the step. */
  step(what: string): void {
    this.report.step = what;
    console.error(`[${((Date.now() - this.t0) / 1000).toFixed(1)} s] ${what}`);
  }

  /**
   * Runs eod once. A command killed by a signal (the deadline, or V8 dying under TCG) says so in stderr instead
   * of passing for an exit code 1 with no message.
   */
  private eodOnce(args: string[]): Promise<EodResult & { crashed: boolean }> {
    const timeoutMs = this.opts.eodTimeoutMs;
    return new Promise((resolve) => {
      execFile(process.execPath, [EOD, ...args], { env: this.opts.env, timeout: timeoutMs }, (err, stdout, stderr) => {
        const e = err as { code?: number; signal?: string; killed?: boolean } | null;
        const killed = e?.signal ? `[killed by ${e.signal}${e.killed ? `: no exit within ${timeoutMs} ms` : ""}]\n` : "";
        resolve({ code: e ? (e.code ?? 1) : 0, stdout, stderr: killed + stderr, crashed: e !== null && !e.killed && emulatorCrash(e.signal, stderr) });
      });
    });
  }

  /** Runs eod, started again (up to STARTS in all) while the emulator crashes it; any exit code is returned. */
  async eod(args: string[]): Promise<EodResult> {
    let r = await this.eodOnce(args);
    for (let start = 2; start <= STARTS && r.crashed; start++) {
      console.error(`eod ${args[0]} crashed under the emulator (${r.stderr.split("\n")[0]}): start ${start} of ${STARTS}`);
      r = await this.eodOnce(args);
    }
    return r;
  }

  /** eod() that must succeed: a failure throws with eod's output and the end of the daemon log of its --cache-dir. */
  async must(args: string[]): Promise<string> {
    const r = await this.eod(args);
    if (r.code !== 0) {
      const at = args.indexOf("--cache-dir");
      const logFile = at >= 0 ? path.join(args[at + 1], "daemon.log") : null;
      const log = logFile && fs.existsSync(logFile) ? fs.readFileSync(logFile, "utf8").slice(-3000) : "(no daemon log)";
      throw new Error(`eod ${args.join(" ")} failed (${r.code}): ${r.stderr}${r.stdout}\ndaemon.log:\n${log}`);
    }
    return r.stdout;
  }

  /**
   * Starts `eod serve dir` and resolves with its URL. A server that dies before printing it is started again when
   * the emulator crashed it, as eod() does for eod commands; otherwise the error quotes its stderr.
   */
  serve(dir: string, attempts = STARTS): Promise<Server> {
    const child = spawn(process.execPath, [EOD, "serve", dir, "--listen", "127.0.0.1:0"], { stdio: ["ignore", "pipe", "pipe"] });
    this.servers.push(child);
    let stderr = "";
    child.stderr!.on("data", (c: Buffer) => { stderr += c; process.stderr.write(c); });
    return new Promise((resolve, reject) => {
      child.once("exit", (code, signal) => {
        if (attempts > 1 && emulatorCrash(signal, stderr)) resolve(this.serve(dir, attempts - 1));
        else reject(new Error(`eod serve ${dir} exited (${signal ?? `code ${code}`}) before printing its URL: ${stderr.slice(-2000)}`));
      });
      let out = "";
      child.stdout!.on("data", (c: Buffer) => {
        out += c;
        if (!out.includes("\n")) return;
        const url = out.split("\n")[0].trim();
        resolve({
          url,
          async faults(rule) {
            await fetch(new URL("_eod/faults", url), rule ? { method: "POST", body: JSON.stringify(rule), headers: { "content-type": "application/json" } } : { method: "DELETE" });
          },
        });
      });
    });
  }

  /**
   * Runs the script's steps, stops its servers and prints the report line (also after a failure: then with the
   * error and whatever `onError` adds, and exit status 1).
   */
  finish(main: () => Promise<void>, onError: (report: Record<string, unknown>) => void = () => {}): void {
    const done = (failed: boolean) => {
      for (const s of this.servers) s.kill("SIGKILL");
      console.log(reportLine(this.opts.name, this.report));
      if (failed) process.exitCode = 1;
    };
    main().then(() => done(false), (err: unknown) => {
      this.report.error = err instanceof Error ? (err.stack ?? err.message) : String(err);
      onError(this.report);
      done(true);
    });
  }
}

/**
 * Failover under readers: three readers of files under many/ blocked on a stalled remote, the daemon of `cache`
 * killed (SIGKILL), the remote healthy again. What each reader got, and whether the holder started a new daemon
 * (under TCG that can take many seconds: its pid file is awaited up to 3 minutes).
 */
export async function killDaemonUnderReaders(server: Server, cache: string, mnt: string, expected: Record<string, string>): Promise<{ readers: Array<{ name: string; ok: boolean; got: string }>; newPid: boolean }> {
  await server.faults({ mode: "stall", match: "blobs/" });
  const names = Object.keys(expected).filter((n) => n.startsWith("many/")).slice(0, 3);
  const reads = names.map((n) => hashFile(path.join(mnt, n)));
  await sleep(3000); // the readers reach the stalled remote
  const pid = () => Number(fs.readFileSync(path.join(cache, "daemon.pid"), "utf8").trim() || 0);
  const oldPid = pid();
  process.kill(oldPid, "SIGKILL");
  await server.faults(null);
  const results = await Promise.all(reads);
  const newPid = await until(() => pid() !== oldPid, 180_000);
  return { readers: names.map((n, i) => ({ name: n, ok: results[i] === expected[n], got: results[i] })), newPid };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `cond` every 100 ms until it holds (true) or `ms` have passed (false). */
export async function until(cond: () => boolean, ms: number): Promise<boolean> {
  for (const end = Date.now() + ms; !cond(); await sleep(100)) if (Date.now() > end) return false;
  return true;
}

/** sha256 of every regular file under `root` (async reads: this process never blocks a daemon in it). */
export async function hashTree(root: string, rel = "", out: Record<string, string> = {}): Promise<Record<string, string>> {
  for (const e of await fs.promises.readdir(path.join(root, rel), { withFileTypes: true })) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) await hashTree(root, r, out);
    else if (e.isFile()) out[r] = await hashFile(path.join(root, r));
  }
  return out;
}

/** sha256 of a file, or `error:<code>` if reading it fails. */
export async function hashFile(p: string): Promise<string> {
  try {
    return createHash("sha256").update(await fs.promises.readFile(p)).digest("hex");
  } catch (err) {
    return `error:${(err as NodeJS.ErrnoException).code}`;
  }
}

/** Every path whose hash differs, is missing or is extra, with what the mount has. */
export function diff(want: Record<string, string>, got: Record<string, string>): string[] {
  const keys = new Set([...Object.keys(want), ...Object.keys(got)]);
  return [...keys].filter((k) => want[k] !== got[k]).map((k) => `${k}: ${got[k] ?? "missing"}`);
}
