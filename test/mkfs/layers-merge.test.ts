// Overlay rules and tar details of the layer build, checked in-process on the built image (ErofsReader):
// whiteouts only hide lower layers whatever the order inside a layer, opaque markers, a hard link to a lower
// layer's file, a directory entry over a directory, implicit parents, non-UTF-8 names, negative and
// nanosecond PAX times, global PAX headers, libarchive xattrs, and layers that add no blob.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { buildFromLayers, type LayersSummary } from "../../src/mkfs/layers/build-layers.ts";
import type { LayerInput } from "../../src/mkfs/layers/layer-stream.ts";
import { S_IFMT } from "../../src/erofs/constants.ts";
import { openImage } from "../../src/image/open.ts";
import { header, pad, tarArchive, tarEntry, type TarSpec } from "../helpers/tar-layer.ts";

interface Seen { mode: number; nlink: number; uid: number; size: number; mtime: [number, number]; nid: number; data?: Buffer; target?: string; xattrs: Record<string, string> }

/** Builds the layers (raw tar bytes each) and returns the summary and every path of the image. */
async function build(t: { after(fn: () => void): void }, layers: Buffer[]): Promise<{ summary: LayersSummary; tree: Map<string, Seen> }> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "eod-merge-"));
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  const inputs: LayerInput[] = layers.map((b, i) => ({ name: `layer ${i + 1}`, open: () => Readable.from([b]) }));
  const summary = await buildFromLayers(inputs, path.join(root, "img"), { chunkSize: 64 << 10 });
  const img = openImage(path.join(root, "img"));
  const tree = new Map<string, Seen>();
  try {
    for (const { path: p, inode } of img.reader.walk()) {
      const type = inode.mode & S_IFMT;
      const m = img.reader.mtimeOf(inode);
      tree.set(Buffer.concat(p.flatMap((c, i) => (i ? [Buffer.from("/"), c] : [c]))).toString("latin1"), {
        mode: inode.mode, nlink: inode.nlink, uid: inode.uid, size: inode.size, mtime: [m.sec, m.nsec], nid: inode.nid,
        data: type === 0o100000 ? Buffer.from(img.reader.read(inode, 0, inode.size)) : undefined,
        target: type === 0o120000 ? Buffer.from(img.reader.readLink(inode)).toString() : undefined,
        xattrs: Object.fromEntries(img.reader.xattrs(inode).map((x) => [x.name, Buffer.from(x.value).toString("hex")])),
      });
    }
  } finally {
    img.close();
  }
  return { summary, tree };
}

const f = (p: string, data: string | Buffer, extra: Partial<TarSpec> = {}): TarSpec => ({ path: p, data: Buffer.from(data), ...extra });
const d = (p: string, extra: Partial<TarSpec> = {}): TarSpec => ({ path: p, type: "dir", ...extra });

test("whiteouts hide only lower layers, whatever the order of entries in the layer", async (t) => {
  const { tree } = await build(t, [
    tarArchive([f("a", "lower a"), f("b", "lower b"), f("c", "lower c"), d("dir/"), f("dir/x", "x"), d("op/"), f("op/old", "old")]),
    tarArchive([
      f("a", "upper a"), f(".wh.a", ""), // written first, whiteout after: a stays (same layer)
      f(".wh.b", ""), f("b", "upper b"), // whiteout first: lower b gone, upper b written
      f(".wh.c", ""), f(".wh.dir", ""),
      f("op/new", "new"), f("op/.wh..wh..opq", ""), // opaque after a same-layer entry
      f(".wh..wh..plnk", ""), // aufs bookkeeping: ignored
    ]),
  ]);
  assert.equal(tree.get("a")!.data!.toString(), "upper a");
  assert.equal(tree.get("b")!.data!.toString(), "upper b");
  assert.ok(!tree.has("c") && !tree.has("dir") && !tree.has("dir/x") && !tree.has("op/old"));
  assert.equal(tree.get("op/new")!.data!.toString(), "new");
  assert.ok(![...tree.keys()].some((k) => k.includes(".wh.")));
});

