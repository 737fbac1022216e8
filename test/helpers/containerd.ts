// containerd for tests: Debian's containerd started by hand (no systemd) with its root, state, socket and
// config in a temp dir (../shared/reference/containerd.md), the CRI plugin pulling through a given snapshotter
// with the snapshot labels on, plain-HTTP mirrors for loopback registries, and optionally a proxy snapshotter.
// `ctr` runs against it, with runc's state, IO fifos and container cgroups of its own (ownState); stop() leaves
// nothing behind: tasks, containers, their shims and shim sockets, runc containers, every mount under its temp
// dir and under the directories a test registers, containerd itself. Also the eod snapshotter process.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { REPO } from "./cli.ts";
import { cleanup as stopCacheDaemon } from "./lazy.ts";
import { stopChild } from "./registry.ts";

export interface ContainerdOptions {
  /** A proxy snapshotter plugin: `[proxy_plugins.<name>] type = "snapshot" address = <address>`. */
  proxySnapshotter?: { name: string; address: string };
  /** The snapshotter CRI pulls with (labels passed: disable_snapshot_annotations = false). */
  cri: { snapshotter: string };
  /** Registry hosts ("127.0.0.1:PORT") CRI pulls from over plain HTTP. */
  registryMirrors?: string[];
}

export interface CtrResult { code: number | null; stdout: string; stderr: string }

export interface RunningContainerd {
  /** The temp dir holding root/, state/, the socket, the config and containerd's log. */
  dir: string;
  address: string;
  pid: number;
  /** `ctr -a <address> -n <namespace> <args>` (namespace k8s.io unless given); never throws. */
  ctr(args: string[], opts?: { namespace?: string; timeoutMs?: number }): Promise<CtrResult>;
  /** ctr that must exit 0; its stdout. */
  ctrOk(args: string[], opts?: { namespace?: string; timeoutMs?: number }): Promise<string>;
  /** stop() also unmounts everything under `dir` (e.g. a snapshotter's root). */
  registerMountDir(dir: string): void;
  /**
   * Runs containerd's garbage collection now and returns when it is over, the snapshotters' Removes included
   * (a lease deleted with --sync): by itself containerd collects when its scheduler decides, up to fifty
   * times the last collection's pause after a deletion, tens of seconds on a loaded machine.
   */
  collectGarbage(namespace?: string): Promise<void>;
  /** The last lines of containerd's log, for failure messages. */
  logTail(lines?: number): string;
  stop(): Promise<void>;
}

const CTR_TIMEOUT_MS = 120_000;
/** How long containerd and the snapshotter may take to answer after their start (a loaded 2-core machine is slow). */
const READY_TIMEOUT_MS = 90_000;

/** Starts containerd and waits until it answers (and its proxy snapshotter plugin is ok, when given). */
export async function startContainerd(opts: ContainerdOptions): Promise<RunningContainerd> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "eod-containerd-"));
  const address = path.join(dir, "containerd.sock");
  const configPath = path.join(dir, "config.toml");
  fs.writeFileSync(configPath, containerdConfig(dir, address, opts));
  const logFd = fs.openSync(path.join(dir, "containerd.log"), "a");
  const child = spawn("containerd", ["--config", configPath, "--log-level", "debug"], { stdio: ["ignore", logFd, logFd] });
  fs.closeSync(logFd);
  const pid = child.pid!;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  // Should this test process die first, do not leave containerd behind.
  const onExit = () => { try { process.kill(pid, "SIGKILL"); } catch { /* gone */ } };
  process.once("exit", onExit);
  const mountDirs = [dir];
  const logTail = (lines = 40) => {
    try { return fs.readFileSync(path.join(dir, "containerd.log"), "utf8").trimEnd().split("\n").slice(-lines).join("\n"); } catch { return "(no log)"; }
  };
  const ctr = (args: string[], o: { namespace?: string; timeoutMs?: number } = {}) => {
    const ns = o.namespace ?? "k8s.io";
    return runCtr(["-a", address, "-n", ns, ...ownState(args, dir, ns)], o.timeoutMs ?? CTR_TIMEOUT_MS);
  };
  const ctrOk = async (args: string[], o: { namespace?: string; timeoutMs?: number } = {}) => {
    const r = await ctr(args, o);
    if (r.code !== 0) throw new Error(`ctr ${args.join(" ")} exited ${r.code}:\n${r.stderr}${r.stdout}`);
    return r.stdout;
  };
  let leases = 0;
  const collectGarbage = async (namespace?: string) => {
    const lease = `eod-test-gc-${leases++}`;
    await ctrOk(["leases", "create", "--id", lease], { namespace });
    await ctrOk(["leases", "delete", "--sync", lease], { namespace });
  };
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    const problems: string[] = [];
    if (child.exitCode === null && child.signalCode === null) await removeContainers(ctr, problems);
    killShims(address);
    await stopChild(child, pid, exited, 5000);
    deleteRuncContainers(path.join(dir, "runc"), problems);
    process.removeListener("exit", onExit);
    for (const d of mountDirs) unmountUnder(d, problems);
    try { fs.rmSync(dir, { recursive: true, force: true }); } catch (e) { problems.push(`rm ${dir}: ${(e as Error).message}`); }
    if (problems.length) throw new Error(`containerd cleanup:\n${problems.join("\n")}`);
  };
  const running: RunningContainerd = { dir, address, pid, ctr, ctrOk, registerMountDir: (d) => { mountDirs.push(d); }, collectGarbage, logTail, stop };
  try {
    await waitReady(running, child, opts.proxySnapshotter?.name);
  } catch (err) {
    await stop().catch(() => {});
    throw err;
  }
  return running;
}

