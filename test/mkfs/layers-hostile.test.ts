// Hostile and broken layers: path traversal ("../x", "a/../../x", a hard link to "../"), a write through a
// symlink, an oversized PAX header, truncated gzip and tar, decompression bombs (zstd and gzip). Each must
// fail with a clear message naming the culprit, exit 1, and write nothing: no output, no temporary
// directory, nothing where the traversal pointed. A leading "/" is normalised, not refused. Memory: the
// child's peak RSS is measured while it streams a 1 GiB bomb and a 512 MiB layer of distinct data.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import zlib from "node:zlib";
import { eodOk, REPO } from "../helpers/cli.ts";
import { header, pad, paxHeader, tarArchive, tarEntry, type TarSpec } from "../helpers/tar-layer.ts";

const CLI = path.join(REPO, "bin/eod.mjs");
const RSS_HOOK = path.join(REPO, "test/helpers/max-rss.ts");
const MiB = 1 << 20;

interface Run { status: number | null; stdout: string; stderr: string; maxRssKiB: number }

/** `eod build <args>` in a child whose peak RSS is reported. */
function build(...args: string[]): Run {
  const r = spawnSync(process.execPath, ["--import", RSS_HOOK, CLI, "build", ...args], { encoding: "utf8", timeout: 300_000 });
  const m = /eod-test-maxrss (\d+)\n/.exec(r.stderr);
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.replace(/eod-test-maxrss \d+\n/, ""), maxRssKiB: m ? Number(m[1]) : NaN };
}

function setup(t: { after(fn: () => void): void }): { root: string; out: string } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "eod-hostile-"));
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  const out = path.join(root, "out");
  fs.mkdirSync(out);
  return { root, out };
}

/** Fails cleanly: exit 1, "eod: …" naming `culprit`, no stack, no output and nothing left in `out`. */
function assertRefused(r: Run, out: string, culprit: string | RegExp): void {
  const show = `exit ${r.status}\nstderr: ${r.stderr}`;
  assert.equal(r.status, 1, show);
  assert.match(r.stderr, /^eod: /, show);
  if (typeof culprit === "string") assert.ok(r.stderr.includes(culprit), `stderr does not name ${culprit}\n${show}`);
  else assert.match(r.stderr, culprit, show);
  assert.doesNotMatch(r.stderr, /\n\s+at /, `stack trace\n${show}`);
  assert.deepEqual(fs.readdirSync(out), [], "a failed build leaves nothing in the output's directory");
}

function layerFile(root: string, name: string, specs: TarSpec[], compress?: "gzip" | "zstd"): string {
  const tar = tarArchive(specs);
  const file = path.join(root, name);
  fs.writeFileSync(file, compress === "gzip" ? zlib.gzipSync(tar) : compress === "zstd" ? zlib.zstdCompressSync(tar) : tar);
  return file;
}

for (const [bad, culprit] of [["../x", "../x"], ["a/../../x", "a/../../x"], ["./../../x", "./../../x"]] as const) {
  test(`an entry named ${JSON.stringify(bad)} is refused, naming it`, (t) => {
    const { root, out } = setup(t);
    const layer = layerFile(root, "l.tar", [{ path: "a/", type: "dir" }, { path: bad, data: Buffer.from("escape") }]);
    assertRefused(build(layer, "-o", path.join(out, "img")), out, culprit);
    assert.ok(!fs.existsSync(path.join(root, "x")) && !fs.existsSync(path.join(out, "..", "x")));
  });
}

test("a hard link whose target leaves the root is refused", (t) => {
  const { root, out } = setup(t);
  const layer = layerFile(root, "l.tar", [{ path: "link", type: "link", linkpath: "../../etc/passwd" }]);
  assertRefused(build(layer, "-o", path.join(out, "img")), out, "../../etc/passwd");
});

