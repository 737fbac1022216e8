// eod demo: the README's main job on an embedded default. Builds a sample image from a tree made here,
// serves it with `eod serve` on 127.0.0.1, mounts it lazily through the cache daemon, reads files through
// the kernel, prints the bytes fetched against the image size, and unmounts.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { buildImage } from "../mkfs/image.ts";
import { sha256 } from "../util/sha256.ts";
import { callDaemon } from "../daemon/client.ts";
import { processAlive, readPid } from "../daemon/pids.ts";
import { ensureDaemon } from "../daemon/spawn.ts";
import { EodError } from "../errors.ts";
import { umount } from "../sys/mount.ts";
import { parse } from "./args.ts";

export const DEMO_USAGE = `Usage: eod demo [--keep]

Builds a sample image from an embedded tree, serves it over HTTP on 127.0.0.1, mounts it lazily, reads a
file from it and prints how many bytes were fetched against the image size, then unmounts.`;

/** The embedded sample tree: a little application with text, a binary, a symlink and nested dirs. */
export function writeSampleTree(root: string): void {
  const put = (rel: string, data: string | Uint8Array) => {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), data);
  };
  put("etc/motd", "Hello from erofs-ondemand: this file came out of an EROFS image.\n");
  put("etc/app.conf", "listen = 127.0.0.1:8080\nworkers = 4\n");
  let seed = sha256(Buffer.from("eod-sample"));
  const bin = new Uint8Array(4 << 20);
  for (let at = 0; at < bin.length; at += 32) { seed = sha256(seed); bin.set(seed.subarray(0, Math.min(32, bin.length - at)), at); }
  put("usr/lib/app/libapp.so", bin);
  put("usr/lib/app/libapp-copy.so", bin); // deduplicated: stored once
  for (let i = 0; i < 50; i++) put(`usr/share/doc/app/page-${i}.txt`, `Page ${i}\n`.repeat(100 + i));
  fs.mkdirSync(path.join(root, "usr/bin"), { recursive: true });
  fs.symlinkSync("../lib/app/libapp.so", path.join(root, "usr/bin/app"));
}

export async function demoCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, { keep: { type: "boolean" }, help: { type: "boolean", short: "h" } }, DEMO_USAGE);
  if (values.help) { console.log(DEMO_USAGE); return 0; }
  if (process.getuid?.() !== 0) throw new EodError("USAGE", "eod demo mounts an image and needs root");
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "eod-demo-"));
  const cacheDir = path.join(work, "cache");
  const mnt = path.join(work, "mnt");
  let server: ChildProcess | null = null;
  let mounted = false;
  try {
    const src = path.join(work, "sample");
    writeSampleTree(src);
    const imageDir = path.join(work, "image");
    const r = await buildImage(src, imageDir);
    const imageBytes = [r.manifest.bootstrap.size, ...r.manifest.blobs.flatMap((b) => [b.remote.size, b.table.size])].reduce((a, b) => a + b, 0);
    console.log(`built ${imageDir}: ${r.files} files, ${r.bytes} bytes of data -> image of ${imageBytes} bytes (bootstrap ${r.manifest.bootstrap.size}, ${r.manifest.blobs.length} blob(s), ${r.manifest.compression})`);
    const served = await startServeChild(imageDir);
    server = served.child;
    console.log(`serving it at ${served.url} (eod serve)`);
    fs.mkdirSync(mnt);
    const sock = await ensureDaemon(cacheDir, "auto");
    await callDaemon(sock, "POST", "/mounts", { source: served.url, mountPoint: mnt });
    mounted = true;
    console.log(`mounted lazily on ${mnt}: ${await blobBytes(served.url)} blob bytes fetched so far`);
    // Read asynchronously: a blocked read must not stop this process from doing anything else.
    const motd = await fs.promises.readFile(path.join(mnt, "etc/motd"), "utf8");
    process.stdout.write(`cat etc/motd: ${motd}`);
    const stats = await serverStats(served.url);
    console.log(`bytes fetched: ${stats.bytes} of ${imageBytes} (${((100 * stats.bytes) / imageBytes).toFixed(1)}% of the image, in ${stats.requests} requests)`);
    const lib = await fs.promises.readFile(path.join(mnt, "usr/lib/app/libapp.so"));
    const same = lib.equals(fs.readFileSync(path.join(src, "usr/lib/app/libapp.so")));
    console.log(`usr/lib/app/libapp.so (4 MiB) read lazily matches the source: ${same}; now ${(await serverStats(served.url)).bytes} bytes fetched`);
    return same ? 0 : 1;
  } finally {
    if (mounted) {
      const sock = path.join(cacheDir, "daemon.sock");
      await callDaemon(sock, "POST", "/umount", { mountPoint: mnt }).catch(() => umount(mnt));
      console.log(`unmounted ${mnt}`);
      await daemonGone(cacheDir); // it exits with its last mount; removing its directory under it would race its last writes
    }
    server?.kill("SIGTERM");
    if (values.keep) console.log(`kept ${work}`);
    else fs.rmSync(work, { recursive: true, force: true });
  }
}

/** Waits (up to 10 s) until the daemon of `cacheDir` and its holder have exited. */
async function daemonGone(cacheDir: string): Promise<void> {
  const pids = ["holder.pid", "daemon.pid"].map((f) => readPid(path.join(cacheDir, f))).filter((p) => p !== null);
  for (let i = 0; i < 100 && pids.some(processAlive); i++) await new Promise((r) => setTimeout(r, 100));
}

const EOD_BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../bin/eod.mjs");

/** `eod serve <dir> --listen 127.0.0.1:0` as a child process; resolves with its URL. */
function startServeChild(dir: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [EOD_BIN, "serve", dir, "--listen", "127.0.0.1:0"], { stdio: ["ignore", "pipe", "inherit"] });
  return new Promise((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (c: Buffer) => {
      out += c.toString();
      if (out.includes("\n")) resolve({ child, url: out.split("\n")[0].trim() });
    });
    child.once("exit", (code) => reject(new EodError("DAEMON", `eod serve exited with ${code}`)));
  });
}

async function serverStats(url: string): Promise<{ requests: number; bytes: number; byPath: Record<string, { bytes: number }> }> {
  return (await fetch(new URL("_eod/stats", url))).json() as Promise<{ requests: number; bytes: number; byPath: Record<string, { bytes: number }> }>;
}

async function blobBytes(url: string): Promise<number> {
  const s = await serverStats(url);
  return Object.entries(s.byPath).filter(([p]) => p.startsWith("blobs/") && !p.endsWith(".ctab")).reduce((n, [, v]) => n + v.bytes, 0);
}