function containerdConfig(dir: string, address: string, opts: ContainerdOptions): string {
  const q = (s: string) => JSON.stringify(s); // a TOML basic string is a JSON string for these values
  const lines = [
    "version = 2",
    `root = ${q(path.join(dir, "root"))}`,
    `state = ${q(path.join(dir, "state"))}`,
    "[grpc]",
    `  address = ${q(address)}`,
    // containerd's default would be /opt/containerd, outside the temp dir
    `[plugins."io.containerd.internal.v1.opt"]`,
    `  path = ${q(path.join(dir, "opt"))}`,
    `[plugins."io.containerd.grpc.v1.cri".containerd]`,
    `  snapshotter = ${q(opts.cri.snapshotter)}`,
    "  disable_snapshot_annotations = false",
    // runc's state per namespace under the temp dir, not in /run/containerd/runc shared by every containerd
    `[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]`,
    `  runtime_type = "io.containerd.runc.v2"`,
    `[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]`,
    `  Root = ${q(path.join(dir, "runc"))}`,
  ];
  for (const host of opts.registryMirrors ?? []) {
    lines.push(`[plugins."io.containerd.grpc.v1.cri".registry.mirrors.${q(host)}]`, `  endpoint = [${q(`http://${host}`)}]`);
  }
  if (opts.proxySnapshotter) {
    lines.push(`[proxy_plugins.${q(opts.proxySnapshotter.name)}]`, `  type = "snapshot"`, `  address = ${q(opts.proxySnapshotter.address)}`);
  }
  return `${lines.join("\n")}\n`;
}

async function waitReady(c: RunningContainerd, child: ChildProcess, plugin: string | undefined): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let last = "";
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`containerd exited (${child.exitCode ?? child.signalCode}):\n${c.logTail()}`);
    const r = await c.ctr(["plugins", "ls"], { timeoutMs: 5000 });
    last = r.stderr || r.stdout;
    if (r.code === 0) {
      if (!plugin) return;
      const row = r.stdout.split("\n").map((l) => l.trim().split(/\s+/)).find((f) => f[0] === "io.containerd.snapshotter.v1" && f[1] === plugin);
      if (row?.at(-1) === "ok") return;
      last = row ? `plugin ${plugin}: ${row.at(-1)}` : `plugin ${plugin} not listed`;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`containerd at ${c.address} not ready within ${READY_TIMEOUT_MS / 1000} s (${last.trim()}):\n${c.logTail()}`);
}

/** Kills and deletes every task and deletes every container (with its snapshot), in every namespace. */
async function removeContainers(ctr: RunningContainerd["ctr"], problems: string[]): Promise<void> {
  const nsList = await ctr(["namespaces", "ls", "-q"], { timeoutMs: 15_000 });
  for (const ns of nsList.stdout.split("\n").map((s) => s.trim()).filter(Boolean)) {
    const tasks = await ctr(["tasks", "ls"], { namespace: ns, timeoutMs: 15_000 });
    for (const row of tasks.stdout.split("\n").slice(1).map((l) => l.trim().split(/\s+/)).filter((f) => f[0])) {
      const [id] = row; // a task that will not die is killed by deleteRuncContainers, once containerd is gone
      await ctr(["tasks", "kill", "-a", "-s", "SIGKILL", id], { namespace: ns, timeoutMs: 15_000 });
      const deleted = await ctr(["tasks", "delete", "-f", id], { namespace: ns, timeoutMs: 30_000 });
      if (deleted.code !== 0) problems.push(`ctr -n ${ns} tasks delete -f ${id}: ${deleted.stderr.trim()}`);
    }
    const containers = await ctr(["containers", "ls", "-q"], { namespace: ns, timeoutMs: 15_000 });
    for (const id of containers.stdout.split("\n").map((s) => s.trim()).filter(Boolean)) {
      const r = await ctr(["containers", "delete", id], { namespace: ns, timeoutMs: 30_000 });
      if (r.code !== 0) problems.push(`ctr -n ${ns} containers delete ${id}: ${r.stderr.trim()}`);
    }
  }
}

