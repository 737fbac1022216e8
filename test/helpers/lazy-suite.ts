// The lazy-mount suite every file-backed frontend must pass (fanotify, fuse): an image served over HTTP on
// 127.0.0.1 is mounted before any blob byte is fetched, reads fetch what they need, verified, once; failures
// surface as EIO. test/kernel/lazy-mount*.test.ts run it once per frontend.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import { makeAwkwardTree } from "./awkward-tree.ts";
import { spawn } from "node:child_process";
import { eodOk, REPO } from "./cli.ts";
import { compareTrees } from "./compare-trees.ts";
import { tempDir } from "./kernel.ts";
import { blobBytes, eodAsync, lazyWorkspace, readInChild, serve, type Served } from "./lazy.ts";
import { dataRanges } from "../../src/sys/seek.ts";
import { decodeChunkTable } from "../../src/image/chunk-table.ts";
import { ensureDaemon } from "../../src/daemon/spawn.ts";

export interface LazySuiteOptions {
  /** `--frontend` of every mount. */
  frontend: "fanotify" | "fuse";
  /** The suite's skip reason (unavailable()), or false. */
  skip: string | false;
}

export function lazyMountSuite(opts: LazySuiteOptions): void {
  const { skip, frontend } = opts;
  let work = "";
  let src = "";
  let img = "";
  let server: Served;
  let blobSize = 0;
  let ws: ReturnType<typeof lazyWorkspace>;
  // EOD_FILE_FETCH=0: a read fetches what it asks (widened to min_fetch), so the fault tests' corrupted byte, in the
  // middle of each answer, lands in the chunk read on every attempt (a whole-file answer would spread it).
  const env = { EOD_REMOTE_TIMEOUT_MS: "1500", EOD_REMOTE_RETRIES: "1", EOD_FILE_FETCH: "0" };

  before(async () => {
    if (skip) return;
    work = tempDir("eod-lazy-");
    ws = lazyWorkspace(work);
    src = path.join(work, "src");
    fs.mkdirSync(src);
    makeAwkwardTree(src, { bigDirEntries: 2000, sparseSize: 64 << 20, depth: 20 });
    fs.writeFileSync(path.join(src, "big.bin"), createHash("sha256").update("x").digest().toString("hex").repeat(300_000)); // 19 MB
    img = path.join(work, "img");
    eodOk("build", src, "-o", img, "--chunk-size", "256K");
    const manifest = JSON.parse(fs.readFileSync(path.join(img, "manifest.json"), "utf8"));
    blobSize = manifest.blobs[0].remote.size;
    server = await serve(img);
  });

  after(() => {
    if (work) ws.teardown(server);
  });

  async function mount(source: string, mnt: string, cache: string) {
    const r = await eodAsync(["mount", source, mnt, "--cache-dir", cache, "--frontend", frontend], env);
    assert.equal(r.status, 0, r.stderr);
  }

  async function umount(mnt: string, cache: string) {
    const r = await eodAsync(["umount", mnt, "--cache-dir", cache]);
    assert.equal(r.status, 0, r.stderr);
  }

  async function status(cache: string) {
    return JSON.parse((await eodAsync(["status", "--cache-dir", cache, "--json"])).stdout);
  }

  test("mount fetches no blob bytes; one small read fetches a small part; the tree is identical; a second mount fetches nothing", { skip, timeout: 300_000 }, async () => {
    const { cache, mnt } = ws.fresh();
    await server.resetStats();
    await mount(server.url, mnt, cache);
    assert.equal(blobBytes(await server.stats()), 0, "no blob bytes at mount");
    assert.equal(fs.readFileSync(path.join(mnt, "files/size-4097")).equals(fs.readFileSync(path.join(src, "files/size-4097"))), true);
    const afterOne = blobBytes(await server.stats());
    assert.ok(afterOne > 0 && afterOne < blobSize * 0.1, `one small file fetched ${afterOne} of ${blobSize} blob bytes`);
    assert.deepEqual(await compareTrees(src, mnt, { ignoreRootAttrs: true }), []);
    const s = await status(cache);
    assert.equal(s.blobs[0].corrupt, 0);
    await umount(mnt, cache);
    assert.ok(!fs.existsSync(path.join(cache, "daemon.sock")), "the daemon exits with its last mount");

    await server.resetStats();
    await mount(server.url, mnt, cache);
    assert.deepEqual(await compareTrees(src, mnt, { ignoreRootAttrs: true }), []);
    assert.equal(blobBytes(await server.stats()), 0, "a warm cache fetches nothing");
    await umount(mnt, cache);
  });

  test("32 concurrent readers of one cold file: each chunk is fetched once", { skip, timeout: 120_000 }, async () => {
    const { cache, mnt } = ws.fresh();
    await mount(server.url, mnt, cache);
    const want = createHash("sha256").update(fs.readFileSync(path.join(src, "big.bin"))).digest("hex");
    const results = await Promise.all(Array.from({ length: 32 }, () => readInChild(path.join(mnt, "big.bin"))));
    for (const r of results) assert.equal(r.sha256, want);
    const s = await status(cache);
    const blob = s.blobs[0];
    // Every fetched byte belongs to a chunk that became present, and no chunk was fetched twice.
    const table = JSON.parse(eodOk("inspect", img, "--summary", "--json"));
    assert.ok(table.blobs[0].remoteSize >= blob.fetchedBytes);
    assert.equal(blob.fetchedBytes, remoteBytesOfPresent(cache, blob.id), "fetched bytes = remote bytes of present chunks");
    await umount(mnt, cache);
  });

  /** Sum of remote sizes of the chunks marked present in the daemon's view, read back from the cache's chunk table. */
  function remoteBytesOfPresent(cache: string, id: string): number {
    const table = decodeChunkTable(fs.readFileSync(path.join(cache, "blobs", `${id}.ctab`)), id);
    const fd = fs.openSync(path.join(cache, "blobs", id), "r"); // lseek only: reading would raise an event
    try {
      const ranges = dataRanges(fd, table.kernelSize);
      return table.entries.filter((e) => ranges.some((r) => r.offset <= e.plainOffset && r.offset + r.length >= e.plainOffset + e.plainSize)).reduce((n, e) => n + e.remoteSize, 0);
    } finally {
      fs.closeSync(fd);
    }
  }

  test("a remote that corrupts a chunk: EIO after the retries, bad bytes never cached, the daemon stays up, later success", { skip, timeout: 120_000 }, async () => {
    const { cache, mnt } = ws.fresh();
    await mount(server.url, mnt, cache);
    await server.setFaults({ mode: "corrupt", match: "blobs/" });
    const r = await readInChild(path.join(mnt, "files/random-3MiB"));
    assert.equal(r.error, "EIO");
    const s = await status(cache);
    assert.ok(s.blobs[0].corrupt >= 3, `corrupt answers seen: ${s.blobs[0].corrupt}`);
    assert.equal(s.blobs[0].cachedBytes, 0, "nothing entered the cache");
    const fd = fs.openSync(path.join(cache, "blobs", s.blobs[0].id), "r");
    assert.deepEqual(dataRanges(fd, fs.fstatSync(fd).size), [], "the cache file holds no data");
    fs.closeSync(fd);
    await server.setFaults(null);
    const ok = await readInChild(path.join(mnt, "files/random-3MiB"));
    assert.equal(ok.sha256, createHash("sha256").update(fs.readFileSync(path.join(src, "files/random-3MiB"))).digest("hex"));
    await umount(mnt, cache);
  });

  test("a stalled remote: the read fails with EIO after the timeout instead of hanging", { skip, timeout: 120_000 }, async () => {
    const { cache, mnt } = ws.fresh();
    await mount(server.url, mnt, cache);
    await server.setFaults({ mode: "stall", match: "blobs/" });
    const started = Date.now();
    const r = await readInChild(path.join(mnt, "files/size-8192"), 30_000);
    assert.equal(r.error, "EIO");
    assert.ok(Date.now() - started < 15_000, `gave up after ${Date.now() - started} ms`);
    await server.setFaults(null);
    assert.equal((await readInChild(path.join(mnt, "files/size-8192"))).error, undefined);
    await umount(mnt, cache);
  });

  test("errors before mounting leave nothing mounted: bad URL, missing blob, bootstrap digest mismatch, mountpoint in use", { skip, timeout: 120_000 }, async () => {
    const { cache, mnt } = ws.fresh();
    const expectFail = async (source: string, pattern: RegExp) => {
      // A fresh cache each time: a cache that already holds the verified bootstrap would never fetch the bad one.
      const r = await eodAsync(["mount", source, mnt, "--cache-dir", ws.fresh().cache, "--frontend", frontend], env);
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, pattern);
      assert.ok(!fs.readFileSync("/proc/self/mounts", "utf8").includes(mnt), "nothing mounted");
    };
    await expectFail(new URL("no/such/image/", server.url).href, /manifest\.json does not exist/);
    const broken = path.join(work, "broken");
    fs.cpSync(img, broken, { recursive: true });
    const id = JSON.parse(fs.readFileSync(path.join(img, "manifest.json"), "utf8")).blobs[0].id;
    fs.rmSync(path.join(broken, "blobs", id));
    await expectFail(broken, /Blob [0-9a-f]{64} is not available/);
    fs.cpSync(img, broken, { recursive: true });
    const boot = path.join(broken, "bootstrap.erofs.zst"); // the wire form mounts fetch
    const b = fs.readFileSync(boot);
    b[b.length - 1] ^= 1;
    fs.writeFileSync(boot, b);
    await expectFail(broken, /compressed bootstrap has digest/);
    // A manifest whose wire form is self-consistent but is not the bootstrap it names.
    fs.cpSync(img, broken, { recursive: true });
    const manifestPath = path.join(broken, "manifest.json");
    const manifest = JSON.parse(fs.readFileSync(manifestPath, "utf8"));
    const other = zlib.zstdCompressSync(Buffer.alloc(manifest.bootstrap.size, 1));
    fs.writeFileSync(boot, other);
    manifest.bootstrapZstd = { ...manifest.bootstrapZstd, digest: `sha256:${createHash("sha256").update(other).digest("hex")}`, size: other.length };
    fs.writeFileSync(manifestPath, JSON.stringify(manifest));
    await expectFail(broken, /The bootstrap has digest/);
    await mount(server.url, mnt, cache);
    const again = await eodAsync(["mount", server.url, mnt, "--cache-dir", cache, "--frontend", frontend], env);
    assert.equal(again.status, 2, "a usage error");
    assert.match(again.stderr, /already a mount point/);
    await umount(mnt, cache);
  });

  // With a holder (the default: eod mount starts `eod daemon`, which holds the kernel fd) a killed daemon leaves
  // readers waiting for its successor: test/kernel/restart.test.ts, test/kernel/fuse-restart.test.ts. Without one
  // (--foreground) the kernel end dies with the daemon: a fanotify group lets every pending read through (the
  // hole reads as zeros); a FUSE connection is aborted, and its readers get an error, never zeros.
  test(`--foreground daemon killed mid-read: what readers see without a holder (${frontend === "fanotify" ? "fail-open), and a restarted daemon re-attaches" : "an error, not zeros)"}`, { skip, timeout: 120_000 }, async (t) => {
    const { cache, mnt } = ws.fresh();
    const fg = spawn(process.execPath, [path.join(REPO, "bin/eod.mjs"), "mount", server.url, mnt, "--cache-dir", cache, "--frontend", frontend, "--foreground"], { stdio: ["ignore", "pipe", "ignore"], env: { ...process.env, ...env } });
    try {
      await new Promise<void>((resolve, reject) => {
        let out = "";
        fg.stdout.on("data", (c: Buffer) => { out += c; if (out.includes("mounted ")) resolve(); });
        fg.once("exit", (code) => reject(new Error(`eod mount --foreground exited ${code}`)));
      });
    } catch (err) {
      fg.kill("SIGKILL");
      throw err;
    }
    assert.equal(fs.existsSync(path.join(cache, "holder.pid")), false, "no holder in the foreground");
    await server.setFaults({ mode: "stall", match: "blobs/" });
    const reading = readInChild(path.join(mnt, "files/size-1048699"), 30_000);
    await new Promise((r) => setTimeout(r, 500));
    fg.kill("SIGKILL");
    const seen = await reading;
    t.diagnostic(`reader saw: ${JSON.stringify(seen)}`);
    await server.setFaults(null);
    if (frontend === "fuse") {
      assert.ok(seen.error !== undefined, "the aborted connection fails the read");
      return; // the erofs mount over the dead connection's files serves nothing more: the teardown detaches it
    }
    assert.ok(seen.error === undefined && (seen.zeros ?? 0) > 0, "fail-open: the reader completed with zeros from the unfetched range");
    // Restart: the new daemon finds the mount in state.json, re-attaches, and serves the cache it left.
    for (const [k, v] of Object.entries(env)) process.env[k] = v;
    await ensureDaemon(cache, frontend);
    const s = await status(cache);
    assert.equal(s.mounts.length, 1, "re-attached to the mount");
    const other = await readInChild(path.join(mnt, "files/random-3MiB"));
    assert.equal(other.sha256, createHash("sha256").update(fs.readFileSync(path.join(src, "files/random-3MiB"))).digest("hex"));
    // The zeros the first reader got may sit in erofs's page cache; once dropped, the right bytes come back.
    fs.writeFileSync("/proc/sys/vm/drop_caches", "1");
    const again = await readInChild(path.join(mnt, "files/size-1048699"));
    assert.equal(again.sha256, createHash("sha256").update(fs.readFileSync(path.join(src, "files/size-1048699"))).digest("hex"));
    await umount(mnt, cache);
  });

  test("--foreground serves in the CLI process until SIGINT, which unmounts (its own mounts too)", { skip, timeout: 60_000 }, async () => {
    const { cache, mnt } = ws.fresh();
    const child = spawn(process.execPath, [path.join(REPO, "bin/eod.mjs"), "mount", img, mnt, "--cache-dir", cache, "--frontend", frontend, "--foreground"], { stdio: ["ignore", "pipe", "pipe"] });
    try {
      await new Promise<void>((resolve, reject) => {
        let out = "";
        child.stdout.on("data", (c: Buffer) => { out += c; if (out.includes("mounted ")) resolve(); });
        child.once("exit", (code) => reject(new Error(`eod mount --foreground exited ${code}`)));
      });
      const r = await readInChild(path.join(mnt, "files/size-8192"));
      assert.equal(r.sha256, createHash("sha256").update(fs.readFileSync(path.join(src, "files/size-8192"))).digest("hex"));
      const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
      child.kill("SIGINT");
      assert.equal(await exited, 0);
      const table = fs.readFileSync("/proc/self/mounts", "utf8");
      assert.ok(!table.includes(mnt), "unmounted");
      assert.ok(!table.includes(cache), "nothing of the daemon's stays mounted (a FUSE frontend's filesystem)");
    } finally {
      child.kill("SIGKILL");
    }
  });
}
