// Runs a TypeScript script inside the kernel lab's throw-away VM (shared/kernel-lab/run-vm: Linux 6.12
// with cachefiles on-demand mode and erofs fscache mode, which the host kernel lacks). The guest's root
// is the host's / read-only, so this repo's Node (node_modules/.bin/node) and sources run there as they
// are. The guest's /tmp, /run, /var/{tmp,cache,log} and /mnt are fresh tmpfs: host files there are NOT
// visible unless their directory is passed in `share` (read-write, same path). The guest's ext4 scratch
// fs is /var/cache/fscache (cachefiles refuses tmpfs as its cache).
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { haveTool, REPO } from "./cli.ts";
import { findReport } from "./guest-report.ts";

/** The lab's run-vm: the repo is a clone next to a `shared/` copy, locally and in CI. */
export const RUN_VM = path.resolve(REPO, "../shared/kernel-lab/run-vm");
/** This repo's pinned Node, at the same path in the guest. */
export const GUEST_NODE = path.join(REPO, "node_modules/.bin/node");
/** Where the guest's ext4 scratch filesystem is mounted (run-vm --scratch). */
export const GUEST_SCRATCH = "/var/cache/fscache";

// Directories that are empty tmpfs in the guest (guest-init): a repo or cwd below them must be shared.
const GUEST_TMPFS = ["/tmp", "/run", "/var/tmp", "/var/cache", "/var/log", "/mnt", "/dev/shm"];

/** Whether runInVm() can work here, and if not, why (for a test's skip message). */
export function vmAvailable(): { ok: boolean; why?: string } {
  if (process.env.RUNVM === "1") return { ok: false, why: "already inside the kernel-lab VM (RUNVM=1)" };
  if (!fs.existsSync(RUN_VM)) return { ok: false, why: `no kernel lab: ${RUN_VM} does not exist` };
  if (!haveTool("qemu-system-x86_64")) {
    return { ok: false, why: "qemu-system-x86_64 not found (apt-get install --no-install-recommends qemu-system-x86 busybox-static)" };
  }
  if (!fs.existsSync("/bin/busybox")) return { ok: false, why: "/bin/busybox not found (apt-get install busybox-static)" };
  return { ok: true };
}

/** Options of runInVm(). */
export interface VmOptions {
  /** run-vm powers the VM off after this many seconds (exit status 124). Default 600. */
  timeoutS?: number;
  /** Host directories mounted read-write at the same path in the guest. */
  share?: string[];
  /** Extra environment for the guest command. */
  env?: Record<string, string>;
  /** Guest memory in MB (run-vm's default: 2048). */
  memMb?: number;
  /** Size of the guest's ext4 scratch fs at /var/cache/fscache in MB (run-vm's default: 1024). */
  scratchMb?: number;
  /** The lab kernel: "6.12" (run-vm's default) or "6.1" (no file-backed erofs: loop devices). */
  kernel?: "6.12" | "6.1";
}

/** What the guest command did. `status` is run-vm's: the command's, 124 on timeout, 125 if the VM failed. */
export interface VmResult {
  status: number | null;
  stdout: string;
  stderr: string;
  /** Wall-clock seconds of the whole run (boot included). */
  seconds: number;
}

/**
 * Runs `node <scriptTs> <args…>` in a fresh VM (cwd: the repo) and resolves with its output once the
 * VM is gone. `scriptTs` is relative to the repo root or absolute. Never rejects for a failing
 * command; look at `status`.
 * @example
 * const r = await runInVm("test/vm/fscache-smoke.ts", [work], { share: [work], timeoutS: 300 });
 */
export function runInVm(scriptTs: string, args: string[], opts: VmOptions = {}): Promise<VmResult> {
  const timeoutS = opts.timeoutS ?? 600;
  const shares = [...(opts.share ?? [])];
  if (GUEST_TMPFS.some((d) => REPO === d || REPO.startsWith(d + "/"))) shares.push(REPO); // else invisible in the guest
  const argv = ["-t", String(timeoutS), "-C", REPO];
  for (const s of shares) argv.push("--share", s);
  for (const [k, v] of Object.entries(opts.env ?? {})) argv.push("-e", `${k}=${v}`);
  if (opts.memMb !== undefined) argv.push("-m", String(opts.memMb));
  if (opts.scratchMb !== undefined) argv.push("--scratch", String(opts.scratchMb));
  if (opts.kernel !== undefined) argv.push("--kernel", opts.kernel);
  argv.push("--", GUEST_NODE, path.resolve(REPO, scriptTs), ...args);
  const started = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const child = spawn(RUN_VM, argv, { stdio: ["ignore", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => err.push(b));
    // run-vm enforces the timeout itself; this is the backstop in case run-vm itself hangs.
    const backstop = setTimeout(() => child.kill("SIGTERM"), (timeoutS + 60) * 1000);
    child.on("error", (e) => {
      clearTimeout(backstop);
      reject(e);
    });
    child.on("close", (code) => {
      clearTimeout(backstop);
      resolve({
        status: code, // null if run-vm itself was killed by a signal
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
        seconds: Number(process.hrtime.bigint() - started) / 1e9,
      });
    });
  });
}

/** What an eod process the emulator crashed leaves in a test's output (test/helpers/cli.ts's eodOk, V8's fatal error). */
const EMULATOR_CRASH = /killed by SIG(SEGV|ILL|TRAP|BUS|FPE|ABRT)\b|# Fatal error in /;

/**
 * Runs a node:test file in the VM. A failing run whose output shows a process the emulator crashed (TCG kills
 * V8 now and then: SIGSEGV, or SIGTRAP from a failed JIT check), or whose test runner itself died of such a
 * signal, is run once more in a fresh VM; `note` hears about it. test/helpers/cli.ts retries single commands.
 */
export async function runTestFileInVm(testTs: string, opts: VmOptions, note: (s: string) => void): Promise<VmResult> {
  const res = await runInVm(testTs, [], opts);
  const crashed = [132, 133, 134, 135, 139].includes(res.status ?? 0) || EMULATOR_CRASH.test(res.stdout + res.stderr);
  if (res.status === 0 || !crashed) return res;
  const line = (res.stdout + res.stderr).split("\n").find((l) => EMULATOR_CRASH.test(l)) ?? "";
  note(`${testTs}: a process crashed under the emulator (${line.trim()}): running the VM again`);
  return runInVm(testTs, [], opts);
}

/** What a guest script with a report (test/vm/guest.ts) did: its report, if it printed one, and the VM run. */
export interface GuestRun {
  report: Record<string, any> | undefined;
  res: VmResult;
}

/**
 * Runs a guest script that prints a report line (test/helpers/guest-report.ts; `name` is its file name without
 * .ts) and finds the report. The script retries the eod processes the emulator crashes; a crash of the script
 * itself (128 + SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE or SIGSEGV, no report) is the emulator's too: one more VM.
 * `note` hears about that re-run (a test's t.diagnostic).
 */
export async function runGuestScript(name: string, args: string[], opts: VmOptions, note: (s: string) => void): Promise<GuestRun> {
  const run = async (): Promise<GuestRun> => {
    const res = await runInVm(`test/vm/${name}.ts`, args, opts);
    return { report: findReport(name, res.stdout), res };
  };
  let r = await run();
  if (r.report === undefined && [132, 133, 134, 135, 136, 139].includes(r.res.status ?? 0)) {
    note(`the guest script ${name} crashed (status ${r.res.status}) under the emulator: running the VM again\n${r.res.stderr.slice(-1000)}`);
    r = await run();
  }
  return r;
}