/** `ctr run` flags that take no value (v1.6.20); every other flag takes one unless written `--flag=value`. */
const CTR_RUN_BOOLEANS = new Set(["--rm", "--null-io", "--detach", "-d", "--cni", "--runc-systemd-cgroup", "--remap-labels", "--net-host",
  "--privileged", "--read-only", "--tty", "-t", "--allow-new-privs", "--seccomp", "--rootfs", "--no-pivot"]);

/**
 * `ctr run` with runc's state under this containerd's dir and a cgroup named after it: by default both are
 * per namespace and container id for every containerd on the machine, so two test containerds (or a leftover
 * of a failed run) running a container of the same id would share runc's state and the container's cgroup.
 * `run` and `tasks start|exec` keep their IO fifos under the dir too (not in /run/containerd/fifo, where a
 * detached task's stay behind).
 */
function ownState(args: string[], dir: string, ns: string): string[] {
  const fifos = ["--fifo-dir", path.join(dir, "fifo")];
  if (["task", "tasks", "t"].includes(args[0]) && ["start", "exec"].includes(args[1]) && !args.includes("--fifo-dir")) {
    return [args[0], args[1], ...fifos, ...args.slice(2)];
  }
  if (args[0] !== "run" || args.includes("--runc-root") || args.includes("--fifo-dir") || args.some((a) => a === "--cgroup" || a.startsWith("--cgroup="))) return args;
  const positional: string[] = [];
  for (let i = 1; i < args.length && positional.length < 2; i++) {
    if (!args[i].startsWith("-")) positional.push(args[i]);
    else if (!CTR_RUN_BOOLEANS.has(args[i]) && !args[i].includes("=")) i++;
  }
  const id = positional[1];
  if (!id) return args;
  return ["run", "--runc-root", path.join(dir, "runc"), "--cgroup", `/${ns}/${path.basename(dir)}-${id}`, ...fifos, ...args.slice(1)];
}

/**
 * Kills and deletes the runc containers left in this containerd's runc root (per namespace) once containerd and
 * its shims are gone: a shim killed with its task still running leaves the container's processes behind.
 */
function deleteRuncContainers(runcRoot: string, problems: string[]): void {
  let namespaces: string[];
  try { namespaces = fs.readdirSync(runcRoot); } catch { return; }
  for (const ns of namespaces) {
    const root = path.join(runcRoot, ns);
    const list = spawnSync("runc", ["--root", root, "list", "-q"], { encoding: "utf8", timeout: 30_000 });
    for (const id of (list.stdout ?? "").split("\n").map((s) => s.trim()).filter(Boolean)) {
      const r = spawnSync("runc", ["--root", root, "delete", "-f", id], { encoding: "utf8", timeout: 30_000 });
      if (r.status !== 0) problems.push(`runc --root ${root} delete -f ${id}: ${(r.stderr ?? "").trim() || r.error?.message}`);
    }
  }
}

/**
 * Kills the runc shims of this containerd (they outlive it), found by the `-address <socket>` they were given,
 * and removes their sockets, which a killed shim leaves in /run/containerd/s under a name derived from that
 * address, its namespace and its id (v1.6.20 runtime/v2/shim/util_unix.go SocketAddress).
 */
