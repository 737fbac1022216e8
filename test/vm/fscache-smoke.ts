// Runs INSIDE the kernel-lab VM (test/kernel/fscache-smoke.test.ts starts it through runInVm): a minimal
// cachefiles on-demand daemon serving one image from local files, exercising the primitives the fscache
// frontend is built from (src/sys/cachefiles.ts, src/frontend/fscache/protocol.ts,
// src/cache/direct-write.ts) against a real 6.12 kernel. Not a *.test.ts: the host's test runner must not
// pick it up.
//
//   node test/vm/fscache-smoke.ts <image-dir> <blobs-dir> [--no-probes]
//
// <image-dir> is an `eod build -o` output, <blobs-dir> its `eod unpack --blobs-to` output (kernel form
// of each blob, named by id). The daemon binds /dev/cachefiles on /var/cache/fscache (ext4: cachefiles
// refuses tmpfs), then:
//   cold   mount fsid=<bootstrap digest>,device=<blob id>…; OPENs answered with the file sizes, READs
//          served from the bootstrap / kernel-form files; every file read and hashed; umount.
//   warm   the same mount again in the same VM: the cache files persist, so no READ is expected.
//   probes (unless --no-probes) what the kernel does with unaligned anon-fd writes and a bogus
//          READ_COMPLETE id (on the first READ, before serving it), then one round each: umount while the
//          device is not read ("umount-unread"), copen -ENOENT for an extra device and for the primary
//          blob ("unknown-device", "unknown-fsid"), a copen size that differs from the cached one with
//          READs completed without data ("size-mismatch"), and the first size again ("size-restored").
// It prints one JSON object (SmokeReport) on stdout; progress goes to stderr.
import crypto from "node:crypto";
import fs from "node:fs";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { SysError } from "../../src/errors.ts";
import { CachefilesParseError, encodeCopen, parseMessage, volumeKeyOf, type CachefilesMsg } from "../../src/frontend/fscache/protocol.ts";
import {
  alignedBuffer,
  CACHEFILES_MSG_MAX_SIZE,
  CACHEFILES_OP_OPEN,
  cachefilesCommand,
  cachefilesRead,
  cachefilesReadComplete,
  openCachefiles,
} from "../../src/sys/cachefiles.ts";
import { writeDirect } from "../../src/cache/direct-write.ts";
import { pollReadable, type PollHandle } from "../../src/sys/poll.ts";
import { lastErrno, libc, sysError } from "../../src/sys/libc.ts";
import { MS_RDONLY, mountAsync } from "../../src/sys/mount.ts";
import { getXattr } from "../../src/sys/xattr.ts";

const PAGE = 4096;
const CACHE_DIR = process.env.RUNVM_SCRATCH ?? "/var/cache/fscache";
const TAG = "eodsmoke";
const WATCHDOG_MS = Number(process.env.SMOKE_WATCHDOG_MS ?? 500_000);

export interface OpenSeen { msgId: number; objectId: number; volumeKey: string; cookieKey: string; fd: number; flags: number; copen: number; ms: number }
export interface ReadSeen { msgId: number; objectId: number; key: string; offset: number; length: number; ms: number; how: "served" | "failed" | "probe-fail"; error?: string }
export interface RoundReport {
  name: string;
  mountData: string;
  mountError?: string;
  mountMs: number;
  walkMs: number;
  umountMs: number;
  opens: OpenSeen[];
  reads: ReadSeen[];
  closes: number[];
  /** sha256 of every regular file, by path relative to the mount. */
  files: Record<string, string>;
  dirs: string[];
  /** Files whose read failed: errno name. */
  readErrors: Record<string, string>;
  /** The files of readErrors read once more after the walk: sha256, or the errno name. */
  retried: Record<string, string>;
  parseErrors: string[];
  /** With RoundOptions.pausedUmountMs: whether umount2 "returned" while nobody read the device, or stayed "blocked". */
  umountWhilePaused?: string;
  /** Objects without a CLOSE some seconds after the umount (or the failed mount). */
  leftOpen?: number[];
}
export interface SmokeReport {
  kernel: string;
  fsid: string;
  blobs: { id: string; size: number }[];
  bootstrapSize: number;
  setup: { secondOpen: string; rebind: string };
  rounds: RoundReport[];
  probes: Record<string, unknown>;
  /** Files under <cache dir>/cache after the last umount; xattr: user.CacheFiles.cache in hex, or the errno. */
  cacheFiles: { path: string; size: number; allocated: number; xattr: string }[];
  totalMs: number;
}

