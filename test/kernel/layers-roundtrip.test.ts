// Images built from layers (`eod build <layer>... -o`) mount with the real kernel identical to the layers
// extracted in order by GNU tar with whiteouts applied (test/helpers/overlay-extract.ts); `eod check` and
// fsck.erofs accept them. The three layers (tar.gz, tar.zst, tar) exercise whiteouts of files, directories
// and one name of a hard link, an opaque directory, hard links, binary xattrs, PAX and GNU long names and
// link targets, nanosecond PAX times, devices, a file replaced by a directory, and cross-layer dedup.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import { compareTrees } from "../helpers/compare-trees.ts";
import { eodOk, haveTool, tool } from "../helpers/cli.ts";
import { haveRoot, mountErofs, tempDir } from "../helpers/kernel.ts";
import { cleanup, eodAsync, serve } from "../helpers/lazy.ts";
import { extractLayers } from "../helpers/overlay-extract.ts";
import { kernelSupportsPreContent } from "../../src/sys/fanotify.ts";
import { tarArchive, type TarSpec } from "../helpers/tar-layer.ts";
import { unavailable } from "../helpers/skip.ts";
import { debianCorpus } from "../../bench/corpus.ts";

const skip = unavailable(!haveRoot() ? "needs root to mount" : !haveTool("fsck.erofs") ? "needs fsck.erofs (erofs-utils)" : !haveTool("zstd") ? "needs zstd for GNU tar" : false);
let work = "";

let built: { img: string; expected: string } | null = null;

before(() => { if (!skip) work = tempDir("eod-layers-"); });
after(() => {
  if (!work) return;
  cleanup(work, path.join(work, "cache"));
  fs.rmSync(work, { recursive: true, force: true });
});

const MiB = 1 << 20;
const T = "1700000000";
// vfs_cap_data rev 2, effective; permitted CAP_SETGID|CAP_SETUID|CAP_SETFCAP: bytes 0xc0 and 0x80 (not UTF-8).
const CAPS = Buffer.from("01000002c000008000000000000000000000000000000000".slice(0, 40), "hex");
const dir = (p: string, extra: Partial<TarSpec> = {}): TarSpec => ({ path: p, type: "dir", ...extra });
const file = (p: string, data: Buffer | string, extra: Partial<TarSpec> = {}): TarSpec => ({ path: p, data: Buffer.from(data), ...extra });

