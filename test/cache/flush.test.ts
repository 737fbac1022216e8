// The presence flusher on a cache filesystem whose fdatasync really fails: the cache directory is an ext4 on a
// loop device whose backing file lives on a small tmpfs that is then filled up. ext4 still takes the writes
// (into its page cache: it has free blocks), but their writeback cannot reach the full tmpfs, so fdatasync
// fails (EIO). The blob must stay dirty, the failure must be counted, no map may claim the chunks, and once
// space is back the next flush succeeds. Linux reports that failure once, so the retried sync succeeds without
// the lost pages: the chunks filled before the failure must be missing (holes) and fetched again, and the file
// read from the disk afterwards must hold the source's bytes, not the zeros of pages that never got there.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { buildImage } from "../../src/mkfs/image.ts";
import { CacheCore } from "../../src/cache/core.ts";
import { PresenceMap } from "../../src/cache/presence.ts";
import { SparseFileStorage } from "../../src/cache/storage.ts";
import { decodeChunkTable, encodeChunkTable, type ChunkTable } from "../../src/image/chunk-table.ts";
import { openRemote } from "../../src/remote/open-remote.ts";
import { haveRoot, tempDir } from "../helpers/kernel.ts";
import { haveTool } from "../helpers/cli.ts";
import { unavailable } from "../helpers/skip.ts";
import { cleanup, eodAsync, readInChild } from "../helpers/lazy.ts";
import { kernelSupportsPreContent } from "../../src/sys/fanotify.ts";

const MiB = 1 << 20;
const skip = unavailable(!haveRoot() ? "needs root to mount" : !haveTool("losetup") ? "needs losetup" : !haveTool("mkfs.ext4") && "needs mkfs.ext4");
/** Undone in reverse order after the test, whatever happened. */
const undo: Array<() => void> = [];

after(() => {
  for (const u of undo.reverse()) {
    try { u(); } catch { /* the next steps still run */ }
  }
});

function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  assert.equal(r.status, 0, `${cmd} ${args.join(" ")}: ${r.stderr}`);
  return r.stdout.trim();
}

/** Writes a file until the filesystem is full; returns its path. */
function fill(dir: string): string {
  const file = path.join(dir, "filler");
  const fd = fs.openSync(file, "w");
  const chunk = Buffer.alloc(MiB, 1);
  try {
    for (;;) fs.writeSync(fd, chunk);
  } catch (err) {
    assert.equal((err as NodeJS.ErrnoException).code, "ENOSPC");
  } finally {
    fs.closeSync(fd);
  }
  return file;
}

/** An ext4 (`ext4`, on loop device `dev`) whose backing file is on a small tmpfs (`tmpfs`) that fill() makes full. */
function failingExt4(work: string): { tmpfs: string; ext4: string; dev: string } {
  const tmpfs = path.join(work, "tmpfs");
  const ext4 = path.join(work, "ext4");
  fs.mkdirSync(tmpfs);
  fs.mkdirSync(ext4);
  run("mount", ["-t", "tmpfs", "-o", "size=24m", "tmpfs", tmpfs]);
  undo.push(() => spawnSync("umount", ["-l", tmpfs]));
  const image = path.join(tmpfs, "ext4.img");
  fs.closeSync(fs.openSync(image, "w"));
  fs.truncateSync(image, 20 * MiB); // sparse: ext4 believes it has 20 MiB, the tmpfs has room for far less once filled
  run("mkfs.ext4", ["-q", "-F", "-O", "^has_journal", "-m", "0", image]); // no journal to abort on a failed write
  const dev = run("losetup", ["--find", "--show", image]);
  undo.push(() => spawnSync("losetup", ["-d", dev]));
  run("mount", ["-o", "errors=continue", dev, ext4]);
  undo.push(() => spawnSync("umount", ["-l", ext4]));
  return { tmpfs, ext4, dev };
}

