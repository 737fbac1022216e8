// The 512-byte-block tar bootstrap (src/mkfs/layers/tar-bootstrap.ts) read back by our own ErofsReader with the
// layers' tars as its devices: every regular file is one chunk pointing at its body in its layer's tar (right
// after its own header, past PAX and GNU long-name headers), and reads back as the reference extraction of the
// layers (GNU tar with the overlay rules, test/helpers/overlay-extract.ts) has it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { EROFS_INODE_CHUNK_BASED, EROFS_INODE_FLAT_PLAIN, S_IFMT, S_IFREG } from "../../src/erofs/constants.ts";
import { bufferSource, ErofsReader } from "../../src/erofs/reader.ts";
import { writeImageHead } from "../../src/mkfs/image.ts";
import { chunkBitsFor, TAR_BLK_SZ_BITS, TarBootstrap } from "../../src/mkfs/layers/tar-bootstrap.ts";
import { readTar } from "../../src/mkfs/layers/tar-reader.ts";
import type { BlobRef } from "../../src/image/manifest.ts";
import { haveTool } from "../helpers/cli.ts";
import { tempDir } from "../helpers/kernel.ts";
import { testLayers } from "../helpers/oci-image.ts";
import { extractLayers } from "../helpers/overlay-extract.ts";
import { unavailable } from "../helpers/skip.ts";
import { tarArchive, type TarSpec } from "../helpers/tar-layer.ts";

const skip = unavailable(!haveTool("tar") ? "needs GNU tar for the reference extraction" : false);

/** The bootstrap of `tars` (lowest first) through the production path, each tar its own device. */
async function bootstrapOf(tars: Buffer[], dir: string): Promise<Buffer> {
  const boot = new TarBootstrap();
  for (const [k, tar] of tars.entries()) {
    boot.beginLayer(k);
    for await (const { entry } of readTar((async function* () { yield tar; })(), { where: `layer ${k}` })) boot.add(entry, `layer ${k}: ${entry.path}`);
  }
  const plan = boot.finish(tars.length, (k) => k + 1);
  const blobs: BlobRef[] = tars.map((t) => {
    const id = createHash("sha256").update(t).digest("hex");
    const ref = { path: `blobs/${id}`, digest: `sha256:${id}`, size: t.length };
    return { id, kernelSize: Math.ceil(t.length / 512) * 512, chunks: 1, table: ref, remote: ref };
  });
  writeImageHead(dir, { ...plan, blkSzBits: TAR_BLK_SZ_BITS, blobs, compression: "none" });
  return fs.readFileSync(path.join(dir, "bootstrap.erofs"));
}

/** Regular files of a directory tree: relative path → content. */
function filesOf(root: string, rel = "", out = new Map<string, Buffer>()): Map<string, Buffer> {
  for (const name of fs.readdirSync(path.join(root, rel))) {
    const r = rel ? `${rel}/${name}` : name;
    const st = fs.lstatSync(path.join(root, r));
    if (st.isDirectory()) filesOf(root, r, out);
    else if (st.isFile()) out.set(r, fs.readFileSync(path.join(root, r)));
  }
  return out;
}

test("chunkBitsFor: one chunk per file, at least one 512-byte block, at most the format's 2^40", () => {
  assert.deepEqual([1, 512, 513, 4096, 4097, 2 ** 20 + 1].map(chunkBitsFor), [9, 9, 10, 12, 13, 21]);
  assert.equal(chunkBitsFor(2 ** 40), 40);
  assert.equal(chunkBitsFor(2 ** 40 + 1), 40, "past 1 TiB a file takes several chunks");
});

test("every regular file is one chunk at its body in its layer's tar, and reads back as the extracted layers have it", { skip }, async () => {
  const work = tempDir("eod-tar-boot-");
  const specs = testLayers();
  // A file of size 0, one of exactly one block and one of one byte more: the chunk's edges.
  specs[2].push({ path: "edge/", type: "dir" }, { path: "edge/empty", data: Buffer.alloc(0) },
    { path: "edge/block", data: Buffer.alloc(512, 7) }, { path: "edge/block1", data: Buffer.alloc(513, 9) });
  const tars = specs.map((s) => tarArchive(s));
  const files = tars.map((t, k) => { const f = path.join(work, `l${k}.tar`); fs.writeFileSync(f, t); return f; });
  const expected = path.join(work, "expected");
  extractLayers(files, expected, work);
  const out = path.join(work, "img");
  fs.mkdirSync(out);
  const reader = new ErofsReader(bufferSource(await bootstrapOf(tars, out)), tars.map(bufferSource));

  assert.equal(reader.sb.blkSzBits, 9);
  assert.deepEqual(reader.devices.map((d) => d.blocks), tars.map((t) => t.length / 512));
  const want = filesOf(expected);
  const seen = new Set<string>();
  for (const { path: p, inode } of reader.walk()) {
    if ((inode.mode & S_IFMT) !== S_IFREG) continue;
    const rel = Buffer.concat(p.flatMap((c, i) => (i ? [Buffer.from("/"), c] : [c]))).toString();
    seen.add(rel);
    assert.ok(want.has(rel), `${rel} is not in the extracted layers`);
    if (inode.size === 0) {
      assert.equal(inode.dataLayout, EROFS_INODE_FLAT_PLAIN, `${rel}: an empty file has no chunk`);
      continue;
    }
    assert.equal(inode.dataLayout, EROFS_INODE_CHUNK_BASED, `${rel} is not inlined`);
    const chunks = reader.chunks(inode);
    assert.equal(chunks.length, 1, `${rel}: one chunk`);
    assert.equal(chunks[0].len, Math.ceil(inode.size / 512) * 512);
    const { deviceId, startBlk } = chunks[0].addr!;
    const tar = tars[deviceId - 1];
    // The block before the body is the entry's own header (not a PAX or GNU long-name one): a regular file's.
    const header = tar.subarray((startBlk - 1) * 512, startBlk * 512);
    assert.equal(String.fromCharCode(header[156]), "0", `${rel}: the block before its body is its own header`);
    assert.deepEqual(tar.subarray(startBlk * 512, startBlk * 512 + inode.size), want.get(rel), `${rel}: its body in layer ${deviceId}'s tar`);
    assert.deepEqual(Buffer.from(reader.read(inode, 0, inode.size)), want.get(rel), `${rel} read through the reader`);
  }
  assert.deepEqual([...seen].sort(), [...want.keys()].sort(), "the same regular files as the extracted layers");
  // The bodies behind PAX and GNU long names, and the layers of replaced and hard-linked files.
  const deviceOf = (rel: string) => {
    for (const { path: p, inode } of reader.walk()) if (Buffer.concat(p.flatMap((c, i) => (i ? [Buffer.from("/"), c] : [c]))).toString() === rel) return reader.chunks(inode)[0].addr!.deviceId;
    throw new Error(rel);
  };
  assert.equal(deviceOf("etc/hosts"), 2, "replaced in layer 2");
  assert.equal(deviceOf("etc/hosts.bak"), 2, "a hard link to layer 2's file");
  assert.equal(deviceOf("usr/bin/tool"), 1);
  assert.equal(deviceOf("opt/old/fresh"), 3);
});

