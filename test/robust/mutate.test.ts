// Mutation robustness: about 1,000 deterministic corruptions (seeded PRNG) of a small but varied image, in
// both forms: one EROFS file (`eod build --single`) and an image directory (bootstrap + chunk table + remote
// blob + manifest.json). Whatever the bytes, every decoder must answer with a report or an EodError, never a
// TypeError/RangeError/Node error, and never hang. In an image directory every byte of the bootstrap, the chunk
// table and the blob is digest-protected, so every effective change must make `checkImage` report not ok.
//
// The mutations run on a worker thread: a mutation that loops forever blocks only the worker, so the watchdog
// on the test's thread still fires, terminates it and fails the test naming the mutation. Failures are grouped
// by cause in the diagnostics; MUTATE_FILTER=<label text> reruns only the matching mutations.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { isDeepStrictEqual } from "node:util";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { buildImage } from "../../src/mkfs/image.ts";
import { buildSingle } from "../../src/mkfs/single.ts";
import { EodError } from "../../src/errors.ts";
import { decodeChunkFormat, EROFS_BLOCK_MAP_ENTRY_SIZE, EROFS_CHUNK_INDEX_SIZE } from "../../src/erofs/chunk.ts";
import {
  EROFS_DEVT_SLOT_SIZE, EROFS_FEATURE_COMPAT_SB_CHKSUM, EROFS_INODE_CHUNK_BASED, EROFS_SUPER_OFFSET, S_IFDIR, S_IFLNK,
  S_IFMT, S_IFREG,
} from "../../src/erofs/constants.ts";
import { inodeSize, xattrIbodySize } from "../../src/erofs/inode.ts";
import { chunkTablePos } from "../../src/erofs/map.ts";
import { bufferSource, ErofsReader, type ByteSource } from "../../src/erofs/reader.ts";
import { EROFS_SB_SIZE, sealSuperBlock } from "../../src/erofs/super.ts";
import { readChunk, remoteBlobSource } from "../../src/image/blob-source.ts";
import { checkImage, type CheckReport } from "../../src/image/check.ts";
import { blobIdOf, CHUNK_TABLE_HEADER_SIZE, decodeChunkTable, type ChunkTable } from "../../src/image/chunk-table.ts";
import { MANIFEST_NAME, parseManifest, type Manifest } from "../../src/image/manifest.ts";
import { unpackImage } from "../../src/image/unpack.ts";
import { setXattr } from "../../src/sys/xattr.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
const SEED = 0x6d757461; // "muta"
/** A single mutation (check + reader + unpack + resealed variants) taking longer than this is a failure. */
const CASE_BUDGET_MS = 2000;
/** No progress from the worker for this long: it is stuck in a loop; terminate it and fail. */
const WATCHDOG_MS = 10_000;

// ---- what the worker reports

type Target = "single" | "bootstrap" | "ctab" | "blob" | "manifest";
const TARGETS: readonly Target[] = ["single", "bootstrap", "ctab", "blob", "manifest"];

interface TargetStats {
  cases: number;
  /** The bytes (for manifest.json: the parsed JSON) differ from the good ones. */
  effective: number;
  checkNotOk: number;
  checkOk: number;
  /** ErofsReader (or the direct decoder of the target) refused with an EodError / walked everything. */
  directRejected: number;
  directPassed: number;
  /** ...and of those that passed, how many saw content different from the good image. */
  directPassedChanged: number;
  /** Image dirs: check after the manifest was re-sealed over the mutated file (digest and size updated). */
  resealedNotOk: number;
  resealedOk: number;
  unpackRejected: number;
  unpackAccepted: number;
  /** Wall time spent on this target's mutations. */
  ms: number;
}

interface Failure {
  /** Groups failures with one cause: error class and the first src/ frame, or the broken expectation. */
  signature: string;
  label: string;
  detail: string;
}

interface WorkerReport {
  stats: Record<Target, TargetStats>;
  failures: Failure[];
  slowest: { label: string; ms: number };
  seconds: number;
}

type WorkerMessage = { kind: "progress"; index: number; total: number; label: string } | { kind: "done"; report: WorkerReport };

interface WorkerInput {
  work: string;
}

// ---- source tree

/** mulberry32: deterministic numbers in [0, 1). */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

function randomBytes(rnd: () => number, n: number): Buffer {
  const out = Buffer.alloc(n);
  for (let i = 0; i < n; i++) out[i] = Math.floor(rnd() * 256);
  return out;
}

/**
 * A small tree with what matters to the decoders: several directory levels and one of 300 entries (several
 * dirent blocks), files around the block size, a 300 KB file half random (stored raw) and half text
 * (compressed), a duplicate (dedup), a sparse 2 MiB file (hole chunks), short and 3000-byte symlinks, a hard
 * link, user.* xattrs, a fifo, an extended inode (uid 100000, sub-second mtime). Deterministic: fixed contents
 * and mtimes, so the layout, and so every mutation, is the same on every run.
 */