/** An image of one 3 MiB file of random bytes (incompressible: all of it to write back) in 64 KiB chunks. */
async function buildBlob(work: string) {
  const src = path.join(work, "src");
  fs.mkdirSync(src);
  const data = randomBytes(3 * MiB);
  fs.writeFileSync(path.join(src, "data"), data);
  const img = path.join(work, "img");
  await buildImage(src, img, { chunkSize: 64 << 10, inlineMax: 0 });
  const m = JSON.parse(fs.readFileSync(path.join(img, "manifest.json"), "utf8"));
  const table = decodeChunkTable(fs.readFileSync(path.join(img, m.blobs[0].table.path)), "t");
  return { img, m, table, data };
}

/** The file as it is on the disk (O_DIRECT: not the page cache, which may still hold pages that never got there). */
function readFromDisk(file: string): Buffer {
  const r = spawnSync("dd", [`if=${file}`, "iflag=direct", "bs=1M", "status=none"], { maxBuffer: 64 * MiB });
  assert.equal(r.status, 0, `dd ${file}: ${r.stderr}`);
  return r.stdout;
}

/** Asserts that every chunk of `file` holds the bytes of its digest, and that the file holds the source's bytes. */
function assertChunks(file: Buffer, table: ChunkTable, source: Buffer, where: string): void {
  table.entries.forEach((e, i) => {
    const got = createHash("sha256").update(file.subarray(e.plainOffset, e.plainOffset + e.plainSize)).digest();
    assert.ok(got.equals(Buffer.from(e.digest)), `chunk ${i} ${where} holds its bytes`);
  });
  assert.notEqual(file.indexOf(source), -1, `the cache file ${where} holds the source file's bytes`);
}

test("a failed fdatasync leaves the blob dirty, is counted, drops the chunks it was to make durable, and the next flush succeeds", { skip, timeout: 120_000 }, async () => {
  const work = tempDir("eod-flush-");
  const { img, m, table, data } = await buildBlob(work);

  const { tmpfs, ext4, dev } = failingExt4(work);

  const remote = openRemote(img);
  undo.push(() => { void remote.close(); });
  const core = new CacheCore(path.join(ext4, "cache"), { flushIntervalMs: 0, fileFetch: 0 }); // a read fetches what it asks
  const events: string[] = [];
  core.onEvent = (level, msg) => events.push(`${level} ${msg}`);
  const id = m.blobs[0].id as string;
  const blob = core.openBlob(id, table, { remote, path: m.blobs[0].remote.path });
  await core.ensure(id, 0, 256 << 10); // the first chunks, made durable by a flush that succeeds
  await core.flush();
  const durable = blob.presence.copy();
  assert.ok(durable.present > 0 && !durable.complete, `${durable.present} chunks durable`);
  const digest = createHash("sha256").update(encodeChunkTable(table)).digest();
  await core.ensure(id, 0, table.kernelSize); // the rest written: into ext4's page cache, not yet on the device
  assert.ok(blob.presence.complete && blob.dirty);

  const filler = fill(tmpfs); // the loop device's writes can no longer land
  await assert.rejects(core.flush(), (err: NodeJS.ErrnoException) => ["EIO", "ENOSPC"].includes(err.code ?? ""), "fdatasync failed");
  assert.equal(blob.dirty, true, "the blob stays dirty");
  assert.equal(core.cacheStats().flushFailures, 1, "the failure is counted");
  assert.ok(events.some((e) => e.startsWith("error making a blob's presence durable failed")), events.join("\n"));
  const onDiskMap = PresenceMap.load(`${core.blobPath(id)}.present`, table.entries.length, digest);
  assert.equal(onDiskMap?.present, durable.present, "no map claims chunks that are not durable");
  // The chunks filled since the blob's last successful sync cannot be trusted; those it made durable stay.
  for (let i = 0; i < table.entries.length; i++) assert.equal(blob.presence.has(i), durable.has(i), `chunk ${i} present only if it was durable`);
  assert.equal(blob.stats().unsyncedDropped, table.entries.length - durable.present);
  const kept = blob.storage.dataRanges();
  assert.equal(kept.length, 1, "the dropped chunks' holes are punched");
  assert.equal(kept[0].offset, 0);
  assert.ok(kept[0].length < table.kernelSize);
  assert.ok(events.some((e) => e.startsWith("warn a failed sync made the chunks filled since the last one missing")), events.join("\n"));

  fs.rmSync(filler); // space is back
  await core.flush();
  assert.equal(blob.dirty, false, "the retried flush made it durable");
  assert.equal(core.cacheStats().flushFailures, 1);
  const savedDurable = PresenceMap.load(`${core.blobPath(id)}.present`, table.entries.length, digest);
  assert.equal(savedDurable?.present, durable.present, "the map claims none of the dropped chunks");

  const fetches = blob.stats().fetches;
  await core.ensure(id, 0, table.kernelSize); // a reader: every chunk is a miss again, fetched and verified
  assert.ok(blob.stats().fetches > fetches, "the dropped chunks were fetched again");
  await core.flush();
  const saved = PresenceMap.load(`${core.blobPath(id)}.present`, table.entries.length, digest);
  assert.equal(saved?.complete, true, "the map now records every chunk");
  // What a reader gets once the page cache lets go: before this fix, zeros in every chunk the map claimed.
  assertChunks(readFromDisk(core.blobPath(id)), table, data, "on the disk");
  await core.close();

  // What the kernel would read once the page cache is gone: the file as it is on the disk.
  run("umount", [ext4]);
  run("mount", ["-o", "errors=continue", dev, ext4]);
  const reopened = new CacheCore(path.join(ext4, "cache"), { flushIntervalMs: 0 });
  const again = reopened.openBlob(id, table, { remote, path: m.blobs[0].remote.path });
  assert.equal(again.presence.complete, true, "every chunk is present after a restart");
  assertChunks(fs.readFileSync(reopened.blobPath(id)), table, data, "after a remount");
  await reopened.close();
});