interface Source { key: string; fd: number; size: number }
/** `reads`: READs of the object still being served; its fd stays open until they are done. */
interface Obj { objectId: number; fd: number; key: string; reads: Set<Promise<void>> }

/** Per-READ behaviour, for probes: serve it, or complete it without writing (the reader gets EIO). */
type ReadPolicy = (msg: CachefilesMsg, obj: Obj) => "serve" | "fail";

class SmokeDaemon {
  readonly dev: number;
  readonly objects = new Map<number, Obj>();
  round!: RoundReport;
  readPolicy: ReadPolicy = () => "serve";
  sizeOverride = new Map<string, number>();
  /** Called once on the first READ with its object, before it is served (probes of the write path). */
  firstReadHook: ((obj: Obj, offset: number) => void) | null = null;
  /** Hex of the first message of each opcode, as read from the device (golden bytes). */
  readonly raw: Record<string, string> = {};
  private readonly buf = Buffer.alloc(CACHEFILES_MSG_MAX_SIZE);
  private poll: PollHandle | null;
  private waiters: (() => void)[] = [];

  private readonly sources: Map<string, Source>;
  private readonly volumeKey: string;

  constructor(sources: Map<string, Source>, volumeKey: string) {
    this.sources = sources;
    this.volumeKey = volumeKey;
    this.dev = openCachefiles();
    cachefilesCommand(this.dev, `dir ${CACHE_DIR}`);
    cachefilesCommand(this.dev, `tag ${TAG}`);
    cachefilesCommand(this.dev, "bind ondemand");
    this.poll = null;
    this.resume();
  }

  /** Stops reading messages (they queue up in the kernel) until resume(). */
  pause(): void {
    this.poll?.stop();
    this.poll = null;
  }

  resume(): void {
    this.poll ??= pollReadable(this.dev, () => this.drain(), (err) => log(`poll error: ${String(err)}`));
  }

  private drain(): void {
    for (;;) {
      const n = cachefilesRead(this.dev, this.buf);
      if (n === 0) break;
      let msg: CachefilesMsg;
      try {
        msg = parseMessage(this.buf, n);
      } catch (err) {
        this.round.parseErrors.push(String(err));
        if (err instanceof CachefilesParseError) {
          if (err.opcode === CACHEFILES_OP_OPEN && err.msgId !== null) tryCommand(this.dev, encodeCopen(err.msgId, -os.constants.errno.EINVAL));
          if (err.fd !== null) fs.closeSync(err.fd);
        }
        continue;
      }
      this.raw[msg.opcode] ??= this.buf.subarray(0, n).toString("hex");
      if (msg.opcode === "open") this.onOpen(msg);
      else if (msg.opcode === "read") this.onRead(msg);
      else this.onClose(msg);
    }
    if (this.objects.size === 0) for (const w of this.waiters.splice(0)) w();
  }

  private onOpen(msg: CachefilesMsg): void {
    const t0 = performance.now();
    const o = msg.open!;
    const src = o.volumeKey === this.volumeKey ? this.sources.get(o.cookieKey) : undefined;
    const size = src ? (this.sizeOverride.get(src.key) ?? src.size) : -os.constants.errno.ENOENT;
    cachefilesCommand(this.dev, encodeCopen(msg.msgId, size));
    if (src) this.objects.set(msg.objectId, { objectId: msg.objectId, fd: o.fd, key: o.cookieKey, reads: new Set() });
    else fs.closeSync(o.fd); // after copen: closing first fails the OPEN with EBADFD instead
    this.round.opens.push({ msgId: msg.msgId, objectId: msg.objectId, ...o, copen: size, ms: performance.now() - t0 });
  }

  // The write runs on the thread pool (writeDirect) while this thread goes on reading the device, as the
  // fscache frontend does; the probe hook and the read policy still run in message order, before any await.
  private onRead(msg: CachefilesMsg): void {
    const t0 = performance.now();
    const { offset, length } = msg.read!;
    const obj = this.objects.get(msg.objectId);
    const seen: ReadSeen = { msgId: msg.msgId, objectId: msg.objectId, key: obj?.key ?? "?", offset, length, ms: 0, how: "served" };
    this.round.reads.push(seen);
    if (!obj) {
      seen.how = "failed";
      seen.error = "READ for an object never opened";
      return;
    }
    const served: Promise<void> = this.serve(msg, obj, seen).catch((err: unknown) => {
      seen.how = "failed";
      seen.error = String(err);
    }).finally(() => {
      try {
        cachefilesReadComplete(obj.fd, msg.msgId); // also after a failure: the reader gets EIO, not a hang
      } catch (err) {
        seen.error = `${seen.error ?? ""} READ_COMPLETE: ${String(err)}`;
      }
      seen.ms = performance.now() - t0;
      obj.reads.delete(served);
    });
    obj.reads.add(served);
  }