function makeTree(root: string): void {
  const rnd = prng(0x7ee5eed);
  const p = (rel: string) => path.join(root, rel);
  fs.mkdirSync(root);
  for (const d of ["a", "a/b", "a/b/c", "big", "sizes", "links", "empty-dir"]) fs.mkdirSync(p(d));
  for (const n of [0, 1, 4095, 4096, 4097, 20000]) fs.writeFileSync(p(`sizes/size-${n}`), randomBytes(rnd, n));
  fs.copyFileSync(p("sizes/size-20000"), p("sizes/copy-20000"));
  const text = Array.from({ length: 20000 }, (_, i) => `line ${i} of the compressible half\n`).join("");
  fs.writeFileSync(p("sizes/mixed-300k"), Buffer.concat([randomBytes(rnd, 150 * KiB), Buffer.from(text).subarray(0, 150 * KiB)]));
  const fd = fs.openSync(p("sizes/sparse-2m"), "w");
  try {
    fs.ftruncateSync(fd, 2 * KiB * KiB);
    fs.writeSync(fd, randomBytes(rnd, 4096), 0, 4096, 0);
    fs.writeSync(fd, randomBytes(rnd, 777), 0, 777, 2 * KiB * KiB - 777);
  } finally {
    fs.closeSync(fd);
  }
  for (let i = 0; i < 300; i++) {
    const name = `big/e${String(i).padStart(3, "0")}-${"n".repeat(i % 40)}`;
    if (i % 50 === 7) {
      fs.mkdirSync(p(name));
      fs.writeFileSync(p(`${name}/inner`), `inner ${i}\n`);
    } else if (i % 37 === 3) {
      fs.symlinkSync(`../sizes/size-${i % 2 ? 1 : 4096}`, p(name));
    } else {
      fs.writeFileSync(p(name), randomBytes(rnd, i % 13));
    }
  }
  fs.writeFileSync(p("a/b/c/deep.txt"), "deep\n");
  fs.symlinkSync("../sizes/size-1", p("links/short"));
  fs.symlinkSync("d/".repeat(1500), p("links/long-3000"));
  fs.linkSync(p("sizes/size-4097"), p("links/hard-4097"));
  execFileSync("mkfifo", [p("links/fifo")]);
  setXattr(p("sizes/size-1"), "user.comment", Buffer.from("one byte"));
  setXattr(p("sizes/size-4096"), "user.empty", Buffer.alloc(0));
  setXattr(p("sizes/size-4096"), "user.blob", randomBytes(rnd, 600));
  setXattr(p("a"), "user.dir", Buffer.from("on a directory"));
  fs.chownSync(p("sizes/size-4095"), 100000, 100000); // needs an extended inode
  // mtimes last, deepest first; a few distinct, one with a fraction (extended inode)
  const all: string[] = [];
  const visit = (rel: string) => {
    for (const e of fs.readdirSync(p(rel), { withFileTypes: true })) {
      const r = path.join(rel, e.name);
      if (e.isDirectory()) visit(r);
      all.push(r);
    }
  };
  visit(".");
  all.push(".");
  all.forEach((rel, i) => fs.lutimesSync(p(rel), 1_700_000_000 + (i % 5), 1_700_000_000 + (i % 5)));
  fs.utimesSync(p("sizes/size-4097"), 1_600_000_000.5, 1_600_000_000.5);
}

// ---- the test (main thread)

if (isMainThread) {
  test("corrupted images give a report or an EodError, never a crash or a hang", { timeout: 120_000 }, async (t) => {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), "eod-mutate-"));
    t.after(() => fs.rmSync(work, { recursive: true, force: true }));
    makeTree(path.join(work, "src"));
    await buildSingle(path.join(work, "src"), path.join(work, "single.erofs"), { chunkSize: 64 * KiB });
    await buildImage(path.join(work, "src"), path.join(work, "img"), { chunkSize: 64 * KiB, compression: "zstd", inlineMax: 1024 });
    unpackImage(path.join(work, "img"), path.join(work, "kernel"));

    const report = await runWorker({ work }, (m) => t.diagnostic(m));
    for (const target of TARGETS) t.diagnostic(formatStats(target, report.stats[target]));
    t.diagnostic(`slowest mutation: ${report.slowest.ms.toFixed(0)} ms (${report.slowest.label}); all took ${report.seconds.toFixed(1)} s`);
    const groups = groupFailures(report.failures);
    for (const g of groups) t.diagnostic(g);
    assert.equal(report.failures.length, 0, `${report.failures.length} failures (details above):\n${groups.map((g) => g.split("\n")[0]).join("\n")}`);
  });
}

function runWorker(input: WorkerInput, log: (m: string) => void): Promise<WorkerReport> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL(import.meta.url), { workerData: input });
    let current = "(setup)";
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        void worker.terminate();
        reject(new Error(`Mutation ${current} made no progress for ${WATCHDOG_MS} ms (an endless loop?)`));
      }, WATCHDOG_MS);
    };
    arm();
    worker.on("message", (m: WorkerMessage) => {
      if (m.kind === "progress") {
        current = `#${m.index} ${m.label}`;
        if (m.index === 0) log(`running ${m.total} mutations`);
        arm();
      } else {
        clearTimeout(timer);
        resolve(m.report);
      }
    });
    worker.on("error", (err) => { clearTimeout(timer); reject(err); });
    worker.on("exit", (code) => { clearTimeout(timer); reject(new Error(`Mutation worker exited with code ${code} during ${current}`)); });
  });
}

function formatStats(target: Target, s: TargetStats): string {
  const parts = [`${target}: ${s.cases} mutations (${s.effective} effective); check: ${s.checkNotOk} not ok, ${s.checkOk} ok`];
  if (target === "single" || target === "bootstrap") parts.push(`reader: ${s.directRejected} rejected, ${s.directPassed} walked (${s.directPassedChanged} with changed content)`);
  else if (target !== "manifest") parts.push(`direct decode: ${s.directRejected} rejected, ${s.directPassed} passed`);
  if (target !== "single") parts.push(`unpack: ${s.unpackRejected} rejected, ${s.unpackAccepted} accepted`);
  if (target !== "single" && target !== "manifest") parts.push(`re-sealed manifest: check ${s.resealedNotOk} not ok, ${s.resealedOk} ok`);
  parts.push(`${(s.ms / 1000).toFixed(1)} s`);
  return parts.join("; ");
}