/**
 * Fault injection: a sparse file whose sync fails while `failSyncs` > 0, and whose writes at `holdAt` land in
 * the file but report completion only when `release` is called (a write under way when a sync fails).
 */
class FaultyStorage extends SparseFileStorage {
  failSyncs = 0;
  holdAt = -1;
  held: Promise<void> | null = null;
  release: () => void = () => {};
  readonly writesAt = new Map<number, number>();

  override async write(pos: number, bytes: Uint8Array): Promise<void> {
    this.writesAt.set(pos, (this.writesAt.get(pos) ?? 0) + 1);
    await super.write(pos, bytes);
    if (pos !== this.holdAt) return;
    this.holdAt = -1;
    const { promise, resolve } = Promise.withResolvers<void>();
    this.held = promise;
    this.release = resolve;
    await promise;
  }

  override async sync(): Promise<void> {
    if (this.failSyncs > 0) {
      this.failSyncs--;
      throw Object.assign(new Error("EIO: injected fdatasync failure"), { code: "EIO" });
    }
    await super.sync();
  }
}

test("a chunk written while a sync fails is written again; a closing blob whose sync failed leaves a map of durable chunks only", { timeout: 60_000 }, async () => {
  const work = tempDir("eod-flush-fault-");
  const { img, m, table } = await buildBlob(work);
  const remote = openRemote(img);
  try {
    const core = new CacheCore(path.join(work, "cache"), { flushIntervalMs: 0, minFetch: 1, fileFetch: 0 });
    const id = m.blobs[0].id as string;
    const storage = new FaultyStorage(core.blobPath(id), table.kernelSize);
    const blob = core.openBlob(id, table, { remote, path: m.blobs[0].remote.path }, storage);
    const chunk = (i: number) => core.ensure(id, table.entries[i].plainOffset, 1);
    const digest = createHash("sha256").update(encodeChunkTable(table)).digest();
    const savedMap = () => PresenceMap.load(`${core.blobPath(id)}.present`, table.entries.length, digest);

    await chunk(0);
    await core.flush(); // chunk 0 durable
    await chunk(2); // filled, not yet synced
    storage.holdAt = table.entries[10].plainOffset;
    const reading = chunk(10); // its bytes land, its completion waits
    while (!storage.held) await new Promise((r) => setImmediate(r));
    storage.failSyncs = 1;
    await assert.rejects(core.flush(), /injected/);
    assert.ok(blob.presence.has(0), "a chunk an earlier sync made durable stays");
    assert.ok(!blob.presence.has(2), "a chunk filled since is missing");
    assert.ok(!storage.dataRanges().some((r) => r.offset <= table.entries[2].plainOffset && r.offset + r.length > table.entries[2].plainOffset), "and its hole is punched");
    storage.release();
    await reading;
    assert.equal(storage.writesAt.get(table.entries[10].plainOffset), 2, "the write under way across the failed sync was done again");
    assert.ok(blob.presence.has(10));
    await core.flush();
    assert.deepEqual([0, 2, 10].map((i) => savedMap()!.has(i)), [true, false, true]);

    await chunk(2); // fetched again
    assert.equal(storage.writesAt.get(table.entries[2].plainOffset), 2);
    await chunk(20);
    storage.failSyncs = 1; // the closing blob's sync fails once: its unsynced chunks go, and it tries again
    await core.closeBlob(id);
    assert.equal(core.cacheStats().flushFailures, 2);
    assert.deepEqual([0, 2, 10, 20].map((i) => savedMap()!.has(i)), [true, false, true, false]);
    await core.close();
  } finally {
    await remote.close();
  }
});

