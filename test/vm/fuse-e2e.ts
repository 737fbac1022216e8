// Runs INSIDE the kernel-lab VM on Linux 6.1 (no fanotify pre-content events, no file-backed erofs; cachefiles
// on-demand present), driven by test/kernel/fuse-6.1.test.ts. Through eod itself, as a user would:
//   1. `eod mount --frontend auto` picks fscache and says why (fanotify not possible); the tree is identical.
//   2. `eod mount --frontend fuse`: erofs finds it cannot mount files (ENOTBLK) and mounts from loop devices
//      over the bootstrap and the FUSE blob files; the tree is identical; `eod status` shows frontend, reason
//      and devices; after `eod umount` no loop device and no FUSE mount is left.
//   3. Failed mounts (a mount point that is no directory, a missing one) leave no loop device either.
//   5. Failover on 6.1 (no FUSE_NOTIFY_RESEND: the journal) through loop devices: readers blocked on a stalled
//      remote, the daemon killed; the holder's new daemon answers them with the right bytes.
// It prints one JSON report as its last line; the host test checks it.
//   argv: <image dir> <expected.json> [fuse|no-fuse]  (no-fuse: step 1 only)
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const EOD = path.join(REPO, "bin/eod.mjs");
const SCRATCH = "/var/cache/fscache"; // ext4: cachefiles refuses tmpfs
// Fetch unit = chunk size (64K) and no whole-file fetch, so the failover readers are really blocked on cold chunks.
const ENV = { ...process.env, EOD_DAEMON_START_TIMEOUT_MS: "120000", EOD_REMOTE_TIMEOUT_MS: "4000", EOD_REMOTE_RETRIES: "1", EOD_MIN_FETCH: "65536", EOD_FILE_FETCH: "0" };
const servers: ChildProcess[] = [];
const [img, expectedPath, withFuse = "fuse"] = process.argv.slice(2);
const expected = JSON.parse(fs.readFileSync(expectedPath, "utf8")) as Record<string, string>;
const report: Record<string, unknown> = {};

const t0 = Date.now();
function step(what: string): void {
  console.error(`[${((Date.now() - t0) / 1000).toFixed(1)} s] ${what}`);
}

function eod(args: string[], timeoutMs = 180_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [EOD, ...args], { env: ENV, timeout: timeoutMs }, (err, stdout, stderr) => {
      const e = err as { code?: number; signal?: string } | null;
      resolve({ code: e ? (e.code ?? 1) : 0, stdout, stderr: (e?.signal ? `[killed by ${e.signal}]\n` : "") + stderr });
    });
  });
}

async function must(args: string[], cache: string): Promise<string> {
  let r = await eod(args);
  if (r.code !== 0 && r.stderr.includes("# Fatal error in")) r = await eod(args); // V8 under TCG, now and then
  if (r.code !== 0) {
    const logFile = path.join(cache, "daemon.log");
    const log = fs.existsSync(logFile) ? fs.readFileSync(logFile, "utf8").slice(-3000) : "(no daemon log)";
    throw new Error(`eod ${args.join(" ")} failed (${r.code}): ${r.stderr}${r.stdout}\ndaemon.log:\n${log}`);
  }
  return r.stdout;
}

function serve(dir: string): Promise<{ url: string; faults(rule: object | null): Promise<void> }> {
  const child = spawn(process.execPath, [EOD, "serve", dir, "--listen", "127.0.0.1:0"], { stdio: ["ignore", "pipe", "inherit"] });
  servers.push(child);
  return new Promise((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`eod serve ${dir} exited with ${code}`)));
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

async function hashFile(p: string): Promise<string> {
  try {
    return createHash("sha256").update(await fs.promises.readFile(p)).digest("hex");
  } catch (err) {
    return `error:${(err as NodeJS.ErrnoException).code}`;
  }
}

async function hashTree(root: string, rel = "", out: Record<string, string> = {}): Promise<Record<string, string>> {
  for (const e of await fs.promises.readdir(path.join(root, rel), { withFileTypes: true })) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) await hashTree(root, r, out);
    else if (e.isFile()) out[r] = await hashFile(path.join(root, r));
  }
  return out;
}

function diff(want: Record<string, string>, got: Record<string, string>): string[] {
  const keys = new Set([...Object.keys(want), ...Object.keys(got)]);
  return [...keys].filter((k) => want[k] !== got[k]).map((k) => `${k}: ${got[k] ?? "missing"}`);
}

/** Loop devices bound to a file under `dir` (sysfs). */
function loopsUnder(dir: string): string[] {
  const out: string[] = [];
  for (const name of fs.readdirSync("/sys/block").filter((n) => /^loop\d+$/.test(n))) {
    try {
      if (fs.readFileSync(`/sys/block/${name}/loop/backing_file`, "utf8").startsWith(`${dir}/`)) out.push(`/dev/${name}`);
    } catch { /* not bound */ }
  }
  return out.sort();
}

function mountsUnder(dir: string): string[] {
  return fs.readFileSync("/proc/self/mounts", "utf8").split("\n").map((l) => l.split(" ")).filter((f) => f[1]?.startsWith(`${dir}/`)).map((f) => `${f[2]} ${f[1]}`);
}

async function settle<T>(probe: () => T, ok: (v: T) => boolean): Promise<T> {
  let v = probe();
  for (let i = 0; i < 200 && !ok(v); i++) {
    await new Promise((r) => setTimeout(r, 50));
    v = probe();
  }
  return v;
}

interface Status {
  pid: number;
  frontend: { name: string; reason?: string };
  erofsMount?: { loopDevices: string; fileBackedMounts: boolean | null };
  mounts: Array<{ mountPoint: string; mountSource?: string; loopDevices?: string[] }>;
}