function groupFailures(failures: readonly Failure[]): string[] {
  const by = new Map<string, Failure[]>();
  for (const f of failures) by.set(f.signature, [...(by.get(f.signature) ?? []), f]);
  return [...by].map(([sig, list]) =>
    `FAIL ×${list.length} ${sig}\n    e.g. ${list.slice(0, 3).map((f) => f.label).join(" | ")}\n    ${list[0].detail.split("\n").join("\n    ")}`);
}

// ---- the worker: mutations

interface Good {
  single: Buffer;
  bootstrap: Buffer;
  ctab: Buffer;
  blob: Buffer;
  manifest: Buffer;
  kernel: Buffer;
  manifestObj: Manifest;
  table: ChunkTable;
  blobId: string;
  singleFingerprint: string;
  imageFingerprint: string;
}

interface Scratch {
  single: string;
  img: string;
  unpacked: string;
  /** The unchanged remote form, for reading chunks through a mutated chunk table. */
  goodBlob: string;
  file: Record<Exclude<Target, "single">, string>;
}

interface Case {
  target: Target;
  label: string;
  make(): Buffer;
  /**
   * The change stays inconsistent after the manifest is re-sealed over it (the bootstrap's device table and
   * the manifest/chunk table disagree), so check must report it even then.
   */
  resealedMustFail?: boolean;
}

