// The daemon and the world around it (real lazy mounts): a mount removed behind its back is forgotten and the
// daemon exits with its last one; a removed cache directory ends it (its mounts detached); eod umount finds
// the daemon of a mount made with another cache directory; a daemon that cannot start, or a CLI stopped while
// waiting for one, says what failed.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { eodOk, REPO } from "../helpers/cli.ts";
import { haveRoot, tempDir } from "../helpers/kernel.ts";
import { eodAsync, lazyWorkspace, serve, type Served } from "../helpers/lazy.ts";
import { kernelSupportsPreContent } from "../../src/sys/fanotify.ts";
import { mountAt } from "../../src/daemon/mountinfo.ts";
import { processAlive as alive } from "../../src/daemon/pids.ts";
import { unavailable } from "../helpers/skip.ts";

const support = haveRoot() ? kernelSupportsPreContent() : { ok: false, missing: ["root"] };
const skip = unavailable(!haveRoot() ? "needs root to mount" : !support.ok ? `kernel lacks: ${support.missing.join("; ")}` : false);

let work = "";
let img = "";
let server: Served;
let ws: ReturnType<typeof lazyWorkspace>;

before(async () => {
  if (skip) return;
  work = tempDir("eod-world-");
  ws = lazyWorkspace(work);
  const src = path.join(work, "src");
  fs.mkdirSync(src);
  fs.writeFileSync(path.join(src, "hello.txt"), "hello\n".repeat(1000));
  img = path.join(work, "img");
  eodOk("build", src, "-o", img);
  server = await serve(img);
});

after(() => {
  if (work) ws.teardown(server);
});

async function mount(mnt: string, cache: string): Promise<void> {
  const r = await eodAsync(["mount", server.url, mnt, "--cache-dir", cache]);
  assert.equal(r.status, 0, r.stderr);
}

/** Waits until `cond()` holds (the daemon reacts on its own event loop), or fails after `ms`. */
async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) assert.fail(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function mountsOf(cache: string): Promise<string[] | null> {
  const r = await eodAsync(["status", "--cache-dir", cache, "--json"]);
  const s = JSON.parse(r.stdout) as { running: boolean; mounts?: Array<{ mountPoint: string }> };
  return s.running ? s.mounts!.map((m) => m.mountPoint) : null;
}

const log = (cache: string) => fs.readFileSync(path.join(cache, "daemon.log"), "utf8");
const daemonGone = (cache: string) => !fs.existsSync(path.join(cache, "daemon.sock")) && !fs.existsSync(path.join(cache, "holder.pid"));

test("a mount removed behind the daemon's back (umount -l) is forgotten; the daemon exits with the last one", { skip, timeout: 120_000 }, async () => {
  const { cache, mnt } = ws.fresh();
  const mnt2 = `${mnt}-b`;
  fs.mkdirSync(mnt2);
  await mount(mnt, cache);
  await mount(mnt2, cache);
  assert.equal(spawnSync("umount", ["-l", mnt]).status, 0);
  await until("the daemon forgets the first mount", async () => JSON.stringify(await mountsOf(cache)) === JSON.stringify([mnt2]));
  assert.match(log(cache), /removed behind the daemon's back/);
  assert.equal(fs.readFileSync(path.join(mnt2, "hello.txt"), "utf8"), "hello\n".repeat(1000), "the other mount is still served");
  assert.equal(spawnSync("umount", ["-l", mnt2]).status, 0);
  await until("the daemon and its holder exit", () => daemonGone(cache));
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(cache, "state.json"), "utf8")).mounts, []);
});

test("a cache directory removed under the daemon: its mounts are detached and it exits", { skip, timeout: 120_000 }, async () => {
  const { cache, mnt } = ws.fresh();
  await mount(mnt, cache);
  const pid = Number(fs.readFileSync(path.join(cache, "daemon.pid"), "utf8"));
  const holder = Number(fs.readFileSync(path.join(cache, "holder.pid"), "utf8"));
  const moved = `${cache}-moved`; // renamed rather than removed, to read its log afterwards
  fs.renameSync(cache, moved);
  try {
    await until("the daemon and its holder exit", () => !alive(pid) && !alive(holder));
    assert.equal(mountAt(mnt), undefined, "the mount is detached");
    assert.match(fs.readFileSync(path.join(moved, "daemon.log"), "utf8"), /the cache directory is gone/);
  } finally {
    for (const p of [holder, pid]) if (alive(p)) process.kill(p, "SIGKILL"); // the holder first, or it starts a new daemon
    fs.rmSync(moved, { recursive: true, force: true });
  }
});