  private async serve(msg: CachefilesMsg, obj: Obj, seen: ReadSeen): Promise<void> {
    const { offset, length } = msg.read!;
    if (this.firstReadHook) {
      const hook = this.firstReadHook;
      this.firstReadHook = null;
      hook(obj, offset);
    }
    if (this.readPolicy(msg, obj) === "fail") {
      seen.how = "probe-fail";
      return;
    }
    const src = this.sources.get(obj.key)!;
    // Round out to whole pages; bytes past the end of the file are zeros (writeDirect pads).
    const start = Math.floor(offset / PAGE) * PAGE;
    const end = Math.min(Math.ceil((offset + length) / PAGE) * PAGE, Math.ceil(src.size / PAGE) * PAGE);
    const data = Buffer.alloc(Math.max(0, end - start));
    for (let got = 0; got < data.length; ) {
      const r = fs.readSync(src.fd, data, got, data.length - got, start + got);
      if (r === 0) break;
      got += r;
    }
    await writeDirect(obj.fd, data, start);
  }

  private onClose(msg: CachefilesMsg): void {
    this.round.closes.push(msg.objectId);
    const obj = this.objects.get(msg.objectId);
    if (obj) {
      this.objects.delete(msg.objectId);
      if (obj.reads.size === 0) fs.closeSync(obj.fd);
      else void Promise.allSettled(obj.reads).then(() => fs.closeSync(obj.fd)).catch((err: unknown) => log(`close: ${String(err)}`)); // READ_COMPLETE needs the fd
    }
  }

  /** Resolves once every object got its CLOSE (after a umount), or after `ms`. */
  allClosed(ms: number): Promise<boolean> {
    if (this.objects.size === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(false), ms);
      this.waiters.push(() => {
        clearTimeout(t);
        resolve(true);
      });
    });
  }

  close(): void {
    this.pause();
    for (const obj of this.objects.values()) fs.closeSync(obj.fd);
    this.objects.clear();
    fs.closeSync(this.dev);
  }
}

function newRound(name: string, mountData: string): RoundReport {
  return { name, mountData, mountMs: 0, walkMs: 0, umountMs: 0, opens: [], reads: [], closes: [], files: {}, dirs: [], readErrors: {}, retried: {}, parseErrors: [] };
}

/** Mounts, hashes every file (async: the reads are served by this same thread), unmounts, waits for CLOSEs. */
interface RoundOptions {
  /** Runs between the walk and the second read of the files that failed. */
  afterWalk?: () => void;
  /** Stop reading the device while unmounting, for this many ms: does umount wait for the CLOSEs to be read? */
  pausedUmountMs?: number;
}

async function runRound(d: SmokeDaemon, name: string, mountData: string, mnt: string, opts: RoundOptions = {}): Promise<RoundReport> {
  const round = newRound(name, mountData);
  d.round = round;
  log(`${name}: mount ${mountData}`);
  let t = performance.now();
  try {
    await mountAsync("none", mnt, "erofs", MS_RDONLY, mountData);
  } catch (err) {
    round.mountMs = performance.now() - t;
    round.mountError = err instanceof SysError ? err.errno : String(err);
    if (!(await d.allClosed(5_000))) round.leftOpen = [...d.objects.keys()];
    log(`${name}: mount failed: ${round.mountError}; ${round.opens.length} OPEN, ${round.closes.length} CLOSE`);
    return round;
  }
  round.mountMs = performance.now() - t;
  t = performance.now();
  await walk(mnt, "", round);
  round.walkMs = performance.now() - t;
  opts.afterWalk?.();
  for (const r of Object.keys(round.readErrors)) {
    // A failed READ leaves a hole: reading again must ask the daemon again.
    try {
      round.retried[r] = crypto.createHash("sha256").update(await fsp.readFile(path.join(mnt, r))).digest("hex");
    } catch (err) {
      round.retried[r] = (err as NodeJS.ErrnoException).code ?? String(err);
    }
  }
  t = performance.now();
  if (opts.pausedUmountMs !== undefined) {
    d.pause();
    const done = umountAsync(mnt).then(() => "returned");
    const timer = new Promise<string>((resolve) => setTimeout(() => resolve("blocked"), opts.pausedUmountMs));
    round.umountWhilePaused = await Promise.race([done, timer]);
    d.resume();
    await done;
  } else {
    // On 6.12 umount2 returns before the CLOSEs are read (round "umount-unread"); it runs on a worker
    // thread anyway, so that a kernel that does wait cannot deadlock this thread, which reads them.
    await umountAsync(mnt);
  }
  round.umountMs = performance.now() - t;
  if (!(await d.allClosed(20_000))) round.leftOpen = [...d.objects.keys()];
  log(`${name}: ${round.opens.length} OPEN, ${round.reads.length} READ, ${round.closes.length} CLOSE; mount ${round.mountMs.toFixed(0)} ms, walk ${round.walkMs.toFixed(0)} ms`);
  return round;
}