/** A non-EodError escaped, or an expectation broke. */
class Failures {
  readonly list: Failure[] = [];
  add(signature: string, label: string, detail: string): void {
    this.list.push({ signature, label, detail });
  }
  crash(label: string, where: string, err: unknown): void {
    const e = err instanceof Error ? err : new Error(String(err));
    const frames = (e.stack ?? "").split("\n").filter((l) => l.includes("/src/"));
    const top = frames[0]?.trim().replace(/^at /, "").replace(/file:\/\/\S*\/src\//, "src/") ?? "(no src frame)";
    const code = (e as NodeJS.ErrnoException).code ? ` ${(e as NodeJS.ErrnoException).code}` : "";
    this.add(`${where} threw ${e.name}${code} at ${top}`, label, `${e.name}: ${e.message}\n${frames.slice(0, 6).map((f) => f.trim()).join("\n")}`);
  }
}

type Guarded<T> = { kind: "value"; value: T } | { kind: "eod"; err: EodError } | { kind: "crash" };

function guard<T>(failures: Failures, label: string, where: string, fn: () => T): Guarded<T> {
  try {
    return { kind: "value", value: fn() };
  } catch (err) {
    if (err instanceof EodError) return { kind: "eod", err };
    failures.crash(label, where, err);
    return { kind: "crash" };
  }
}

// check.ts reports every caught error by message; these are the messages of JS/Node errors, not ours.
const FOREIGN_MESSAGE = /Cannot read properties of|is not a function|is not iterable|is not defined|Invalid (typed )?array length|is out of range|outside the bounds|Maximum call stack|Array buffer allocation failed|\bERR_[A-Z_]+/;

/** Runs checkImage; true when it found the image sound. A foreign error inside a problem is a failure. */
function check(failures: Failures, label: string, where: string, target: string): boolean {
  const r = guard<CheckReport>(failures, label, where, () => checkImage(target));
  if (r.kind !== "value") return false;
  for (const p of r.value.problems) {
    if (FOREIGN_MESSAGE.test(p)) failures.add(`${where} reported a non-EodError: ${p.replace(/[0-9a-f]{64}/g, "<id>").replace(/\d+/g, "N").slice(0, 160)}`, label, p);
  }
  return r.value.ok;
}

/** Walks everything the reader can reach and hashes it; throws whatever the reader throws. */
function walkAll(reader: ErofsReader): string {
  const h = createHash("sha256");
  for (const { path: p, inode } of reader.walk()) {
    h.update(Buffer.concat(p.map((n) => Buffer.concat([Buffer.from(n), Buffer.from("/")]))));
    h.update(`${inode.mode} ${inode.uid} ${inode.gid} ${inode.nlink} ${inode.size} ${JSON.stringify(reader.mtimeOf(inode))}\n`);
    for (const x of reader.xattrs(inode)) h.update(`${x.name}=`).update(x.value);
    const type = inode.mode & S_IFMT;
    if (type === S_IFLNK) h.update(reader.readLink(inode));
    if (type === S_IFREG) {
      reader.chunks(inode);
      // A (mutated) sparse file may be far larger than memory: read small files whole, large ones at both ends.
      if (inode.size <= 64 * MiB) h.update(reader.read(inode, 0, inode.size));
      else h.update(reader.read(inode, 0, MiB)).update(reader.read(inode, inode.size - MiB, MiB));
    }
  }
  return h.digest("hex");
}

function sha256(b: Uint8Array): string {
  return `sha256:${createHash("sha256").update(b).digest("hex")}`;
}

/** Recomputes the superblock checksum of a mutated image when it still claims one, so the mutation reaches past it. */
function resealSuperBlock(b: Buffer): void {
  if (b.length < EROFS_SUPER_OFFSET + EROFS_SB_SIZE) return;
  const bits = b[EROFS_SUPER_OFFSET + 12];
  if (!(b.readUInt32LE(EROFS_SUPER_OFFSET + 8) & EROFS_FEATURE_COMPAT_SB_CHKSUM) || bits < 9 || bits > 12) return;
  const blkSz = 2 ** bits;
  if (b.length < (blkSz > EROFS_SUPER_OFFSET ? blkSz : EROFS_SUPER_OFFSET + blkSz)) return;
  sealSuperBlock(b, blkSz);
}

// -- byte edits

interface Edit {
  label: string;
  apply(b: Buffer): void;
}

/** One random edit at a random byte of [start, end): bit flip, random byte, 0xff/0x00 run, random run or ±n on a le32. */
function randomEdit(rnd: () => number, start: number, end: number): Edit {
  const at = start + Math.floor(rnd() * Math.max(1, end - start));
  const kind = Math.floor(rnd() * 6);
  switch (kind) {
    case 0: {
      const bit = Math.floor(rnd() * 8);
      return { label: `flip bit ${bit} @${at}`, apply: (b) => { if (at < b.length) b[at] ^= 1 << bit; } };
    }
    case 1: {
      const v = Math.floor(rnd() * 256);
      return { label: `byte 0x${v.toString(16)} @${at}`, apply: (b) => { if (at < b.length) b[at] = v; } };
    }
    case 2:
    case 3: {
      const len = 1 + Math.floor(rnd() * 8);
      const v = kind === 2 ? 0xff : 0;
      return { label: `${len}×0x${v.toString(16)} @${at}`, apply: (b) => { b.fill(v, at, Math.min(b.length, at + len)); } };
    }
    case 4: {
      const bytes = randomBytes(rnd, 1 + Math.floor(rnd() * 16));
      return { label: `${bytes.length} random bytes @${at}`, apply: (b) => { bytes.copy(b, at, 0, Math.max(0, Math.min(bytes.length, b.length - at))); } };
    }
    default: {
      const pos = at - (at % 4);
      const delta = [1, -1, 4096, -4096, 0x10000, 0x7fffffff][Math.floor(rnd() * 6)];
      return { label: `le32 ${delta >= 0 ? "+" : ""}${delta} @${pos}`, apply: (b) => { if (pos + 4 <= b.length) b.writeUInt32LE((b.readUInt32LE(pos) + delta) >>> 0, pos); } };
    }
  }
}

function edited(orig: Buffer, edit: Edit, reseal: boolean): () => Buffer {
  return () => {
    const b = Buffer.from(orig);
    edit.apply(b);
    if (reseal) resealSuperBlock(b);
    return b;
  };
}

function truncated(orig: Buffer, len: number): () => Buffer {
  return () => Buffer.from(orig.subarray(0, len));
}

// -- where things are in an EROFS image

interface Region {
  kind: "inode" | "xattrs" | "dir" | "symlink" | "chunk-index" | "data" | "devt";
  what: string;
  start: number;
  end: number;
}

function regionsOf(reader: ErofsReader): Region[] {
  const out: Region[] = [];
  if (reader.sb.extraDevices) {
    const start = reader.sb.devtSlotOff * EROFS_DEVT_SLOT_SIZE;
    out.push({ kind: "devt", what: "device table", start, end: start + reader.sb.extraDevices * EROFS_DEVT_SLOT_SIZE });
  }
  const seen = new Set<number>();
  for (const { path: p, inode } of reader.walk()) {
    if (seen.has(inode.nid)) continue;
    seen.add(inode.nid);
    const what = "/" + p.map((n) => Buffer.from(n).toString()).join("/");
    const xattrsAt = inode.iloc + inodeSize(inode);
    out.push({ kind: "inode", what, start: inode.iloc, end: xattrsAt });
    if (inode.xattrIcount) out.push({ kind: "xattrs", what, start: xattrsAt, end: xattrsAt + xattrIbodySize(inode.xattrIcount) });
    const type = inode.mode & S_IFMT;
    if (inode.dataLayout === EROFS_INODE_CHUNK_BASED) {
      const fmt = decodeChunkFormat(inode.iU, reader.sb.blkSzBits, inode.nid);
      const unit = fmt.indexes ? EROFS_CHUNK_INDEX_SIZE : EROFS_BLOCK_MAP_ENTRY_SIZE;
      const start = chunkTablePos(inode, inode.iloc, unit);
      out.push({ kind: "chunk-index", what, start, end: start + Math.ceil(inode.size / 2 ** fmt.chunkBits) * unit });
    } else if (inode.size > 0 && (type === S_IFDIR || type === S_IFLNK || type === S_IFREG)) {
      const kind = type === S_IFDIR ? "dir" : type === S_IFLNK ? "symlink" : "data";
      for (let la = 0; la < inode.size;) {
        const m = reader.map(inode, la);
        if (m.mapped && m.deviceId === 0) out.push({ kind, what, start: m.pa, end: m.pa + Math.min(m.len, inode.size - la) });
        la += m.len;
      }
    }
  }
  return out;
}

/** Mutations of one EROFS image (the --single file or the bootstrap); `plan` gives how many per region kind. */
function erofsCases(target: Target, orig: Buffer, reader: ErofsReader, rnd: () => number, plan: Record<Region["kind"] | "superblock" | "superblock-raw" | "truncate" | "anywhere", number>): Case[] {
  const cases: Case[] = [];
  const regions = regionsOf(reader);
  const sb = EROFS_SUPER_OFFSET;
  // Every superblock byte once (checksum re-sealed, so the field itself is what gets tested), then raw edits.
  for (let i = 0; i < plan.superblock; i++) {
    const off = i % EROFS_SB_SIZE;
    const e = randomEdit(rnd, sb + off, sb + off + 1);
    cases.push({ target, label: `${target} superblock +${off}: ${e.label} (crc re-sealed)`, make: edited(orig, e, true) });
  }
  for (let i = 0; i < plan["superblock-raw"]; i++) {
    const e = randomEdit(rnd, sb, sb + EROFS_SB_SIZE);
    cases.push({ target, label: `${target} superblock: ${e.label} (crc stale)`, make: edited(orig, e, false) });
  }
  for (const kind of ["inode", "xattrs", "dir", "symlink", "chunk-index", "data", "devt"] as const) {
    const of = regions.filter((r) => r.kind === kind);
    if (plan[kind] && of.length === 0) throw new Error(`The good ${target} has no ${kind} region to mutate`);
    for (let i = 0; i < plan[kind]; i++) {
      const r = of[Math.floor(rnd() * of.length)];
      const e = randomEdit(rnd, r.start, r.end);
      cases.push({ target, label: `${target} ${kind} of ${r.what}: ${e.label}`, make: edited(orig, e, true) });
    }
  }
  for (let i = 0; i < plan.anywhere; i++) {
    const e = randomEdit(rnd, 0, orig.length);
    cases.push({ target, label: `${target} anywhere: ${e.label}`, make: edited(orig, e, true) });
  }
  const lengths = new Set([0, 1, 511, 1023, 1024, 1100, sb + EROFS_SB_SIZE - 1, sb + EROFS_SB_SIZE, 4095, 4096, 4097, orig.length - 1]);
  for (const r of regions) if (lengths.size < plan.truncate / 2) { lengths.add(r.start); lengths.add(r.end - 1); }
  while (lengths.size < plan.truncate) lengths.add(Math.floor(rnd() * orig.length));
  for (const len of [...lengths].filter((l) => l < orig.length)) cases.push({ target, label: `${target} truncated to ${len} bytes`, make: truncated(orig, len) });
  return cases;
}

function binaryCases(target: Target, orig: Buffer, rnd: () => number, spans: Array<{ what: string; start: number; end: number; count: number }>, truncations: number): Case[] {
  const cases: Case[] = [];
  for (const s of spans) {
    for (let i = 0; i < s.count; i++) {
      const e = randomEdit(rnd, s.start, s.end);
      cases.push({ target, label: `${target} ${s.what}: ${e.label}`, make: edited(orig, e, false) });
    }
  }
  const lengths = new Set([0, 1, 63, 64, 65, orig.length - 64, orig.length - 1]);
  while (lengths.size < truncations) lengths.add(Math.floor(rnd() * orig.length));
  for (const len of [...lengths].filter((l) => l >= 0 && l < orig.length)) cases.push({ target, label: `${target} truncated to ${len} bytes`, make: truncated(orig, len) });
  cases.push({ target, label: `${target} with 64 zero bytes appended`, make: () => Buffer.concat([orig, Buffer.alloc(64)]) });
  cases.push({ target, label: `${target} with 1 byte appended`, make: () => Buffer.concat([orig, Buffer.from([1])]) });
  return cases;
}

/** Text-level edits of manifest.json: digests, numbers, paths, JSON syntax, whitespace, plus semantic edits. */
function manifestCases(good: Good, rnd: () => number): Case[] {
  const text = good.manifest.toString("latin1");
  const cases: Case[] = [];
  const positions = (re: RegExp, group = 0) => {
    const out: number[] = [];
    for (const m of text.matchAll(re)) {
      const start = m.index + m[0].indexOf(m[group]);
      for (let i = 0; i < m[group].length; i++) out.push(start + i);
    }
    return out;
  };
  const charEdits = (what: string, at: number[], count: number, pick: (old: string) => string) => {
    for (let i = 0; i < count; i++) {
      const pos = at[Math.floor(rnd() * at.length)];
      const c = pick(text[pos]);
      cases.push({ target: "manifest", label: `manifest ${what}: ${JSON.stringify(text[pos])} -> ${JSON.stringify(c)} @${pos}`, make: () => { const b = Buffer.from(good.manifest); b[pos] = c.charCodeAt(0); return b; } });
    }
  };
  const other = (alphabet: string) => (old: string) => {
    const choices = alphabet.split("").filter((c) => c !== old);
    return choices[Math.floor(rnd() * choices.length)];
  };
  charEdits("digest or id hex", positions(/(?:sha256:|"id": ")([0-9a-f]{64})/g, 1), 14, other("0123456789abcdef"));
  charEdits("number", positions(/: (\d+)/g, 1), 14, other("0123456789"));
  charEdits("path", positions(/"path": "([^"]+)"/g, 1), 10, other("abz0/._-\\\" "));
  charEdits("key", positions(/"(\w+)":/g, 1), 6, other("abcdefghijklmnopqrstuvwxyz"));
  charEdits("syntax", positions(/([{}[\]:,"])/g, 1), 12, other(" x}],:\"{["));
  charEdits("whitespace", positions(/(\s)/g, 1), 5, other(" \t\n\r"));
  for (let i = 0; i < 6; i++) {
    const pos = Math.floor(rnd() * text.length);
    const v = 0x80 + Math.floor(rnd() * 0x80);
    cases.push({ target: "manifest", label: `manifest byte 0x${v.toString(16)} @${pos}`, make: () => { const b = Buffer.from(good.manifest); b[pos] = v; return b; } });
  }
  for (const len of [0, 1, Math.floor(text.length / 2), text.length - 2]) cases.push({ target: "manifest", label: `manifest truncated to ${len} bytes`, make: truncated(good.manifest, len) });
  const semantic: Array<[string, (m: Manifest) => void]> = [
    ["remote.path names a missing file", (m) => { m.blobs[0].remote.path = "blobs/missing"; }],
    ["remote.path names a directory", (m) => { m.blobs[0].remote.path = "blobs"; }],
    ["remote.path holds a NUL", (m) => { m.blobs[0].remote.path = "blobs/\u0000x"; }],
    ["table.path names a directory", (m) => { m.blobs[0].table.path = "blobs"; }],
    ["bootstrap.path names the blob", (m) => { m.bootstrap.path = m.blobs[0].remote.path; }],
    ["remote.path names the chunk table", (m) => { m.blobs[0].remote.path = m.blobs[0].table.path; }],
    ["no blobs", (m) => { m.blobs = []; }],
    ["blob listed twice", (m) => { m.blobs.push(structuredClone(m.blobs[0])); }],
    ["kernelSize + 4096", (m) => { m.blobs[0].kernelSize += 4096; }],
    ["chunks + 1", (m) => { m.blobs[0].chunks += 1; }],
    ["bootstrap.size + 1", (m) => { m.bootstrap.size += 1; }],
    ["schemaVersion 2", (m) => { (m as { schemaVersion: number }).schemaVersion = 2; }],
    ["chunkSize 128K", (m) => { m.chunkSize = 128 * KiB; }],
    ["blockSize 8192", (m) => { m.blockSize = 8192; }],
    ["compression lz4", (m) => { m.compression = "lz4"; }],
    ["compression none", (m) => { m.compression = "none"; }],
  ];
  for (const [what, change] of semantic) {
    cases.push({ target: "manifest", label: `manifest ${what}`, make: () => {
      const m = structuredClone(good.manifestObj);
      change(m);
      return Buffer.from(`${JSON.stringify(m, null, 2)}\n`);
    } });
  }
  return cases;
}

function loadGood(work: string): Good {
  const img = path.join(work, "img");
  const manifest = fs.readFileSync(path.join(img, MANIFEST_NAME));
  const manifestObj = parseManifest(manifest.toString("utf8"), "good manifest");
  if (manifestObj.blobs.length !== 1) throw new Error(`Expected one blob in the good image, got ${manifestObj.blobs.length}`);
  const b = manifestObj.blobs[0];
  const ctab = fs.readFileSync(path.join(img, b.table.path));
  const good: Good = {
    single: fs.readFileSync(path.join(work, "single.erofs")),
    bootstrap: fs.readFileSync(path.join(img, manifestObj.bootstrap.path)),
    ctab,
    blob: fs.readFileSync(path.join(img, b.remote.path)),
    manifest,
    kernel: fs.readFileSync(path.join(work, "kernel", b.id)),
    manifestObj,
    table: decodeChunkTable(ctab, b.id),
    blobId: b.id,
    singleFingerprint: "",
    imageFingerprint: "",
  };
  good.singleFingerprint = walkAll(new ErofsReader(bufferSource(good.single)));
  good.imageFingerprint = walkAll(new ErofsReader(bufferSource(good.bootstrap), [bufferSource(good.kernel)]));
  if (good.singleFingerprint !== good.imageFingerprint) throw new Error("The good single image and image directory hold different trees");
  for (const target of [path.join(work, "single.erofs"), img]) {
    const r = checkImage(target);
    if (!r.ok) throw new Error(`The good image ${target} does not check: ${r.problems.join("; ")}`);
  }
  return good;
}

function allCases(good: Good): Case[] {
  const rnd = prng(SEED);
  const single = erofsCases("single", good.single, new ErofsReader(bufferSource(good.single)), rnd, {
    superblock: EROFS_SB_SIZE, "superblock-raw": 25, inode: 110, xattrs: 30, dir: 70, symlink: 12, "chunk-index": 25, data: 10, devt: 0, anywhere: 20, truncate: 45,
  });
  const bootstrap = erofsCases("bootstrap", good.bootstrap, new ErofsReader(bufferSource(good.bootstrap), [bufferSource(good.kernel)]), rnd, {
    superblock: 40, "superblock-raw": 8, inode: 65, xattrs: 15, dir: 35, symlink: 8, "chunk-index": 55, data: 5, devt: 30, anywhere: 10, truncate: 20,
  });
  const entriesEnd = good.ctab.length;
  const ctab = binaryCases("ctab", good.ctab, rnd, [
    { what: "header", start: 0, end: CHUNK_TABLE_HEADER_SIZE, count: 40 },
    { what: "entries", start: CHUNK_TABLE_HEADER_SIZE, end: entriesEnd, count: 45 },
  ], 10);
  const blob = binaryCases("blob", good.blob, rnd, [{ what: "bytes", start: 0, end: good.blob.length, count: 50 }], 8);
  const fields = [
    ...inodeFieldCases("single", good.single, new ErofsReader(bufferSource(good.single))),
    ...inodeFieldCases("bootstrap", good.bootstrap, new ErofsReader(bufferSource(good.bootstrap))),
  ];
  return [...single, ...bootstrap, ...fields, ...consistencyCases(good), ...ctab, ...blob, ...manifestCases(good, rnd)];
}

/**
 * Extreme values in inode fields, alone and in the combinations a one-field edit cannot reach (a huge chunk
 * size with a huge i_size keeps the chunk table small while the file claims petabytes).
 */
function inodeFieldCases(target: "single" | "bootstrap", orig: Buffer, reader: ErofsReader): Case[] {
  const cases: Case[] = [];
  for (const p of ["/sizes/mixed-300k", "/sizes/sparse-2m", "/sizes/size-4095", "/big", "/links/long-3000"]) {
    const inode = reader.lookup(p);
    const at = inode.iloc;
    const setSize = (b: Buffer, v: bigint) => { if (inode.extended) b.writeBigUInt64LE(v, at + 8); else b.writeUInt32LE(Number(v & 0xffffffffn), at + 8); };
    const maxSize = inode.extended ? 2n ** 53n - 1n : 0xffffffffn;
    const edits: Array<[string, (b: Buffer) => void]> = [
      ["i_size max", (b) => setSize(b, maxSize)],
      ["i_size 0", (b) => setSize(b, 0n)],
      ["i_size + 1 block", (b) => setSize(b, BigInt(inode.size + 4096))],
      ["i_u all ones", (b) => { b.writeUInt32LE(0xffffffff, at + 16); }],
      ["i_u 0", (b) => { b.writeUInt32LE(0, at + 16); }],
      ["chunk bits +31 and i_size max", (b) => { b.writeUInt16LE((b.readUInt16LE(at + 16) & ~0x1f) | 31, at + 16); setSize(b, maxSize); }],
      ["i_xattr_icount 0xffff", (b) => { b.writeUInt16LE(0xffff, at + 2); }],
      ["i_format extended bit toggled", (b) => { b[at] ^= 1; }],
      ["i_mode type swapped (file <-> dir)", (b) => { const m = b.readUInt16LE(at + 4); b.writeUInt16LE((m & S_IFMT) === S_IFDIR ? (m & 0o7777) | S_IFREG : (m & 0o7777) | S_IFDIR, at + 4); }],
    ];
    if (inode.extended) edits.push(["i_size 2^64-1", (b) => { b.writeBigUInt64LE(2n ** 64n - 1n, at + 8); }]);
    for (const [what, edit] of edits) {
      cases.push({ target, label: `${target} inode of ${p}: ${what}`, make: () => { const b = Buffer.from(orig); edit(b); resealSuperBlock(b); return b; } });
    }
  }
  return cases;
}

/** Changes that a re-sealed manifest cannot hide: device slot 1 of the bootstrap must describe the manifest's blob. */
function consistencyCases(good: Good): Case[] {
  const slot = new ErofsReader(bufferSource(good.bootstrap)).sb.devtSlotOff * EROFS_DEVT_SLOT_SIZE;
  const patch = (target: "bootstrap" | "ctab", label: string, edit: (b: Buffer) => void): Case => ({
    target, label: `${target} ${label}`, resealedMustFail: true,
    make: () => { const b = Buffer.from(good[target]); edit(b); if (target === "bootstrap") resealSuperBlock(b); return b; },
  });
  const other = (c: number) => (c === 0x30 ? 0x31 : 0x30); // another hex digit
  return [
    patch("bootstrap", "device 1 tag: first hex digit changed", (b) => { b[slot] = other(b[slot]); }),
    patch("bootstrap", "device 1 tag: last hex digit changed", (b) => { b[slot + 63] = other(b[slot + 63]); }),
    patch("bootstrap", "device 1 blocks + 1", (b) => { b.writeUInt32LE(b.readUInt32LE(slot + 64) + 1, slot + 64); }),
    patch("bootstrap", "device 1 blocks + 2^20", (b) => { b.writeUInt32LE(b.readUInt32LE(slot + 64) + 2 ** 20, slot + 64); }),
    patch("ctab", "kernel size + 4096", (b) => { b.writeBigUInt64LE(b.readBigUInt64LE(24) + 4096n, 24); }),
  ];
}

function emptyStats(): TargetStats {
  return {
    cases: 0, effective: 0, checkNotOk: 0, checkOk: 0, directRejected: 0, directPassed: 0, directPassedChanged: 0,
    resealedNotOk: 0, resealedOk: 0, unpackRejected: 0, unpackAccepted: 0, ms: 0,
  };
}

function sameManifest(a: Buffer, b: Buffer): boolean {
  try {
    return isDeepStrictEqual(JSON.parse(a.toString("utf8")), JSON.parse(b.toString("utf8")));
  } catch {
    return false;
  }
}

function runMutations(input: WorkerInput): WorkerReport {
  const started = performance.now();
  const good = loadGood(input.work);
  const m = path.join(input.work, "m");
  fs.mkdirSync(m);
  const img = path.join(m, "img");
  fs.cpSync(path.join(input.work, "img"), img, { recursive: true });
  const b = good.manifestObj.blobs[0];
  const scratch: Scratch = {
    single: path.join(m, "single.erofs"),
    img,
    unpacked: path.join(m, "unpacked"),
    goodBlob: path.join(input.work, "img", b.remote.path),
    file: {
      bootstrap: path.join(img, good.manifestObj.bootstrap.path),
      ctab: path.join(img, b.table.path),
      blob: path.join(img, b.remote.path),
      manifest: path.join(img, MANIFEST_NAME),
    },
  };
  const stats = Object.fromEntries(TARGETS.map((t) => [t, emptyStats()])) as Record<Target, TargetStats>;
  const failures = new Failures();
  // MUTATE_FILTER=<text> runs only the mutations whose label contains <text> (to reproduce one failure).
  const filter = process.env.MUTATE_FILTER;
  const cases = allCases(good).filter((c) => !filter || c.label.includes(filter));
  let slowest = { label: "", ms: 0 };
  cases.forEach((c, index) => {
    parentPort!.postMessage({ kind: "progress", index, total: cases.length, label: c.label } satisfies WorkerMessage);
    const t0 = performance.now();
    if (c.target === "single") runSingleCase(c, good, scratch, stats.single, failures);
    else runImageCase(c, good, scratch, stats[c.target], failures);
    const ms = performance.now() - t0;
    stats[c.target].ms += ms;
    if (ms > slowest.ms) slowest = { label: c.label, ms };
    if (ms > CASE_BUDGET_MS) failures.add(`a mutation took over ${CASE_BUDGET_MS} ms`, c.label, `${ms.toFixed(0)} ms`);
  });
  return { stats, failures: failures.list, slowest, seconds: (performance.now() - started) / 1000 };
}

function runSingleCase(c: Case, good: Good, scratch: Scratch, s: TargetStats, failures: Failures): void {
  const bytes = c.make();
  s.cases++;
  if (!bytes.equals(good.single)) s.effective++;
  fs.writeFileSync(scratch.single, bytes);
  if (check(failures, c.label, "checkImage(single)", scratch.single)) s.checkOk++;
  else s.checkNotOk++;
  const walked = guard(failures, c.label, "ErofsReader(single)", () => walkAll(new ErofsReader(bufferSource(bytes))));
  countDirect(walked, good.singleFingerprint, s);
}

function countDirect(r: Guarded<string>, goodFingerprint: string, s: TargetStats): void {
  if (r.kind === "value") {
    s.directPassed++;
    if (r.value !== goodFingerprint) s.directPassedChanged++;
  } else if (r.kind === "eod") {
    s.directRejected++;
  }
}

function runImageCase(c: Case, good: Good, scratch: Scratch, s: TargetStats, failures: Failures): void {
  const target = c.target as Exclude<Target, "single">;
  const orig = good[target];
  const bytes = c.make();
  const effective = target === "manifest" ? !sameManifest(orig, bytes) : !bytes.equals(orig);
  s.cases++;
  if (effective) s.effective++;
  const file = scratch.file[target];
  fs.writeFileSync(file, bytes);
  try {
    // (a) check on the mutated directory: every effective change must be found, nothing else may be flagged
    const ok = check(failures, c.label, "checkImage(image dir)", scratch.img);
    if (ok) s.checkOk++;
    else s.checkNotOk++;
    if (effective && ok) failures.add(`checkImage passed an image dir with a changed ${target}`, c.label, "check returned ok: true");
    if (!effective && !ok) failures.add(`checkImage rejected an image dir whose ${target} means the same`, c.label, "check returned ok: false");

    const unpacked = guard(failures, c.label, "unpackImage", () => unpackImage(scratch.img, scratch.unpacked));
    fs.rmSync(scratch.unpacked, { recursive: true, force: true });
    if (unpacked.kind === "value") s.unpackAccepted++;
    else if (unpacked.kind === "eod") s.unpackRejected++;
    if (effective && target !== "manifest" && unpacked.kind === "value") failures.add(`unpackImage accepted an image dir with a changed ${target}`, c.label, "unpack returned");

    // (b) the decoders on the mutated bytes directly, past the manifest's digests
    direct(c, target, bytes, good, scratch, s, failures);

    // (c) the same bytes with the manifest re-sealed over them: check must still answer with a report
    if (target !== "manifest") {
      const m = resealedManifest(target, bytes, good);
      fs.writeFileSync(scratch.file.manifest, m);
      const resealedOk = check(failures, c.label, "checkImage(re-sealed image dir)", scratch.img);
      if (resealedOk) s.resealedOk++;
      else s.resealedNotOk++;
      if (c.resealedMustFail && resealedOk) failures.add("checkImage passed a bootstrap device table that disagrees with the manifest", c.label, "check returned ok: true");
      guard(failures, c.label, "unpackImage(re-sealed)", () => unpackImage(scratch.img, scratch.unpacked));
      fs.rmSync(scratch.unpacked, { recursive: true, force: true });
    }
  } finally {
    fs.writeFileSync(file, orig);
    fs.writeFileSync(scratch.file.manifest, good.manifest);
  }
}

function direct(c: Case, target: Exclude<Target, "single">, bytes: Buffer, good: Good, scratch: Scratch, s: TargetStats, failures: Failures): void {
  if (target === "bootstrap") {
    const r = guard(failures, c.label, "ErofsReader(bootstrap)", () => walkAll(new ErofsReader(bufferSource(bytes), [bufferSource(good.kernel)])));
    countDirect(r, good.imageFingerprint, s);
  } else if (target === "manifest") {
    guard(failures, c.label, "parseManifest", () => parseManifest(bytes.toString("utf8"), "mutated manifest"));
  } else if (target === "ctab") {
    const r = guard(failures, c.label, "decodeChunkTable", () => decodeChunkTable(bytes, good.blobId));
    if (r.kind !== "value") { if (r.kind === "eod") s.directRejected++; return; }
    const fd = fs.openSync(scratch.goodBlob, "r");
    try {
      let rejected = false;
      for (let i = 0; i < r.value.entries.length; i++) {
        if (guard(failures, c.label, "readChunk(mutated table)", () => readChunk(fd, r.value, i, good.blobId)).kind !== "value") rejected = true;
      }
      if (rejected) s.directRejected++;
      else s.directPassed++;
    } finally {
      fs.closeSync(fd);
    }
  } else {
    // blob: the good bootstrap reading every file through the mutated remote form
    let src: (ByteSource & { close(): void }) | undefined;
    const r = guard(failures, c.label, "ErofsReader(remote blob)", () => {
      src = remoteBlobSource(scratch.file.blob, good.table, good.blobId);
      return walkAll(new ErofsReader(bufferSource(good.bootstrap), [src]));
    });
    src?.close();
    countDirect(r, good.imageFingerprint, s);
  }
}

/** manifest.json naming the mutated file with its new digest and size (and, for a decodable chunk table, its id and sizes). */
function resealedManifest(target: "bootstrap" | "ctab" | "blob", bytes: Buffer, good: Good): string {
  const m = structuredClone(good.manifestObj);
  const b = m.blobs[0];
  const ref = target === "bootstrap" ? m.bootstrap : target === "ctab" ? b.table : b.remote;
  ref.digest = sha256(bytes);
  ref.size = bytes.length;
  if (target === "bootstrap") delete m.bootstrapZstd; // the optional wire form would no longer match: drop it
  if (target === "ctab") {
    try {
      const t = decodeChunkTable(bytes, good.blobId);
      b.id = blobIdOf(t);
      b.kernelSize = t.kernelSize;
      b.chunks = t.entries.length;
    } catch {
      // an undecodable table keeps the old id; direct() has already judged the error
    }
  }
  return `${JSON.stringify(m, null, 2)}\n`;
}

// Last, so that every class and constant above is initialised when the worker starts.
if (!isMainThread) parentPort!.postMessage({ kind: "done", report: runMutations(workerData as WorkerInput) } satisfies WorkerMessage);