test("eod umount without --cache-dir goes through the daemon of the mount's own cache directory", { skip, timeout: 120_000 }, async () => {
  const { cache, mnt } = ws.fresh();
  await mount(mnt, cache);
  const r = await eodAsync(["umount", mnt], { EOD_CACHE_DIR: "" }); // not this cache directory
  assert.equal(r.status, 0, r.stderr);
  assert.equal(mountAt(mnt), undefined);
  assert.match(log(cache), /"msg":"unmounted"/, "the daemon unmounted it (not umount(2) behind its back)");
  await until("the daemon exits with its last mount", () => daemonGone(cache));
});

test("the daemon eod mount starts gets the command's settings: config file, then environment, then flags", { skip, timeout: 120_000 }, async () => {
  const file = path.join(work, "config.json");
  fs.writeFileSync(file, JSON.stringify({ cache: { size: "48M", low_percent: 50 }, remote: { retries: 1 } }));
  const budgetOf = async (env: Record<string, string>, ...flags: string[]) => {
    const { cache, mnt } = ws.fresh();
    const r = await eodAsync(["mount", server.url, mnt, "--cache-dir", cache, "--config", file, ...flags], env);
    assert.equal(r.status, 0, r.stderr);
    const s = JSON.parse((await eodAsync(["status", "--cache-dir", cache, "--json"])).stdout) as { cache: { budget: number; low: number } };
    assert.equal((await eodAsync(["umount", mnt, "--cache-dir", cache])).status, 0);
    return s.cache;
  };
  const fromFile = await budgetOf({});
  assert.deepEqual([fromFile.budget, fromFile.low], [48 * 1024 ** 2, 24 * 1024 ** 2], "from the file");
  assert.equal((await budgetOf({ EOD_CACHE_SIZE: "32M" })).budget, 32 * 1024 ** 2, "the environment over the file");
  assert.equal((await budgetOf({ EOD_CACHE_SIZE: "32M" }, "--cache-size", "16M")).budget, 16 * 1024 ** 2, "a flag over both");
  fs.writeFileSync(file, JSON.stringify({ cache: { size: -1 } }));
  const { cache, mnt } = ws.fresh();
  const r = await eodAsync(["mount", server.url, mnt, "--cache-dir", cache, "--config", file]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, new RegExp(`Bad value for cache\\.size in ${file}: -1`));
});

test("eod mount whose daemon cannot start prints the daemon's reason", { skip, timeout: 120_000 }, async () => {
  const { cache, mnt } = ws.fresh();
  fs.mkdirSync(path.join(cache, "state.json"), { recursive: true }); // the mount table cannot be read
  const r = await eodAsync(["mount", server.url, mnt, "--cache-dir", cache]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /did not start/);
  assert.match(r.stderr, new RegExp(`Cannot read the mount table ${path.join(cache, "state.json")}: EISDIR`));
});

test("eod mount stopped while it waits for a daemon says what it waited for", { skip, timeout: 60_000 }, async () => {
  const { cache, mnt } = ws.fresh();
  fs.mkdirSync(cache);
  // A holder that never starts a daemon: eod mount waits for it. A socket that answers nothing tells when it
  // waits (each check connects twice; the first two checks come before the wait).
  const sleeper = spawn("sleep", ["60"]);
  let connections = 0;
  const sock = net.createServer((c) => { connections++; c.destroy(); });
  await new Promise<void>((resolve) => sock.listen(path.join(cache, "daemon.sock"), resolve));
  try {
    fs.writeFileSync(path.join(cache, "holder.pid"), `${sleeper.pid}\n`);
    const child = spawn(process.execPath, [path.join(REPO, "bin/eod.mjs"), "mount", server.url, mnt, "--cache-dir", cache], { stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (c: Buffer) => { stderr += c; });
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    await until("eod mount waits for the daemon", () => connections >= 8);
    child.kill("SIGTERM");
    assert.equal(await exited, 143, stderr);
    assert.match(stderr, /SIGTERM while waiting for it/);
    assert.match(stderr, new RegExp(`daemon for ${cache}`));
  } finally {
    sleeper.kill("SIGKILL");
    sock.close();
    fs.rmSync(path.join(cache, "holder.pid"), { force: true });
  }
});
