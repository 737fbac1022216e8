// The flusher keeps flushing after a flush that found nothing dirty. Such a flush finishes without an await, and
// it used to leave its settled promise behind as "a flush is running": no presence map was written again, so a
// daemon killed later lost every fill it had made (test/kernel/restart.test.ts fetched a warm file again).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { buildImage } from "../../src/mkfs/image.ts";
import { CacheCore } from "../../src/cache/core.ts";
import { PresenceMap } from "../../src/cache/presence.ts";
import { decodeChunkTable, encodeChunkTable, type ChunkTable } from "../../src/image/chunk-table.ts";
import { openRemote } from "../../src/remote/open-remote.ts";
import type { Remote } from "../../src/remote/remote.ts";
import { sha256 } from "../../src/util/sha256.ts";

let work = "";
let img = "";
let blobId = "";
let table: ChunkTable;
const remotes: Remote[] = [];

before(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "eod-flush-idle-"));
  const src = path.join(work, "src");
  fs.mkdirSync(src);
  fs.writeFileSync(path.join(src, "a.bin"), randomBytes(256 << 10));
  img = path.join(work, "img");
  await buildImage(src, img, { chunkSize: 64 << 10, inlineMax: 0 });
  const manifest = JSON.parse(fs.readFileSync(path.join(img, "manifest.json"), "utf8"));
  blobId = manifest.blobs[0].id;
  table = decodeChunkTable(fs.readFileSync(path.join(img, manifest.blobs[0].table.path)), "t");
});

after(async () => {
  for (const r of remotes) await r.close();
  fs.rmSync(work, { recursive: true, force: true });
});

function open(name: string, flushIntervalMs: number) {
  const dir = path.join(work, name);
  const core = new CacheCore(dir, { flushIntervalMs, fileFetch: 0, minFetch: 0 });
  const remote = openRemote(img);
  remotes.push(remote);
  const blob = core.openBlob(blobId, table, { remote, path: `blobs/${blobId}` });
  const persisted = () => PresenceMap.load(path.join(dir, "blobs", `${blobId}.present`), table.entries.length, sha256(encodeChunkTable(table)))?.present ?? 0;
  return { core, blob, persisted };
}

test("a flush after one that found nothing dirty writes the map", async () => {
  const { core, blob, persisted } = open("direct", 0);
  await core.flush(); // nothing filled yet: no await inside
  await blob.ensure(table.entries[1].plainOffset, 1);
  await core.flush();
  assert.equal(persisted(), 1, "the fill's presence is on disk");
  await blob.ensure(table.entries[2].plainOffset, 1);
  await core.flush();
  assert.equal(persisted(), 2);
  await core.close();
});

test("the interval flusher writes fills made after idle ticks", { timeout: 60_000 }, async () => {
  const { core, blob, persisted } = open("timer", 20);
  await new Promise((r) => setTimeout(r, 100)); // several ticks with nothing dirty
  await blob.ensure(table.entries[0].plainOffset, 1);
  const deadline = Date.now() + 30_000; // a deadline, not a timing: the ticks only need to come
  while (persisted() === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.equal(persisted(), 1, "a tick after the fill wrote the map");
  await core.close();
});
