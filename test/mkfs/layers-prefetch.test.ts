// A layer build with a prefetch list: the listed files' data goes into a blob of its own (device 1), in the
// order the mount's prefetch asks for it, so the prefetch plan (src/daemon/prefetch.ts) is one run of
// consecutive chunks; the tree is the same as without a list; replaced or deleted listed files leave nothing
// in the hot blob; paths through symlinks are followed; missing entries are reported; the output is
// deterministic.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { groupRuns } from "../../src/cache/plan.ts";
import { planPrefetch } from "../../src/daemon/prefetch.ts";
import { S_IFMT, S_IFREG } from "../../src/erofs/constants.ts";
import { openImage } from "../../src/image/open.ts";
import type { PrefetchEntry } from "../../src/image/prefetch.ts";
import { buildFromLayers, type LayersSummary } from "../../src/mkfs/layers/build-layers.ts";
import type { LayerInput } from "../../src/mkfs/layers/layer-stream.ts";
import { tarArchive, type TarSpec } from "../helpers/tar-layer.ts";

const K = 1024;
const CHUNK = 64 * K;
const f = (p: string, data: Buffer): TarSpec => ({ path: p, data });
const d = (p: string): TarSpec => ({ path: p, type: "dir" });
const ln = (p: string, target: string): TarSpec => ({ path: p, type: "symlink", linkpath: target });

const data = {
  tool: randomBytes(300 * K), big: randomBytes(1024 * K), cold: randomBytes(2048 * K), conf1: randomBytes(200 * K),
  conf2: randomBytes(180 * K), a: randomBytes(100 * K), b: randomBytes(150 * K), late: randomBytes(70 * K), more: randomBytes(90 * K),
};
const LAYERS = [
  tarArchive([
    d("usr/"), d("usr/bin/"), d("usr/lib/"), ln("bin", "usr/bin"), f("usr/bin/tool", data.tool), f("usr/lib/big.so", data.big),
    // the same bytes as a listed file, earlier and unlisted: the listed one still gets its own copy in the hot blob
    d("data/"), f("data/cold.bin", data.cold), f("data/copy-of-a", data.a),
    d("etc/"), f("etc/conf", data.conf1), d("app/"), f("app/a.so", data.a), f("app/b.so", data.b),
    f("usr/lib/late.so", data.late), ln("lib", "usr/lib"), // the symlink after the file: seen too late to place it
  ]),
  tarArchive([d("etc/"), f("etc/conf", data.conf2), d("app/"), f("app/.wh.b.so", Buffer.alloc(0)), f("data/more.bin", data.more)]),
];
const LIST: PrefetchEntry[] = [
  { path: "/etc/conf" }, { path: "/bin/tool" }, { path: "/usr/lib/big.so", ranges: [[0, 4096], [8 * CHUNK + 10, 100]] },
  { path: "/app" }, { path: "/missing/file" }, { path: "/lib/late.so" },
];

async function build(t: { after(fn: () => void): void }, prefetch?: PrefetchEntry[]): Promise<{ dir: string; summary: LayersSummary }> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "eod-hot-"));
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  const inputs: LayerInput[] = LAYERS.map((b, i) => ({ name: `layer ${i + 1}`, open: () => Readable.from([b]) }));
  const dir = path.join(root, "img");
  return { dir, summary: await buildFromLayers(inputs, dir, { chunkSize: CHUNK, ...(prefetch ? { prefetch } : {}) }) };
}

/** Every path of the image with its type, mode and content (or link target). */
function treeOf(dir: string): Map<string, string> {
  const img = openImage(dir);
  try {
    const out = new Map<string, string>();
    for (const { path: p, inode } of img.reader.walk()) {
      const name = p.map((c) => Buffer.from(c).toString()).join("/");
      const body = (inode.mode & S_IFMT) === S_IFREG ? Buffer.from(img.reader.read(inode, 0, inode.size)).toString("hex") : "";
      out.set(name, `${inode.mode.toString(8)} ${inode.size} ${body}`);
    }
    return out;
  } finally {
    img.close();
  }
}

function filesOf(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const e of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (e.isFile()) out.set(path.relative(dir, path.join(e.parentPath, e.name)), fs.readFileSync(path.join(e.parentPath, e.name)));
  }
  return out;
}

test("a prefetch list puts the listed data first in a blob of its own, in the mount's prefetch order; the tree is unchanged", async (t) => {
  const plain = await build(t);
  const hot = await build(t, LIST);
  assert.deepEqual(treeOf(hot.dir), treeOf(plain.dir), "the same tree, content included");

  const img = openImage(hot.dir);
  try {
    const m = img.imageDir!.manifest;
    assert.equal(m.blobs.length, plain.summary.manifest.blobs.length + 1, "one more blob: the hot one");
    assert.deepEqual(m.prefetch?.map((e) => e.path), LIST.map((e) => e.path).filter((p) => p !== "/missing/file"));
    assert.ok(hot.summary.warnings.some((w) => w.includes("/missing/file")), hot.summary.warnings.join("\n"));
    assert.deepEqual(hot.summary.layers.map((l) => l.blobId), [m.blobs[1].id, m.blobs[2].id], "layer blobs follow the hot blob");

    const tables = img.imageDir!.tables;
    const plan = planPrefetch(img.reader, tables, m.prefetch!);
    // conf (layer 2's), tool (through /bin), big.so's chunks 0 and 8, a.so: in list order, chunk after chunk
    const wanted = [Math.ceil(data.conf2.length / CHUNK), Math.ceil(data.tool.length / CHUNK), 2, Math.ceil(data.a.length / CHUNK)];
    const n = wanted.reduce((x, y) => x + y, 0);
    assert.deepEqual(plan.chunks[0], [...Array(n).keys()], "the prefetch reads the hot blob from its start, in order");
    assert.equal(groupRuns(tables[0].entries, plan.chunks[0], 1 << 20).length, 1, "one request of under 1 MiB");
    // late.so's symlink came after it: its data stayed in its layer's blob (still prefetched, from there)
    assert.deepEqual(plan.chunks[1].length, Math.ceil(data.late.length / CHUNK));
    assert.deepEqual(plan.chunks[2], []);
    // after the wanted chunks: big.so's other chunks; nothing of layer 1's etc/conf or the deleted b.so
    assert.equal(tables[0].entries.length, n + data.big.length / CHUNK - 2);
  } finally {
    img.close();
  }
});

test("the same layers and list make the same bytes", async (t) => {
  const one = filesOf((await build(t, LIST)).dir);
  const two = filesOf((await build(t, LIST)).dir);
  assert.deepEqual([...one.keys()].sort(), [...two.keys()].sort());
  for (const [k, v] of one) assert.ok(v.equals(two.get(k)!), `${k} differs`);
});

test("a list that names nothing of the image adds no blob", async (t) => {
  const plain = await build(t);
  const none = await build(t, [{ path: "/missing/file" }]);
  assert.deepEqual(none.summary.manifest.blobs.map((b) => b.id), plain.summary.manifest.blobs.map((b) => b.id));
  assert.equal(none.summary.manifest.prefetch, undefined);
  assert.ok(none.summary.warnings.some((w) => w.includes("prefetch entry /missing/file is not a file or directory of the tree: skipped")));
});
