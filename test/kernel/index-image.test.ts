// The index image's bootstrap (512-byte blocks, files pointing into the layers' tars) mounted by the real kernel
// with the uncompressed tars as its devices (file-backed erofs: mount(2) with device=<tar> options) is identical,
// byte for byte and attribute for attribute, to the layers extracted in order by GNU tar with the overlay rules
// (test/helpers/overlay-extract.ts): whiteouts, an opaque directory, hard links (one name whited out), binary and
// security xattrs, PAX and GNU long names and link targets, nanosecond times, devices, a fifo, empty files,
// a file replaced by a directory; and so is `eod mount` of the index image directory with the layers as its
// blobs' remote forms. Then a real tree: the Debian corpus packed by GNU tar and compressed by GNU gzip.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import { buildIndexImage, type IndexImageSummary } from "../../src/mkfs/index-image.ts";
import { layerFromFile } from "../../src/mkfs/layers/sources.ts";
import { haveTool, tool } from "../helpers/cli.ts";
import { compareTrees } from "../helpers/compare-trees.ts";
import { haveRoot, mountErofs, tempDir } from "../helpers/kernel.ts";
import { cleanup, eodAsync } from "../helpers/lazy.ts";
import { testLayers } from "../helpers/oci-image.ts";
import { extractLayers } from "../helpers/overlay-extract.ts";
import { unavailable } from "../helpers/skip.ts";
import { tarArchive, type TarSpec } from "../helpers/tar-layer.ts";
import { debianCorpus } from "../../bench/corpus.ts";
import { kernelSupportsPreContent } from "../../src/sys/fanotify.ts";

const skip = unavailable(!haveRoot() ? "needs root to mount" : !haveTool("tar") ? "needs GNU tar for the reference extraction" : false);

type Stored = "gzip" | "zstd" | "none";
// vfs_cap_data rev 2 (bytes 0xc0 and 0x80: not UTF-8).
const CAPS = Buffer.from("01000002c000008000000000000000000000000000000000".slice(0, 40), "hex");

/** oci-image.ts's three layers, and the entry kinds they lack. */
function specs(): TarSpec[][] {
  const [l1, l2, l3] = testLayers();
  l1.push(
    { path: "dev/", type: "dir" }, { path: "dev/null", type: "chardev", mode: 0o666, devMajor: 1, devMinor: 3 },
    { path: "dev/loop200", type: "blockdev", mode: 0o660, devMajor: 7, devMinor: 200 },
    { path: "run/", type: "dir" }, { path: "run/fifo", type: "fifo", mode: 0o600 },
    { path: "gnu-link", type: "symlink", linkpath: `target/${"t".repeat(150)}`, long: "gnu" },
    { path: "pax-link", type: "symlink", linkpath: `target/${"t".repeat(150)}` },
    { path: "empty", data: Buffer.alloc(0), uid: 70000, gid: 70001 },
    { path: "caps", data: Buffer.from("#!/bin/sh\n"), mode: 0o4755, xattrs: { "security.capability": CAPS, "trusted.x": "t" } },
    { path: "replaced", data: Buffer.from("a file in layer 1\n") },
  );
  l2.push({ path: "replaced/", type: "dir" }, { path: "replaced/inner", data: Buffer.alloc(512, 5) });
  l3.push({ path: "block1", data: Buffer.alloc(513, 6) });
  return [l1, l2, l3];
}

/** The tar as a layer stores it; a zstd layer in frames of 256 KiB of tar (a one-frame layer cannot be indexed). */
function store(tar: Buffer, kind: Stored): Buffer {
  if (kind === "gzip") return zlib.gzipSync(tar);
  if (kind === "none") return tar;
  const frames: Buffer[] = [];
  for (let at = 0; at < tar.length; at += 256 << 10) frames.push(zlib.zstdCompressSync(tar.subarray(at, at + (256 << 10))));
  return Buffer.concat(frames);
}

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

/** The bootstrap mounted with each blob's tar (by diff_id) as its device. */
async function mountIndex(r: IndexImageSummary, tarOf: (id: string) => string) {
  const devices = r.manifest.blobs.map((b) => `device=${tarOf(b.id)}`).join(",");
  return mountErofs(path.join(r.imageDir, r.manifest.bootstrap.path), devices);
}

