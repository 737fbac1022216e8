// Benchmark corpus: a cached Debian bookworm rootfs (debootstrap minbase + python3; ≈261 MB, ≈8,350 entries).
//
// It lives outside the repository, under `--corpus-cache=<dir>` (default /var/cache/erofs-ondemand-bench), and is
// built once: debootstrap runs into a temporary sibling directory which is renamed into place only when it
// completed, so an interrupted run never leaves a half corpus behind. Needs root (debootstrap does).
//
//   npx node bench/corpus.ts        # build if missing, print the path
import { spawn, spawnSync } from "node:child_process";
import { openSync, closeSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rename, rm, stat, chmod } from "node:fs/promises";
import path from "node:path";
import { option } from "./lib/args.ts";

/** Where the corpus is kept unless a bench is given --corpus-cache=<dir> (test/kernel/layers-roundtrip.test.ts looks here too). */
export const DEFAULT_BENCH_CACHE = "/var/cache/erofs-ondemand-bench";

const SUITE = "bookworm";
const MIRROR = "http://deb.debian.org/debian";
const NAME = "debian-bookworm-minbase-python3";
const TMP_PREFIX = `.${NAME}.tmp-`;

export function benchCacheDir(): string {
  return option("corpus-cache", DEFAULT_BENCH_CACHE);
}

/** Path of the Debian corpus, building it first if it is not cached yet. */
export async function debianCorpus(): Promise<string> {
  const cache = benchCacheDir();
  const final = path.join(cache, NAME);
  if (await isComplete(final)) return final;

  await mkdir(cache, { recursive: true });
  await removeStale(cache);
  ensureDebootstrap();

  const tmp = await mkdtemp(path.join(cache, TMP_PREFIX));
  await chmod(tmp, 0o755); // mkdtemp makes it 0700; it becomes the rootfs' "/"
  const log = `${tmp}.log`;
  process.stderr.write(`corpus: debootstrap ${SUITE} into ${tmp} (≈40 s, log ${log})\n`);
  const t0 = process.hrtime.bigint();
  try {
    const code = await run(
      "debootstrap",
      ["--variant=minbase", "--include=python3", SUITE, tmp, MIRROR],
      log,
    );
    if (code !== 0) throw new Error(`debootstrap exited with ${code}; last lines of ${log}:\n${tail(log, 30)}`);
    await unmountUnder(tmp); // debootstrap unmounts its /proc itself; be certain before publishing it
    if (!(await isComplete(tmp))) throw new Error(`debootstrap finished but ${tmp} does not look like a rootfs`);
    try {
      await rename(tmp, final);
    } catch (e) {
      // Someone else published it concurrently: keep theirs.
      if (!(await isComplete(final))) throw e;
      await removeTree(tmp);
    }
  } catch (e) {
    await removeTree(tmp).catch(() => {});
    throw e;
  }
  await rm(log, { force: true });
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  process.stderr.write(`corpus: ready at ${final} after ${secs.toFixed(1)} s\n`);
  return final;
}

async function isComplete(dir: string): Promise<boolean> {
  // Only ever created by rename() after a successful debootstrap; the checks guard against foreign junk.
  try {
    const [py, status] = await Promise.all([
      stat(path.join(dir, "usr/bin/python3")),
      stat(path.join(dir, "var/lib/dpkg/status")),
    ]);
    return py.isFile() && status.size > 0;
  } catch {
    return false;
  }
}

function ensureDebootstrap(): void {
  if (spawnSync("sh", ["-c", "command -v debootstrap"], { stdio: "ignore" }).status === 0) return;
  process.stderr.write("corpus: installing debootstrap with apt-get\n");
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  for (const args of [["update", "-qq"], ["install", "-y", "-qq", "--no-install-recommends", "debootstrap"]]) {
    const r = spawnSync("apt-get", args, { stdio: ["ignore", "ignore", "inherit"], env });
    if (r.status !== 0) throw new Error(`apt-get ${args.join(" ")} failed (${r.error?.message ?? `exit ${r.status}`})`);
  }
}

function run(cmd: string, args: string[], logFile: string): Promise<number> {
  const fd = openSync(logFile, "w");
  return new Promise<number>((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ["ignore", fd, fd] });
    child.on("error", reject);
    child.on("close", (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  }).finally(() => closeSync(fd));
}

function tail(file: string, lines: number): string {
  try {
    return readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

/** Leftovers of interrupted builds (temp dirs and their logs). */
async function removeStale(cache: string): Promise<void> {
  for (const name of await readdir(cache)) {
    if (!name.startsWith(TMP_PREFIX)) continue;
    const p = path.join(cache, name);
    if (name.endsWith(".log")) await rm(p, { force: true });
    else await removeTree(p);
  }
}

/**
 * rm -rf that first unmounts anything debootstrap may have left mounted inside (an interrupted debootstrap
 * can leave /proc or bind-mounted /dev nodes behind; deleting through those would hit the host).
 */
async function removeTree(dir: string): Promise<void> {
  await unmountUnder(dir);
  if (mountsUnder(dir).length > 0) throw new Error(`refusing to remove ${dir}: still has mounts inside`);
  await rm(dir, { recursive: true, force: true });
}

function mountsUnder(dir: string): string[] {
  const root = path.resolve(dir);
  const out: string[] = [];
  for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
    const mp = line.split(" ")[4];
    if (!mp) continue;
    const p = mp.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (p === root || p.startsWith(root + "/")) out.push(p);
  }
  return out.sort((a, b) => b.length - a.length); // deepest first
}

async function unmountUnder(dir: string): Promise<void> {
  for (const mp of mountsUnder(dir)) {
    const r = spawnSync("umount", [mp], { stdio: "ignore" });
    if (r.status !== 0) spawnSync("umount", ["-l", mp], { stdio: "ignore" });
  }
}

if (import.meta.main) {
  console.log(await debianCorpus());
}