test("a hard link in a later layer to a lower layer's file points at the lower layer's tar", async () => {
  const work = tempDir("eod-tar-boot-");
  const data = Buffer.alloc(3000, 1);
  const l1: TarSpec[] = [{ path: "a", data }];
  const l2: TarSpec[] = [{ path: "b", type: "link", linkpath: "a" }, { path: "c", data: Buffer.from("c") }];
  const tars = [tarArchive(l1), tarArchive(l2)];
  const reader = new ErofsReader(bufferSource(await bootstrapOf(tars, work)), tars.map(bufferSource));
  const byName = new Map([...reader.walk()].map(({ path: p, inode }) => [Buffer.concat(p).toString(), inode]));
  assert.equal(byName.get("a")!.nid, byName.get("b")!.nid);
  assert.equal(byName.get("b")!.nlink, 2);
  assert.deepEqual(reader.chunks(byName.get("b")!)[0].addr, { deviceId: 1, startBlk: 1 });
  assert.deepEqual(Buffer.from(reader.read(byName.get("b")!, 0, data.length)), data);
  assert.deepEqual(reader.chunks(byName.get("c")!)[0].addr, { deviceId: 2, startBlk: 2 }, "after layer 2's link header and its own");
});

// Golden bytes, worked by hand from erofs_fs.h: "./" and "hello.txt" ("hello\n", 0644, mtime 0) in one tar.
// The file's header is the tar's second record, so its body is at byte 1024: block 2 of device 1.
test("golden bytes: superblock, device slot, and the file's compact inode and chunk index", async () => {
  const tar = tarArchive([{ path: "./", type: "dir", mtime: 0 }, { path: "hello.txt", data: Buffer.from("hello\n"), mtime: 0 }]);
  const boot = await bootstrapOf([tar], tempDir("eod-tar-boot-"));
  const hex = (from: number, to: number) => boot.subarray(from, to).toString("hex");
  assert.equal(hex(0x400, 0x404), "e2e1f5e0", "magic");
  assert.equal(boot[0x40c], 9, "blkszbits");
  assert.equal(hex(0x450, 0x45c), "0c000000" + "0000" + "0100" + "0900" + "00" + "00", "incompat chunked_file|device_table, u1, extra_devices 1, devt_slotoff 9, dirblkbits 0");
  assert.equal(boot.subarray(0x480, 0x4c0).toString("latin1"), createHash("sha256").update(tar).digest("hex"), "device slot tag: the tar's diff_id");
  assert.equal(hex(0x4c0, 0x4c4), "05000000", "device blocks: 2560 bytes of tar / 512");
  const reader = new ErofsReader(bufferSource(boot), [bufferSource(tar)]);
  const file = [...reader.walk()].find((e) => Buffer.concat(e.path).toString() === "hello.txt")!.inode;
  const iloc = reader.iloc(file.nid);
  const inode = "0800" + "0000" + "a481" + "0100" + "06000000" + "00000000" + "20000000" + "02000000" + "0000" + "0000" + "00000000";
  // i_format: compact, datalayout 4 (chunk-based) | i_xattr_icount | i_mode | i_nlink | i_size | i_mtime |
  // i_u: chunk format = INDEXES (0x20) | chunkbits 9 - blkszbits 9 | i_ino 2 | i_uid | i_gid | reserved
  assert.equal(hex(iloc, iloc + 32), inode);
  assert.equal(hex(iloc + 32, iloc + 40), "0000" + "0100" + "02000000", "chunk index: startblk_hi 0, device_id 1, startblk_lo 2");
  assert.equal(Buffer.from(reader.read(file, 0, 6)).toString(), "hello\n");
});