async function main(): Promise<void> {
  await must(["--help"], SCRATCH); // fills Node's compile cache once, before processes start in parallel
  report.kernel = fs.readFileSync("/proc/sys/kernel/osrelease", "utf8").trim();

  step("1. --frontend auto");
  const autoCache = path.join(SCRATCH, "eod-auto");
  fs.mkdirSync("/mnt/auto", { recursive: true });
  await must(["mount", img, "/mnt/auto", "--cache-dir", autoCache, "--frontend", "auto"], autoCache);
  const sa = JSON.parse(await must(["status", "--cache-dir", autoCache, "--json"], autoCache)) as Status;
  report.auto = { frontend: sa.frontend.name, reason: sa.frontend.reason, loopDevices: sa.mounts[0]?.loopDevices ?? [] };
  report.autoText = (await must(["status", "--cache-dir", autoCache], autoCache)).split("\n")[0];
  report.autoDiff = diff(expected, await hashTree("/mnt/auto"));
  await must(["umount", "/mnt/auto", "--cache-dir", autoCache], autoCache);
  if (withFuse !== "fuse") return;

  step("2. --frontend fuse");
  const fuseCache = path.join(SCRATCH, "eod-fuse");
  fs.mkdirSync("/mnt/fuse", { recursive: true });
  let t = Date.now();
  await must(["mount", img, "/mnt/fuse", "--cache-dir", fuseCache, "--frontend", "fuse"], fuseCache);
  report.fuseMountMs = Date.now() - t;
  const sf = JSON.parse(await must(["status", "--cache-dir", fuseCache, "--json"], fuseCache)) as Status;
  report.fuse = {
    frontend: sf.frontend.name, reason: sf.frontend.reason, erofsMount: sf.erofsMount,
    mountSource: sf.mounts[0]?.mountSource, loopDevices: sf.mounts[0]?.loopDevices ?? [],
  };
  report.fuseText = await must(["status", "--cache-dir", fuseCache], fuseCache);
  report.fuseLoopsBound = loopsUnder(fuseCache);
  report.fuseMounts = mountsUnder(fuseCache).concat(mountsUnder("/mnt"));
  t = Date.now();
  report.fuseDiff = diff(expected, await hashTree("/mnt/fuse"));
  report.fuseReadMs = Date.now() - t;

  step("3. failed mounts");
  fs.writeFileSync("/mnt/not-a-dir", "");
  const notDir = await eod(["mount", img, "/mnt/not-a-dir", "--cache-dir", fuseCache, "--frontend", "fuse"]);
  const missing = await eod(["mount", img, "/mnt/missing", "--cache-dir", fuseCache, "--frontend", "fuse"]);
  report.failed = { notDir: { code: notDir.code, stderr: notDir.stderr.trim() }, missing: { code: missing.code, stderr: missing.stderr.trim() } };
  report.loopsAfterFailed = loopsUnder(fuseCache);

  step("4. umount");
  await must(["umount", "/mnt/fuse", "--cache-dir", fuseCache], fuseCache);
  report.loopsAfterUmount = await settle(() => loopsUnder(fuseCache), (l) => l.length === 0);
  report.mountsAfterUmount = await settle(() => mountsUnder(fuseCache), (m) => m.length === 0);
  report.allLoopsAfter = loopsUnder("");

  step("5. failover");
  const foCache = path.join(SCRATCH, "eod-failover");
  fs.mkdirSync("/mnt/fo", { recursive: true });
  const server = await serve(img);
  await must(["mount", server.url, "/mnt/fo", "--cache-dir", foCache, "--frontend", "fuse"], foCache);
  await server.faults({ mode: "stall", match: "blobs/" });
  const names = Object.keys(expected).filter((n) => n.startsWith("many/")).slice(0, 3);
  const readers = names.map((n) => hashFile(path.join("/mnt/fo", n)));
  await new Promise((r) => setTimeout(r, 3000));
  const oldPid = Number(fs.readFileSync(path.join(foCache, "daemon.pid"), "utf8"));
  process.kill(oldPid, "SIGKILL");
  await server.faults(null);
  const results = await Promise.all(readers);
  report.failover = names.map((n, i) => ({ name: n, ok: results[i] === expected[n], got: results[i] }));
  for (let i = 0; i < 1800 && Number(fs.readFileSync(path.join(foCache, "daemon.pid"), "utf8").trim() || 0) === oldPid; i++) await new Promise((r) => setTimeout(r, 100));
  report.failoverNewPid = Number(fs.readFileSync(path.join(foCache, "daemon.pid"), "utf8")) !== oldPid;
  report.failoverStats = (JSON.parse(await must(["status", "--cache-dir", foCache, "--json"], foCache)) as Status).frontend;
  report.failoverDiff = diff(expected, await hashTree("/mnt/fo"));
  report.failoverLog = fs.readFileSync(path.join(foCache, "daemon.log"), "utf8").split("\n").filter((l) => /journal|restarted|died|resend/i.test(l)).slice(-6);
  await must(["umount", "/mnt/fo", "--cache-dir", foCache], foCache);
  report.failoverLoopsAfter = await settle(() => loopsUnder(foCache), (l) => l.length === 0);
}

main().finally(() => { for (const c of servers) c.kill("SIGKILL"); }).then(
  () => console.log(JSON.stringify(report)),
  (err: unknown) => {
    report.error = err instanceof Error ? err.stack ?? err.message : String(err);
    console.log(JSON.stringify(report));
    process.exitCode = 1;
  },
);