async function walk(root: string, rel: string, round: RoundReport): Promise<void> {
  round.dirs.push(rel === "" ? "." : rel);
  const entries = await fsp.readdir(path.join(root, rel), { withFileTypes: true });
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    const r = rel === "" ? e.name : `${rel}/${e.name}`;
    if (e.isDirectory()) await walk(root, r, round);
    else if (e.isFile()) {
      try {
        round.files[r] = crypto.createHash("sha256").update(await fsp.readFile(path.join(root, r))).digest("hex");
      } catch (err) {
        round.readErrors[r] = (err as NodeJS.ErrnoException).code ?? String(err);
      }
    }
  }
}

function umountAsync(target: string): Promise<void> {
  return new Promise((resolve, reject) => {
    libc().umount2.async(target, 0, (err, rc) => {
      if (err) return reject(err);
      if (rc === -1) return reject(sysError("umount2", lastErrno(), target));
      resolve();
    });
  });
}

function tryCommand(dev: number, cmd: string): string {
  try {
    cachefilesCommand(dev, cmd);
    return "ok";
  } catch (err) {
    return err instanceof SysError ? err.errno : String(err);
  }
}

function errnoOf(fn: () => unknown): string {
  try {
    const r = fn();
    return `ok${r === undefined ? "" : ` ${String(r)}`}`;
  } catch (err) {
    return err instanceof SysError ? err.errno : (err as NodeJS.ErrnoException).code ?? String(err);
  }
}

function listCache(dir: string, out: SmokeReport["cacheFiles"]): void {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) listCache(p, out);
    else if (e.isFile()) {
      const st = fs.statSync(p);
      let xattr: string;
      try {
        xattr = getXattr(p, "user.CacheFiles.cache").toString("hex");
      } catch (err) {
        xattr = err instanceof SysError ? err.errno : String(err);
      }
      out.push({ path: path.relative(CACHE_DIR, p), size: st.size, allocated: st.blocks * 512, xattr });
    }
  }
}

function log(s: string): void {
  process.stderr.write(`[fscache-smoke +${(performance.now() / 1000).toFixed(1)}s] ${s}\n`);
}