test("hard links (also to a lower layer's file), directory over directory, file over directory, implicit parents", async (t) => {
  const big = randomBytes(100_000);
  const { tree } = await build(t, [
    tarArchive([d("etc/", { mode: 0o700, mtime: 5 }), f("etc/conf", big), f("etc/keep", "k"), d("x/"), f("x/inner", "i")]),
    tarArchive([
      { path: "etc/conf.lnk", type: "link", linkpath: "etc/conf" },
      d("etc/", { mode: 0o751, mtime: 6 }),
      f("x", "now a file"),
      f("made/by/implicit/parents", "p"),
    ]),
  ]);
  const conf = tree.get("etc/conf")!;
  assert.equal(conf.nid, tree.get("etc/conf.lnk")!.nid);
  assert.equal(conf.nlink, 2);
  assert.ok(conf.data!.equals(big));
  assert.equal(tree.get("etc")!.mode & 0o7777, 0o751);
  assert.deepEqual(tree.get("etc")!.mtime, [6, 0]);
  assert.ok(tree.has("etc/keep"), "a directory entry over a directory keeps its children");
  assert.equal(tree.get("x")!.data!.toString(), "now a file");
  assert.ok(!tree.has("x/inner"));
  for (const p of ["made", "made/by", "made/by/implicit"]) {
    assert.equal(tree.get(p)!.mode, 0o40755);
    assert.deepEqual(tree.get(p)!.mtime, [0, 0]);
  }
});

test("names and times: non-UTF-8 bytes, PAX binary path, negative and nanosecond times, global headers, libarchive xattrs", async (t) => {
  const globalPax = (() => {
    const body = Buffer.from("30 mtime=1600000000.000000007\n");
    const h = header({ name: Buffer.from("pax_global_header"), mode: 0o644, uid: 0, gid: 0, size: body.length, mtime: 0, typeflag: "g", linkname: Buffer.alloc(0), devMajor: 0, devMinor: 0 });
    return Buffer.concat([h, body, Buffer.alloc(pad(body.length))]);
  })();
  const tar = Buffer.concat([
    globalPax,
    tarEntry(f("global-time", "g")),
    tarEntry(f(Buffer.from([0x63, 0x61, 0x66, 0xe9]).toString("latin1"), "latin1 name")), // overwritten below with raw bytes
    tarEntry({ path: "pax-bin", data: Buffer.from("b"), pax: { path: Buffer.from([0x62, 0x69, 0x6e, 0xff, 0xfe]) } }),
    tarEntry(f("old", "o", { mtime: "-1.5" })),
    tarEntry(f("ns", "n", { mtime: "1700000000.123456789123" })),
    tarEntry(f("libarchive", "l", { pax: { "LIBARCHIVE.xattr.user.l%C3%A9": Buffer.from([0xff, 0x00]).toString("base64") } })),
    Buffer.alloc(1024),
  ]);
  // The helper writes names as UTF-8; put the raw byte 0xe9 in the second entry's name field.
  const at = tar.indexOf(Buffer.from("caf\u00c3\u00a9", "latin1"));
  if (at >= 0) {
    Buffer.from([0x63, 0x61, 0x66, 0xe9, 0]).copy(tar, at);
    fixChecksum(tar, at - (at % 512));
  }
  const { tree } = await build(t, [tar]);
  assert.deepEqual(tree.get("global-time")!.mtime, [1600000000, 7]);
  assert.ok(tree.has(Buffer.from([0x63, 0x61, 0x66, 0xe9]).toString("latin1")), [...tree.keys()].join(","));
  assert.ok(tree.has(Buffer.from([0x62, 0x69, 0x6e, 0xff, 0xfe]).toString("latin1")));
  assert.deepEqual(tree.get("old")!.mtime, [-2, 500_000_000]);
  assert.deepEqual(tree.get("ns")!.mtime, [1700000000, 123456789]);
  assert.deepEqual(tree.get("libarchive")!.xattrs, { "user.lé": "ff00" });
});

function fixChecksum(tar: Buffer, at: number): void {
  tar.fill(0x20, at + 148, at + 156);
  let sum = 0;
  for (let i = at; i < at + 512; i++) sum += tar[i];
  tar.write(`${sum.toString(8).padStart(6, "0")}\0 `, at + 148, "latin1");
}

test("a layer that adds no new chunk gets no blob; identical data in a later layer is stored once", async (t) => {
  const data = randomBytes(300_000);
  const { summary } = await build(t, [
    tarArchive([f("data", data)]),
    tarArchive([f("small", "inline only"), f(".wh.nothing", "")]),
    tarArchive([f("copy", data)]),
    Buffer.alloc(1024), // an empty layer
    tarArchive([f("new", randomBytes(70_000))]),
  ]);
  assert.deepEqual(summary.layers.map((l) => l.blobId !== null), [true, false, false, false, true]);
  assert.equal(summary.manifest.blobs.length, 2);
  assert.equal(summary.uniqueChunks, Math.ceil(300_000 / (64 << 10)) + 2);
});
