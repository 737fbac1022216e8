// eod demo: the README's main job on an embedded default. Builds a sample image from a tree made here,
// turns its blobs into kernel form, mounts the bootstrap file-backed with device= (no daemon), reads a
// file through the kernel and unmounts. (Lazy mounting over HTTP replaces the unpack step once `eod mount`
// exists.)
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { buildImage } from "../build/image.ts";
import { EodError } from "../errors.ts";
import { unpackImage } from "../image/unpack.ts";
import { mount, MS_RDONLY, umount } from "../sys/mount.ts";
import { parse } from "./args.ts";

export const DEMO_USAGE = `Usage: eod demo [--keep]

Builds a sample image from an embedded tree, mounts it with the kernel and reads a file from it.`;

/** The embedded sample tree: a little application with text, a binary, a symlink and nested dirs. */
export function writeSampleTree(root: string): void {
  const put = (rel: string, data: string | Uint8Array) => {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), data);
  };
  put("etc/motd", "Hello from erofs-ondemand: this file came out of an EROFS image.\n");
  put("etc/app.conf", "listen = 127.0.0.1:8080\nworkers = 4\n");
  let seed = createHash("sha256").update("eod-sample").digest();
  const bin = new Uint8Array(4 << 20);
  for (let at = 0; at < bin.length; at += 32) { seed = createHash("sha256").update(seed).digest(); bin.set(seed.subarray(0, Math.min(32, bin.length - at)), at); }
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
  const mnt = path.join(work, "mnt");
  let mounted = false;
  try {
    const src = path.join(work, "sample");
    writeSampleTree(src);
    const r = await buildImage(src, path.join(work, "image"));
    const m = r.manifest;
    console.log(`built ${path.join(work, "image")}: ${r.files} files, ${r.bytes} bytes of data -> bootstrap ${m.bootstrap.size} B + ${m.blobs.length} blob(s) ${m.blobs.map((b) => `${b.remote.size} B ${m.compression}`).join(", ")} (${r.dedupSavedBytes} B deduplicated)`);
    const u = unpackImage(path.join(work, "image"), path.join(work, "blobs"));
    fs.mkdirSync(mnt);
    mount(u.bootstrapPath, mnt, "erofs", MS_RDONLY, u.mountData || null);
    mounted = true;
    console.log(`mounted ${u.bootstrapPath} on ${mnt} (${u.mountData})`);
    process.stdout.write(`cat ${mnt}/etc/motd: ${fs.readFileSync(path.join(mnt, "etc/motd"), "utf8")}`);
    const same = fs.readFileSync(path.join(mnt, "usr/lib/app/libapp.so")).equals(fs.readFileSync(path.join(src, "usr/lib/app/libapp.so")));
    console.log(`usr/lib/app/libapp.so read through the kernel matches the source: ${same}`);
    return same ? 0 : 1;
  } finally {
    if (mounted) umount(mnt);
    if (values.keep) console.log(`kept ${work}`);
    else fs.rmSync(work, { recursive: true, force: true });
  }
}