async function main(): Promise<void> {
  const t0 = performance.now();
  const [imageDir, blobsDir, ...rest] = process.argv.slice(2);
  if (!imageDir || !blobsDir) throw new Error("usage: fscache-smoke.ts <image-dir> <blobs-dir> [--no-probes]");
  const probesOn = !rest.includes("--no-probes");
  const manifest = JSON.parse(fs.readFileSync(path.join(imageDir, "manifest.json"), "utf8")) as {
    bootstrap: { path: string; digest: string };
    blobs: { id: string; kernelSize: number }[];
  };
  const fsid = manifest.bootstrap.digest.replace(/^sha256:/, "");
  const sources = new Map<string, Source>();
  const addSource = (key: string, file: string): Source => {
    const fd = fs.openSync(file, "r");
    const s = { key, fd, size: fs.fstatSync(fd).size };
    sources.set(key, s);
    return s;
  };
  const boot = addSource(fsid, path.join(imageDir, manifest.bootstrap.path));
  for (const b of manifest.blobs) {
    const s = addSource(b.id, path.join(blobsDir, b.id));
    if (s.size !== b.kernelSize) throw new Error(`blob ${b.id}: ${s.size} bytes, manifest says ${b.kernelSize}`);
  }
  const volumeKey = volumeKeyOf(fsid);
  const mountData = [`fsid=${fsid}`, ...manifest.blobs.map((b) => `device=${b.id}`)].join(",");

  const report: SmokeReport = {
    kernel: os.release(),
    fsid,
    blobs: manifest.blobs.map((b) => ({ id: b.id, size: b.kernelSize })),
    bootstrapSize: boot.size,
    setup: { secondOpen: "", rebind: "" },
    rounds: [],
    probes: {},
    cacheFiles: [],
    totalMs: 0,
  };
  const watchdog = setTimeout(() => {
    log("watchdog: giving up");
    process.stdout.write(JSON.stringify({ ...report, watchdog: true }) + "\n");
    process.exit(3);
  }, WATCHDOG_MS);

  const d = new SmokeDaemon(sources, volumeKey);
  report.setup.secondOpen = errnoOf(() => fs.closeSync(openCachefiles())); // one opener at a time
  report.setup.rebind = tryCommand(d.dev, "bind ondemand");
  const mnt = "/mnt/eod-fscache-smoke";
  fs.mkdirSync(mnt, { recursive: true });

  if (probesOn) {
    // On the first READ (the superblock page of the bootstrap), before serving it: how the anon fd's
    // direct-I/O write path treats unaligned buffers, positions and lengths, and a bogus READ_COMPLETE.
    d.firstReadHook = (obj, offset) => {
      const heap = Buffer.alloc(PAGE + 1).subarray(1); // not page aligned (Buffer.alloc is not, and +1 makes sure)
      const aligned = alignedBuffer(PAGE);
      report.probes.firstRead = { key: obj.key, offset };
      report.probes.writeUnalignedBuffer = errnoOf(() => fs.writeSync(obj.fd, heap, 0, PAGE, offset));
      report.probes.writeUnalignedPos = errnoOf(() => fs.writeSync(obj.fd, aligned, 0, PAGE, offset + 512));
      report.probes.writeShortLength = errnoOf(() => fs.writeSync(obj.fd, aligned, 0, 100, offset));
      report.probes.write512Length = errnoOf(() => fs.writeSync(obj.fd, aligned, 0, 512, offset));
      report.probes.readCompleteBogusId = errnoOf(() => cachefilesReadComplete(obj.fd, 0x7fff_fff0));
      report.probes.readCompleteOnDevice = errnoOf(() => cachefilesReadComplete(d.dev, 0));
    };
  }
  report.rounds.push(await runRound(d, "cold", mountData, mnt));
  report.rounds.push(await runRound(d, "warm", mountData, mnt));

  if (probesOn && manifest.blobs.length > 0) {
    const blob = manifest.blobs[0].id;
    const bogus = "0".repeat(64);
    // umount while the device is not read: does it wait for the CLOSE messages to be read?
    report.rounds.push(await runRound(d, "umount-unread", mountData, mnt, { pausedUmountMs: 3000 }));
    // Unknown cookies answered `copen <id>,-ENOENT`: an extra device, then the primary blob.
    report.rounds.push(await runRound(d, "unknown-device", [`fsid=${fsid}`, ...manifest.blobs.map(() => `device=${bogus}`)].join(","), mnt));
    report.rounds.push(await runRound(d, "unknown-fsid", [`fsid=${bogus}`, ...manifest.blobs.map((b) => `device=${b.id}`)].join(","), mnt));
    // The blob's copen size one page larger than the cached file says: is the cache discarded? And the
    // first READ of that blob, plus every later READ overlapping it during the walk, is completed
    // without data: what does the reader see, and does reading again (failing stopped) bring new READs?
    d.sizeOverride.set(blob, sources.get(blob)!.size + PAGE);
    let failRange: { offset: number; length: number } | null = null;
    let failing = true;
    let failedReads = 0;
    d.readPolicy = (msg, obj) => {
      if (!failing || obj.key !== blob) return "serve";
      const r = msg.read!;
      failRange ??= r;
      if (r.offset < failRange.offset + failRange.length && failRange.offset < r.offset + r.length) {
        failedReads++;
        return "fail";
      }
      return "serve";
    };
    report.rounds.push(await runRound(d, "size-mismatch", mountData, mnt, { afterWalk: () => { failing = false; } }));
    report.probes.failRange = failRange;
    report.probes.failedReads = failedReads;
    d.sizeOverride.clear();
    d.readPolicy = () => "serve";
    // The first size again: the file made in the mismatch round is replaced once more.
    report.rounds.push(await runRound(d, "size-restored", mountData, mnt));
  }
  report.probes.raw = d.raw;

  d.close();
  for (const s of sources.values()) fs.closeSync(s.fd);
  listCache(path.join(CACHE_DIR, "cache"), report.cacheFiles);
  clearTimeout(watchdog);
  report.totalMs = performance.now() - t0;
  process.stdout.write(JSON.stringify(report) + "\n");
}

main().catch((err: unknown) => {
  log(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(1);
});