function killShims(address: string): void {
  for (const name of fs.readdirSync("/proc").filter((n) => /^\d+$/.test(n))) {
    let argv: string[];
    try { argv = fs.readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0"); } catch { continue; }
    if (!argv[0]?.includes("containerd-shim")) continue;
    const arg = (flag: string) => (argv.includes(flag) ? argv[argv.indexOf(flag) + 1] : undefined);
    if (arg("-address") !== address) continue;
    try { process.kill(Number(name), "SIGKILL"); } catch { /* gone */ }
    const [ns, id] = [arg("-namespace"), arg("-id")];
    if (ns && id) fs.rmSync(path.join("/run/containerd/s", createHash("sha256").update(path.join(address, ns, id)).digest("hex")), { force: true });
  }
}

/** Mount points at or below `dir`, deepest (last mounted) first. */
export function mountsUnder(dir: string): string[] {
  const root = path.resolve(dir);
  return fs.readFileSync("/proc/self/mountinfo", "utf8").split("\n")
    .map((l) => l.split(" ")[4]?.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((m): m is string => !!m && (m === root || m.startsWith(`${root}/`)))
    .reverse();
}

function unmountUnder(dir: string, problems: string[]): void {
  for (const m of mountsUnder(dir)) {
    if (spawnSync("umount", [m]).status !== 0 && spawnSync("umount", ["-l", m]).status !== 0) problems.push(`umount ${m} failed`);
  }
}

function runCtr(args: string[], timeoutMs: number): Promise<CtrResult> {
  return new Promise((resolve) => {
    const child = spawn("ctr", args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => { stdout += d; });
    child.stderr.setEncoding("utf8").on("data", (d: string) => { stderr += d; });
    const timer = setTimeout(() => { stderr += `\n(ctr timed out after ${timeoutMs} ms)`; child.kill("SIGKILL"); }, timeoutMs);
    child.once("error", (e) => { clearTimeout(timer); resolve({ code: null, stdout, stderr: `${stderr}${e.message}` }); });
    child.once("close", (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
}

// ---------------------------------------------------------------------------------------------------------
// The eod snapshotter as a process: `eod snapshotter --address --root --cache-dir`, restartable and killable.

export interface SnapshotterOptions { root: string; address: string; cacheDir: string; args?: string[] }

export interface RunningSnapshotter {
  readonly pid: number;
  /** Sends `signal` and waits for the process to exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts the snapshotter again with the same options (after kill) and waits until its socket answers. */
  restart(): Promise<void>;
  /** Its stderr so far (the last 64 KiB). */
  output(): string;
  /** Stops it, unmounts everything under root, stops the cache daemon (and holder) of cacheDir. */
  stop(): Promise<void>;
}

const EOD = path.join(REPO, "bin/eod.mjs");

export async function startSnapshotter(opts: SnapshotterOptions): Promise<RunningSnapshotter> {
  let child: ChildProcess;
  let exited: Promise<void>;
  let out = "";
  const onExit = () => { try { child.kill("SIGKILL"); } catch { /* gone */ } };
  process.on("exit", onExit);
  const start = async () => {
    fs.rmSync(opts.address, { force: true });
    child = spawn(process.execPath, [EOD, "snapshotter", "--address", opts.address, "--root", opts.root, "--cache-dir", opts.cacheDir, ...(opts.args ?? [])],
      { stdio: ["ignore", "pipe", "pipe"] });
    const keep = (d: string) => { out = (out + d).slice(-65536); };
    child.stdout!.setEncoding("utf8").on("data", keep);
    child.stderr!.setEncoding("utf8").on("data", keep);
    exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    await waitSocket(opts.address, child, () => out);
  };
  const kill = async (signal: NodeJS.Signals = "SIGTERM") => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill(signal);
    await exited;
  };
  try {
    await start();
  } catch (err) {
    process.removeListener("exit", onExit);
    throw err;
  }
  return {
    get pid() { return child.pid!; },
    kill,
    restart: start,
    output: () => out,
    async stop() {
      const killer = setTimeout(() => { child.kill("SIGKILL"); }, 10_000);
      await kill("SIGTERM");
      clearTimeout(killer);
      process.removeListener("exit", onExit);
      stopCacheDaemon(opts.root, opts.cacheDir);
    },
  };
}

/** Waits until something accepts connections on the unix socket `address`. */
async function waitSocket(address: string, child: ChildProcess, output: () => string): Promise<void> {
  const net = await import("node:net");
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`eod snapshotter exited (${child.exitCode ?? child.signalCode}):\n${output()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(address, () => { s.end(); resolve(true); });
      s.once("error", () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill("SIGKILL");
  throw new Error(`eod snapshotter did not listen on ${address} within ${READY_TIMEOUT_MS / 1000} s:\n${output()}`);
}

/** What a containerd test lacks here (root, containerd, ctr, runc, the runc shim, docker-registry), or false. */
export function containerdMissing(): string | false {
  if (process.getuid?.() !== 0) return "needs root (containerd, mounts)";
  for (const tool of ["containerd", "ctr", "runc", "containerd-shim-runc-v2", "docker-registry"]) {
    if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0) return `needs ${tool} (scripts/setup.sh installs it)`;
  }
  return false;
}