function layers(): { specs: TarSpec[][]; bigData: Buffer; cacheNew: Buffer; fresh: Buffer } {
  const bigData = randomBytes(3 * MiB + 12345);
  const sparse = Buffer.concat([Buffer.alloc(MiB), randomBytes(100_000)]);
  const cacheNew = randomBytes(10_000);
  const fresh = randomBytes(200_000);
  const longDir = `d${"x".repeat(119)}`;
  const longFile = `f${"y".repeat(149)}`;
  const gnuName = `g${"z".repeat(189)}`;
  const longTarget = `target/${"t".repeat(150)}`;
  const l1: TarSpec[] = [
    dir("./", { mtime: `${T}.5` }),
    dir("etc/", { mtime: `${T}.000000001` }),
    file("etc/hosts", "127.0.0.1 localhost\n"),
    file("etc/passwd", "root:x:0:0::/root:/bin/sh\n", { mtime: `${T}.999999999` }),
    dir("usr/"), dir("usr/bin/"),
    file("usr/bin/tool", bigData, { mode: 0o755, mtime: `${T}.123456789`, xattrs: { "security.capability": CAPS, "user.bin": Buffer.from([0xff, 0x00, 0xfe, 0x80]), "user.comment": "a tool" } }),
    { path: "usr/bin/tool-link", type: "link", linkpath: "usr/bin/tool" },
    dir("var/"), dir("var/cache/", { mode: 0o700, uid: 1000, gid: 1000 }),
    file("var/cache/a", "a"), file("var/cache/b", randomBytes(5000)), dir("var/cache/sub/"), file("var/cache/sub/c", "c"),
    dir("opt/"), dir("opt/old/"), file("opt/old/file", randomBytes(6000)),
    dir("data/"), file("data/zeros", Buffer.alloc(2 * MiB)), file("data/sparse", sparse, { uid: 70000, gid: 70001 }),
    { path: "lib", type: "symlink", linkpath: "usr/lib", mtime: `${T}.25` },
    dir("deep/"), dir(`deep/${longDir}/`), file(`deep/${longDir}/${longFile}`, "pax long name\n", { mtime: `${T}.333333333` }),
    dir("gnu/"), file(`gnu/${gnuName}`, "gnu long name\n", { long: "gnu" }),
    { path: "gnu-link", type: "symlink", linkpath: longTarget, long: "gnu" },
    { path: "pax-link", type: "symlink", linkpath: longTarget },
    dir("dev/"), { path: "dev/null", type: "chardev", mode: 0o666, devMajor: 1, devMinor: 3 },
    { path: "dev/loop200", type: "blockdev", mode: 0o660, devMajor: 7, devMinor: 200 },
    dir("run/"), { path: "run/fifo", type: "fifo", mode: 0o600 },
  ];
  const l2: TarSpec[] = [
    dir("./", { mtime: `${T}.5` }),
    dir("etc/", { mtime: `${T}.2` }),
    file("etc/.wh.passwd", ""),
    file("etc/hosts", "10.0.0.1 other\n", { mtime: `${T}.7`, xattrs: { "trusted.overlay-ish": "x", "user.y": "why" } }),
    { path: "etc/hosts.bak", type: "link", linkpath: "/etc/hosts" }, // leading "/" is normalised
    dir("opt/", { mtime: `${T}.3` }), file("opt/.wh.old", ""),
    dir("var/"), dir("var/cache/", { mode: 0o755, mtime: `${T}.4` }),
    file("var/cache/new", cacheNew), // before the marker: same-layer entries survive it whatever the order
    file("var/cache/.wh..wh..opq", ""),
    dir("usr/"), dir("usr/bin/"),
    file("usr/bin/tool2", bigData, { mode: 0o755 }), // identical to layer 1's tool: no chunk stored again
    dir("data/"), dir("data/zeros/"), file("data/zeros/inner", "now a directory\n"),
    dir("lib/"), file("lib/x", "x\n"),
  ];
  const l3: TarSpec[] = [
    dir("./", { mtime: `${T}.5` }),
    dir("usr/"), dir("usr/bin/", { mtime: `${T}.6` }), file("usr/bin/.wh.tool-link", ""),
    dir("opt/", { mtime: `${T}.8` }), dir("opt/old/"), file("opt/old/fresh", fresh),
  ];
  return { specs: [l1, l2, l3], bigData, cacheNew, fresh };
}

function distinctChunks(datas: Buffer[], chunk: number): number {
  const seen = new Set<string>();
  for (const d of datas) {
    for (let at = 0; at < d.length; at += chunk) {
      const c = d.subarray(at, at + chunk);
      if (c.every((b) => b === 0)) continue;
      seen.add(createHash("sha256").update(c).digest("hex"));
    }
  }
  return seen.size;
}

