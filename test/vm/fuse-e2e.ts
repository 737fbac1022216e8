// Runs INSIDE the kernel-lab VM on Linux 6.1 (no fanotify pre-content events, no file-backed erofs; cachefiles
// on-demand present), driven by test/kernel/fuse-6.1.test.ts. Through eod itself, as a user would:
//   1. `eod mount --frontend auto` picks fscache and says why (fanotify not possible); the tree is identical.
//   2. `eod mount --frontend fuse`: erofs finds it cannot mount files (ENOTBLK) and mounts from loop devices
//      over the bootstrap and the FUSE blob files; the tree is identical; `eod status` shows frontend, reason
//      and devices; after `eod umount` no loop device and no FUSE mount is left.
//   3. Failed mounts (a mount point that is no directory, a missing one) leave no loop device either.
//   5. Failover on 6.1 (no FUSE_NOTIFY_RESEND: the journal) through loop devices: readers blocked on a stalled
//      remote, the daemon killed; the holder's new daemon answers them with the right bytes.
// It prints its report (Guest.finish); the host test checks it.
//   argv: <image dir> <expected.json> [fuse|no-fuse]  (no-fuse: step 1 only)
import fs from "node:fs";
import path from "node:path";
import { diff, Guest, hashTree, killDaemonUnderReaders, until } from "./guest.ts";

const SCRATCH = "/var/cache/fscache"; // ext4: cachefiles refuses tmpfs
// Fetch unit = chunk size (64K) and no whole-file fetch, so the failover readers are really blocked on cold chunks.
const guest = new Guest({
  name: "fuse-e2e", // test/kernel/fuse-6.1.test.ts looks for its report
  env: { ...process.env, EOD_DAEMON_START_TIMEOUT_MS: "120000", EOD_REMOTE_TIMEOUT_MS: "4000", EOD_REMOTE_RETRIES: "1", EOD_MIN_FETCH: "65536", EOD_FILE_FETCH: "0" },
  eodTimeoutMs: 180_000,
});
const { report } = guest;
const [img, expectedPath, withFuse = "fuse"] = process.argv.slice(2);
const expected = JSON.parse(fs.readFileSync(expectedPath, "utf8")) as Record<string, string>;

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

interface Status {
  pid: number;
  frontend: { name: string; reason?: string };
  erofsMount?: { loopDevices: string; fileBackedMounts: boolean | null };
  mounts: Array<{ mountPoint: string; mountSource?: string; loopDevices?: string[] }>;
}

async function main(): Promise<void> {
  await guest.must(["--help"]); // fills Node's compile cache once, before processes start in parallel
  report.kernel = fs.readFileSync("/proc/sys/kernel/osrelease", "utf8").trim();

  guest.step("1. --frontend auto");
  const autoCache = path.join(SCRATCH, "eod-auto");
  fs.mkdirSync("/mnt/auto", { recursive: true });
  await guest.must(["mount", img, "/mnt/auto", "--cache-dir", autoCache, "--frontend", "auto"]);
  const sa = JSON.parse(await guest.must(["status", "--cache-dir", autoCache, "--json"])) as Status;
  report.auto = { frontend: sa.frontend.name, reason: sa.frontend.reason, loopDevices: sa.mounts[0]?.loopDevices ?? [] };
  report.autoText = (await guest.must(["status", "--cache-dir", autoCache])).split("\n")[0];
  report.autoDiff = diff(expected, await hashTree("/mnt/auto"));
  await guest.must(["umount", "/mnt/auto", "--cache-dir", autoCache]);
  if (withFuse !== "fuse") return;

  guest.step("2. --frontend fuse");
  const fuseCache = path.join(SCRATCH, "eod-fuse");
  fs.mkdirSync("/mnt/fuse", { recursive: true });
  let t = Date.now();
  await guest.must(["mount", img, "/mnt/fuse", "--cache-dir", fuseCache, "--frontend", "fuse"]);
  report.fuseMountMs = Date.now() - t;
  const sf = JSON.parse(await guest.must(["status", "--cache-dir", fuseCache, "--json"])) as Status;
  report.fuse = {
    frontend: sf.frontend.name, reason: sf.frontend.reason, erofsMount: sf.erofsMount,
    mountSource: sf.mounts[0]?.mountSource, loopDevices: sf.mounts[0]?.loopDevices ?? [],
  };
  report.fuseText = await guest.must(["status", "--cache-dir", fuseCache]);
  report.fuseLoopsBound = loopsUnder(fuseCache);
  report.fuseMounts = mountsUnder(fuseCache).concat(mountsUnder("/mnt"));
  t = Date.now();
  report.fuseDiff = diff(expected, await hashTree("/mnt/fuse"));
  report.fuseReadMs = Date.now() - t;

  guest.step("3. failed mounts");
  fs.writeFileSync("/mnt/not-a-dir", "");
  const notDir = await guest.eod(["mount", img, "/mnt/not-a-dir", "--cache-dir", fuseCache, "--frontend", "fuse"]);
  const missing = await guest.eod(["mount", img, "/mnt/missing", "--cache-dir", fuseCache, "--frontend", "fuse"]);
  report.failed = { notDir: { code: notDir.code, stderr: notDir.stderr.trim() }, missing: { code: missing.code, stderr: missing.stderr.trim() } };
  report.loopsAfterFailed = loopsUnder(fuseCache);

  guest.step("4. umount");
  await guest.must(["umount", "/mnt/fuse", "--cache-dir", fuseCache]);
  // Autoclear happens as erofs lets go, the daemon exits after its last mount: give each a moment.
  await until(() => loopsUnder(fuseCache).length === 0 && mountsUnder(fuseCache).length === 0, 10_000);
  report.loopsAfterUmount = loopsUnder(fuseCache);
  report.mountsAfterUmount = mountsUnder(fuseCache);
  report.allLoopsAfter = loopsUnder("");

  guest.step("5. failover");
  const foCache = path.join(SCRATCH, "eod-failover");
  fs.mkdirSync("/mnt/fo", { recursive: true });
  const server = await guest.serve(img);
  await guest.must(["mount", server.url, "/mnt/fo", "--cache-dir", foCache, "--frontend", "fuse"]);
  const fo = await killDaemonUnderReaders(server, foCache, "/mnt/fo", expected);
  report.failover = fo.readers;
  report.failoverNewPid = fo.newPid;
  report.failoverStats = (JSON.parse(await guest.must(["status", "--cache-dir", foCache, "--json"])) as Status).frontend;
  report.failoverDiff = diff(expected, await hashTree("/mnt/fo"));
  report.failoverLog = fs.readFileSync(path.join(foCache, "daemon.log"), "utf8").split("\n").filter((l) => /journal|restarted|died|resend/i.test(l)).slice(-6);
  await guest.must(["umount", "/mnt/fo", "--cache-dir", foCache]);
  await until(() => loopsUnder(foCache).length === 0, 10_000);
  report.failoverLoopsAfter = loopsUnder(foCache);
}

guest.finish(main);