for (const kinds of [["gzip", "none", "gzip"], ["zstd", "gzip", "none"]] as Stored[][]) {
  test(`layers stored as ${kinds.join(", ")}: the bootstrap mounts over their tars identical to the extracted layers`, { skip, timeout: 300_000 }, async (t) => {
    const work = tempDir("eod-index-kernel-");
    const tars = specs().map((s) => tarArchive(s));
    const names = kinds.map((k, i) => path.join(work, `l${i + 1}.tar${k === "gzip" ? ".gz" : k === "zstd" ? ".zst" : ""}`));
    names.forEach((f, i) => fs.writeFileSync(f, store(tars[i], kinds[i])));
    const tarFiles = new Map(tars.map((tar) => {
      const f = path.join(work, `${sha(tar)}.tar`);
      fs.writeFileSync(f, tar);
      return [sha(tar), f];
    }));
    const expected = path.join(work, "expected");
    extractLayers([...tarFiles.values()], expected, work);

    const r = await buildIndexImage(names.map((f, i) => layerFromFile(f, `layer ${i + 1}`)), path.join(work, "img"), { spanSize: 64 << 10 });
    assert.deepEqual(r.layers.map((l) => l.compression), kinds);
    const m = await mountIndex(r, (id) => tarFiles.get(id)!);
    t.after(() => m.unmount());
    assert.deepEqual(await compareTrees(expected, m.dir), []);
    // Spot checks of what the comparison covers, so a broken reference extraction cannot hide a bug.
    assert.ok(!fs.existsSync(path.join(m.dir, "etc/passwd")), "whiteout");
    assert.deepEqual(fs.readdirSync(path.join(m.dir, "var/cache")), ["new"], "opaque directory");
    assert.equal(fs.statSync(path.join(m.dir, "usr/bin/tool")).nlink, 1, "its other name is whited out");
    assert.equal(fs.statSync(path.join(m.dir, "etc/hosts")).nlink, 2);
    assert.equal(fs.lstatSync(path.join(m.dir, "usr/bin/tool"), { bigint: true }).mtimeNs, 1700000000123456789n);
    assert.equal(fs.readFileSync(path.join(m.dir, "replaced/inner")).length, 512);
    m.unmount();
    built = { r, expected, stored: names };
  });
}

let built: { r: IndexImageSummary; expected: string; stored: string[] } | null = null;
const lazySkip = unavailable(skip || (kernelSupportsPreContent().ok ? false : "kernel lacks fanotify pre-content events"));

test("eod mount <index dir>, the layers as they are in blobs/<id> (the dir remote serves them as a registry would), is identical to the extracted layers", { skip: lazySkip, timeout: 300_000 }, async (t) => {
  assert.ok(built, "needs the index image of the test before");
  const { r, expected, stored } = built;
  r.layers.forEach((l, k) => {
    const remote = path.join(r.imageDir, "blobs", l.blobId);
    if (!fs.existsSync(remote)) fs.copyFileSync(stored[k], remote); // the first layer with this tar is the blob's remote form
  });
  const work = tempDir("eod-index-dir-mount-");
  const cache = path.join(work, "cache");
  const mnt = path.join(work, "mnt");
  fs.mkdirSync(mnt);
  t.after(() => cleanup(work, cache));
  const mount = await eodAsync(["mount", r.imageDir, mnt, "--cache-dir", cache]);
  assert.equal(mount.status, 0, mount.stderr);
  assert.deepEqual(await compareTrees(expected, mnt, { ignoreRootAttrs: true, seekHoles: false }), []);
  const u = await eodAsync(["umount", mnt, "--cache-dir", cache]);
  assert.equal(u.status, 0, u.stderr);
});

// A real tree: the benchmark's Debian rootfs (bench/corpus.ts) packed by GNU tar as one pax layer with xattrs and
// compressed by GNU gzip, as a third-party client pushes it.
test("the Debian rootfs as one GNU tar + gzip layer: the bootstrap mounts over the tar identical to its directory", { skip: skip || unavailable(!haveTool("gzip") && "needs GNU gzip"), timeout: 900_000 }, async (t) => {
  const corpus = await debianCorpus();
  const work = tempDir("eod-index-kernel-");
  const tar = path.join(work, "rootfs.tar");
  const p = tool("tar", ["--format=pax", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-C", corpus, "-cf", tar, "."]);
  assert.equal(p.status, 0, p.stderr);
  const z = tool("gzip", ["-6", "-k", tar]);
  assert.equal(z.status, 0, z.stderr);
  const r = await buildIndexImage([layerFromFile(`${tar}.gz`, "rootfs")], path.join(work, "img"));
  assert.equal(r.layers[0].compression, "gzip");
  const m = await mountIndex(r, () => tar);
  t.after(() => m.unmount());
  assert.deepEqual(await compareTrees(corpus, m.dir), []);
  m.unmount();
});