test("writing through a symlink (evil -> /etc, then evil/passwd) is refused; /etc/passwd untouched", (t) => {
  const { root, out } = setup(t);
  const before = createHash("sha256").update(fs.readFileSync("/etc/passwd")).digest("hex");
  for (const target of ["/etc", "../../../../etc"]) {
    const layer = layerFile(root, "l.tar", [
      { path: "evil", type: "symlink", linkpath: target },
      { path: "evil/passwd", data: Buffer.from("root::0:0::/:/bin/sh\n") },
    ]);
    assertRefused(build(layer, "-o", path.join(out, "img")), out, /"evil\/passwd".*"evil" is a symlink/);
    fs.rmSync(layer);
  }
  // Across layers too: the symlink in layer 1, the write in layer 2.
  const l1 = layerFile(root, "l1.tar", [{ path: "evil", type: "symlink", linkpath: "/etc" }]);
  const l2 = layerFile(root, "l2.tar", [{ path: "evil/passwd", data: Buffer.from("x") }]);
  assertRefused(build(l1, l2, "-o", path.join(out, "img")), out, "evil/passwd");
  assert.equal(createHash("sha256").update(fs.readFileSync("/etc/passwd")).digest("hex"), before);
});

test("a leading / is normalised: /abs/file is abs/file of the image", (t) => {
  const { root, out } = setup(t);
  const layer = layerFile(root, "l.tar", [{ path: "/abs/", type: "dir" }, { path: "/abs/file", data: Buffer.from("inside\n") }, { path: "//abs//other", data: Buffer.from("too\n") }]);
  const img = path.join(out, "img");
  eodOk("build", layer, "-o", img);
  const listing = eodOk("inspect", img);
  assert.match(listing, /\/abs\/file\n/);
  assert.match(listing, /\/abs\/other\n/);
  assert.ok(!fs.existsSync("/abs/file"));
});

test("an oversized PAX header (2 MiB) is refused before its body is read", (t) => {
  const { root, out } = setup(t);
  const big = paxHeader([["comment", Buffer.alloc(2 * MiB, 0x61)]]);
  const tar = Buffer.concat([big, tarEntry({ path: "f", data: Buffer.from("x") }), Buffer.alloc(1024)]);
  const layer = path.join(root, "pax.tar");
  fs.writeFileSync(layer, tar);
  assertRefused(build(layer, "-o", path.join(out, "img")), out, /PAX header of \d+ bytes exceeds the 1048576-byte limit/);
  // Many small extended headers for one entry add up to the same limit.
  const many = Buffer.concat([...Array.from({ length: 3 }, () => paxHeader([["comment", Buffer.alloc(400_000, 0x62)]])), tarEntry({ path: "f" }), Buffer.alloc(1024)]);
  fs.writeFileSync(layer, many);
  assertRefused(build(layer, "-o", path.join(out, "img")), out, /exceeds the 1048576-byte limit/);
});

test("a truncated gzip layer and a truncated tar are refused", (t) => {
  const { root, out } = setup(t);
  const tar = tarArchive([{ path: "f", data: randomBytes(300_000) }]);
  const gz = zlib.gzipSync(tar);
  const layer = path.join(root, "cut.tar.gz");
  fs.writeFileSync(layer, gz.subarray(0, gz.length >> 1));
  assertRefused(build(layer, "-o", path.join(out, "img")), out, /corrupt or truncated gzip stream/);
  fs.writeFileSync(layer, tar.subarray(0, 100_000));
  assertRefused(build(layer, "-o", path.join(out, "img")), out, /truncated: the tar stream ends after \d+ bytes, inside entry "f"/);
  // Cut inside a header block: truncated too.
  fs.writeFileSync(layer, tar.subarray(0, tar.length - 1024 + 100));
  assertRefused(build(layer, "-o", path.join(out, "img")), out, /truncated: the tar stream ends after \d+ bytes, inside a header/);
});

test("a tar without the end-of-archive blocks ends where the next header would start (as docker and containerd read it)", (t) => {
  const { root, out } = setup(t);
  const data = randomBytes(5000);
  const tar = tarArchive([{ path: "f", data }, { path: "d/g", data: Buffer.from("g\n") }]);
  const layer = path.join(root, "no-eof.tar");
  fs.writeFileSync(layer, tar.subarray(0, tar.length - 1024));
  const r = build(layer, "-o", path.join(out, "img"));
  assert.equal(r.status, 0, r.stderr);
  eodOk("check", path.join(out, "img"));
  const listing = eodOk("inspect", path.join(out, "img"));
  assert.match(listing, /\/f\n/);
  assert.match(listing, /\/d\/g\n/);
});

