// The presence flusher on a cache filesystem whose fdatasync really fails: the cache directory is an ext4 on a
// loop device whose backing file lives on a small tmpfs that is then filled up. ext4 still takes the writes
// (into its page cache: it has free blocks), but their writeback cannot reach the full tmpfs, so fdatasync
// fails (EIO). The blob must stay dirty, the failure must be counted, no map may claim the chunks, and once
// space is back the next flush succeeds.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { buildImage } from "../../src/mkfs/image.ts";
import { CacheCore } from "../../src/cache/core.ts";
import { PresenceMap } from "../../src/cache/presence.ts";
import { decodeChunkTable, encodeChunkTable } from "../../src/image/chunk-table.ts";
import { openRemote } from "../../src/remote/open-remote.ts";
import { haveRoot, tempDir } from "../helpers/kernel.ts";
import { haveTool } from "../helpers/cli.ts";
import { unavailable } from "../helpers/skip.ts";

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

test("a failed fdatasync leaves the blob dirty, is counted, and the next flush succeeds", { skip, timeout: 120_000 }, async () => {
  const work = tempDir("eod-flush-");
  const src = path.join(work, "src");
  fs.mkdirSync(src);
  fs.writeFileSync(path.join(src, "data"), randomBytes(3 * MiB)); // incompressible: 3 MiB to write back
  const img = path.join(work, "img");
  await buildImage(src, img, { chunkSize: 64 << 10, inlineMax: 0 });
  const m = JSON.parse(fs.readFileSync(path.join(img, "manifest.json"), "utf8"));
  const table = decodeChunkTable(fs.readFileSync(path.join(img, m.blobs[0].table.path)), "t");

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

  const remote = openRemote(img);
  undo.push(() => { void remote.close(); });
  const core = new CacheCore(path.join(ext4, "cache"), { flushIntervalMs: 0 });
  const events: string[] = [];
  core.onEvent = (level, msg) => events.push(`${level} ${msg}`);
  const id = m.blobs[0].id as string;
  const blob = core.openBlob(id, table, { remote, path: m.blobs[0].remote.path });
  await core.ensure(id, 0, table.kernelSize); // every chunk written: into ext4's page cache, not yet on the device
  assert.ok(blob.presence.complete && blob.dirty);

  const filler = fill(tmpfs); // the loop device's writes can no longer land
  await assert.rejects(core.flush(), (err: NodeJS.ErrnoException) => ["EIO", "ENOSPC"].includes(err.code ?? ""), "fdatasync failed");
  assert.equal(blob.dirty, true, "the blob stays dirty");
  assert.equal(core.cacheStats().flushFailures, 1, "the failure is counted");
  assert.ok(events.some((e) => e.startsWith("error making a blob's presence durable failed")), events.join("\n"));
  assert.equal(fs.existsSync(`${core.blobPath(id)}.present`), false, "no map claims chunks that are not durable");

  fs.rmSync(filler); // space is back
  await core.flush();
  assert.equal(blob.dirty, false, "the retried flush made it durable");
  assert.equal(core.cacheStats().flushFailures, 1);
  const digest = createHash("sha256").update(encodeChunkTable(table)).digest();
  const saved = PresenceMap.load(`${core.blobPath(id)}.present`, table.entries.length, digest);
  assert.equal(saved?.complete, true, "the map now records every chunk");
  await core.close();
});