/** What the test reads of `eod status --json`. */
interface StatusJson {
  cache: { flushFailures: number };
  blobs: Array<{ chunks: number; presentChunks: number; unsyncedDropped: number; fetches: number }>;
}

const fanotifySkip = unavailable(skip || (haveRoot() && !kernelSupportsPreContent().ok && "kernel lacks fanotify pre-content events"));

test("a fanotify lazy mount whose cache filesystem fails its sync: the chunks are fetched again, a reader never gets zeros", { skip: fanotifySkip, timeout: 180_000 }, async () => {
  const work = tempDir("eod-flush-mount-");
  const { img, data } = await buildBlob(work);
  const { tmpfs, ext4 } = failingExt4(work);
  const cache = path.join(ext4, "cache");
  const mnt = path.join(work, "mnt");
  fs.mkdirSync(mnt);
  undo.push(() => cleanup(work, cache));
  const eod = async (...args: string[]) => {
    const r = await eodAsync(args);
    assert.equal(r.status, 0, `eod ${args.join(" ")}: ${r.stderr}`);
    return r.stdout;
  };
  const status = async (): Promise<StatusJson> => JSON.parse(await eod("status", "--cache-dir", cache, "--json"));
  const until = async (what: string, ok: (s: StatusJson) => boolean) => {
    for (let i = 0; i < 300; i++) {
      const s = await status();
      if (ok(s)) return s;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.fail(`waited in vain for ${what}: ${JSON.stringify(await status())}`);
  };
  const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

  await eod("mount", img, mnt, "--cache-dir", cache, "--frontend", "fanotify");
  run("sync", ["-f", ext4]); // the bootstrap and the daemon's files are on the disk: only chunks are at stake
  const filler = fill(tmpfs); // from now on, no write of the cache filesystem reaches the disk
  const first = await readInChild(path.join(mnt, "data")); // every chunk filled: into the page cache
  assert.equal(first.sha256, sha(data));
  const failed = await until("a failed flush that drops the chunks", (s) => s.cache.flushFailures > 0 && s.blobs[0].unsyncedDropped > 0);
  assert.ok(failed.blobs[0].presentChunks < failed.blobs[0].chunks, JSON.stringify(failed.blobs[0]));

  fs.rmSync(filler); // space is back: the next sync succeeds, whether or not the failed pages ever got there
  await new Promise((r) => setTimeout(r, 2500)); // a flush or two
  fs.writeFileSync("/proc/sys/vm/drop_caches", "3"); // what the kernel reads now comes from the disk
  const again = await readInChild(path.join(mnt, "data"));
  assert.equal(again.error, undefined);
  assert.equal(again.zeros !== undefined && again.zeros > data.length / 2, false, "a reader gets the zeros of pages that never reached the disk");
  assert.equal(again.sha256, sha(data), "a reader gets the source's bytes");
  const s = await status();
  assert.ok(s.blobs[0].fetches > failed.blobs[0].fetches, "the dropped chunks were fetched again");
  await eod("umount", mnt, "--cache-dir", cache);
});