/** Writes a compressed tar holding one `size`-byte file of zeros, streaming (never the whole in memory). */
async function bomb(file: string, size: number, z: zlib.Gzip | zlib.ZstdCompress): Promise<void> {
  async function* tar() {
    yield header({ name: Buffer.from("zeros"), mode: 0o644, uid: 0, gid: 0, size, mtime: 0, typeflag: "0", linkname: Buffer.alloc(0), devMajor: 0, devMinor: 0 });
    const zeros = Buffer.alloc(MiB);
    for (let left = size; left > 0; left -= MiB) yield left >= MiB ? zeros : zeros.subarray(0, left);
    yield Buffer.alloc(pad(size) + 1024);
  }
  await pipeline(tar, z, fs.createWriteStream(file));
}

test("decompression bombs (1 GiB of zeros as zstd, as gzip) are refused early with bounded memory", { timeout: 300_000 }, async (t) => {
  const { root, out } = setup(t);
  const zst = path.join(root, "bomb.tar.zst");
  await bomb(zst, 1024 * MiB, zlib.createZstdCompress());
  const r = build(zst, "-o", path.join(out, "img"));
  assertRefused(r, out, /expands more than 1000 times .*decompression bomb/);
  assert.ok(fs.statSync(zst).size < MiB, `the zstd bomb is ${fs.statSync(zst).size} bytes`);
  t.diagnostic(`zstd bomb ${fs.statSync(zst).size} bytes: refused, peak RSS ${(r.maxRssKiB / 1024).toFixed(0)} MiB`);
  assert.ok(r.maxRssKiB < 200 * 1024, `peak RSS ${r.maxRssKiB} KiB`);

  const gz = path.join(root, "bomb.tar.gz");
  await bomb(gz, 1024 * MiB, zlib.createGzip({ level: 9 }));
  const g = build(gz, "-o", path.join(out, "img"), "--max-ratio", "100");
  assertRefused(g, out, /expands more than 100 times/);
  t.diagnostic(`gzip bomb ${fs.statSync(gz).size} bytes with --max-ratio 100: refused, peak RSS ${(g.maxRssKiB / 1024).toFixed(0)} MiB`);
  assert.ok(g.maxRssKiB < 200 * 1024, `peak RSS ${g.maxRssKiB} KiB`);
});

/** Builds a plain layer holding one file of `size` bytes whose 1 MiB chunks all differ; returns the run. */
async function bigLayer(root: string, out: string, size: number): Promise<Run> {
  const layer = path.join(root, `big-${size}.tar`);
  const base = randomBytes(MiB);
  async function* tar() {
    yield header({ name: Buffer.from("big"), mode: 0o644, uid: 0, gid: 0, size, mtime: 0, typeflag: "0", linkname: Buffer.alloc(0), devMajor: 0, devMinor: 0 });
    for (let i = 0; i < size / MiB; i++) {
      const chunk = Buffer.from(base);
      chunk.writeUInt32LE(i, 0); // every chunk distinct: nothing dedups, everything is stored
      yield chunk;
    }
    yield Buffer.alloc(1024);
  }
  await pipeline(tar, fs.createWriteStream(layer));
  const img = path.join(out, `img-${size}`);
  const r = build(layer, "-o", img, "--compress", "lz4", "--chunk-size", "1M", "--json");
  assert.equal(r.status, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).uniqueChunks, size / MiB);
  fs.rmSync(layer);
  fs.rmSync(img, { recursive: true });
  return r;
}

test("memory does not grow with the layer: 64 MiB and 512 MiB layers of distinct data", { timeout: 600_000 }, async (t) => {
  const { root, out } = setup(t);
  const small = await bigLayer(root, out, 64 * MiB);
  const big = await bigLayer(root, out, 512 * MiB);
  t.diagnostic(`peak RSS: 64 MiB layer ${(small.maxRssKiB / 1024).toFixed(0)} MiB, 512 MiB layer ${(big.maxRssKiB / 1024).toFixed(0)} MiB`);
  assert.ok(big.maxRssKiB < 256 * 1024, `peak RSS ${big.maxRssKiB} KiB for a 512 MiB layer`);
  assert.ok(big.maxRssKiB - small.maxRssKiB < 64 * 1024, "8 times the data (448 MiB more) may cost only a few chunk buffers more");
});