test("three layers (gz, zst, tar) mount identical to the layers extracted in order with whiteouts", { skip, timeout: 300_000 }, async () => {
  const { specs, bigData, cacheNew, fresh } = layers();
  const files = [path.join(work, "l1.tar.gz"), path.join(work, "l2.tar.zst"), path.join(work, "l3.tar")];
  fs.writeFileSync(files[0], zlib.gzipSync(tarArchive(specs[0])));
  fs.writeFileSync(files[1], zlib.zstdCompressSync(tarArchive(specs[1])));
  fs.writeFileSync(files[2], tarArchive(specs[2]));
  const expected = path.join(work, "expected");
  extractLayers(files, expected, work);

  const img = path.join(work, "img");
  const summary = JSON.parse(eodOk("build", ...files, "-o", img, "--json"));
  assert.match(eodOk("check", img), /OK/);
  const manifest = JSON.parse(fs.readFileSync(path.join(img, "manifest.json"), "utf8"));
  assert.equal(manifest.blobs.length, 3, "one blob per layer that adds data");
  assert.deepEqual(summary.layers.map((l: { compression: string }) => l.compression), ["gzip", "zstd", "none"]);
  // Every distinct non-zero chunk is stored once, across layers (tool2 in layer 2 repeats layer 1's tool).
  const big = [bigData, Buffer.concat([Buffer.alloc(MiB), Buffer.alloc(0)])];
  const sparseData = specs[0].find((s) => s.path === "data/sparse")!.data!;
  const b5000 = specs[0].find((s) => s.path === "var/cache/b")!.data!;
  const opt = specs[0].find((s) => s.path === "opt/old/file")!.data!;
  assert.equal(summary.uniqueChunks, distinctChunks([...big, sparseData, b5000, opt, cacheNew, bigData, fresh], manifest.chunkSize));
  assert.equal(manifest.blobs[1].chunks, 1, "layer 2 stores only var/cache/new");

  const line = eodOk("unpack", img, "--blobs-to", `${img}-blobs`).trim();
  const [bootstrap, data = ""] = line.split(" ");
  const devices = data.split(",").map((d) => d.slice("device=".length));
  const fsck = tool("fsck.erofs", [...devices.map((d) => `--device=${d}`), "--extract", bootstrap]);
  assert.equal(fsck.status, 0, `fsck.erofs failed:\n${fsck.stderr}${fsck.stdout}`);

  const m = await mountErofs(bootstrap, data);
  try {
    assert.deepEqual(await compareTrees(expected, m.dir), []);
    // Spot checks of what the comparison covers, so a broken reference extraction cannot hide a bug.
    assert.ok(!fs.existsSync(path.join(m.dir, "etc/passwd")));
    assert.deepEqual(fs.readdirSync(path.join(m.dir, "var/cache")), ["new"]);
    assert.equal(fs.statSync(path.join(m.dir, "usr/bin/tool")).nlink, 1);
    assert.equal(fs.statSync(path.join(m.dir, "etc/hosts")).nlink, 2);
    assert.deepEqual(fs.readdirSync(path.join(m.dir, "opt/old")), ["fresh"]);
    assert.equal(fs.lstatSync(path.join(m.dir, "usr/bin/tool"), { bigint: true }).mtimeNs, 1700000000123456789n);
  } finally {
    m.unmount();
  }
  built = { img, expected };
});

const lazySkip = unavailable(skip || (kernelSupportsPreContent().ok ? false : "kernel lacks fanotify pre-content events"));

test("the layered image mounts lazily (eod serve + eod mount) identical to the extracted layers", { skip: lazySkip, timeout: 300_000 }, async () => {
  assert.ok(built, "needs the image of the previous test");
  const server = await serve(built.img);
  const cache = path.join(work, "cache");
  const mnt = path.join(work, "mnt");
  fs.mkdirSync(mnt);
  try {
    const r = await eodAsync(["mount", server.url, mnt, "--cache-dir", cache]);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(await compareTrees(built.expected, mnt, { ignoreRootAttrs: true }), []);
    const u = await eodAsync(["umount", mnt, "--cache-dir", cache]);
    assert.equal(u.status, 0, u.stderr);
  } finally {
    cleanup(work, cache);
    server.stop();
  }
});

// A real tree: the benchmark's Debian rootfs (bench/corpus.ts: built with debootstrap when it is missing, as
// test/containerd/python3 does), packed by GNU tar as a pax tar.gz with xattrs, must mount identical to the
// directory it came from.
test("the Debian rootfs as one GNU tar pax layer (tar.gz) mounts identical to its directory", { skip, timeout: 900_000 }, async () => {
  const CORPUS = await debianCorpus();
  const layer = path.join(work, "rootfs.tar.gz");
  const r = tool("tar", ["--format=pax", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-C", CORPUS, "-czf", layer, "."]);
  assert.equal(r.status, 0, r.stderr);
  const img = path.join(work, "rootfs-img");
  eodOk("build", layer, "-o", img);
  const line = eodOk("unpack", img, "--blobs-to", `${img}-blobs`).trim();
  const [bootstrap, data = ""] = line.split(" ");
  const m = await mountErofs(bootstrap, data);
  try {
    assert.deepEqual(await compareTrees(CORPUS, m.dir), []);
  } finally {
    m.unmount();
  }
});
