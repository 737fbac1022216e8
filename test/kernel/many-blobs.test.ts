// An image with more blobs than one mount(2) option page can name (70 layers: one blob each, ~110 bytes of
// `device=<cache file>` per blob, ~7.7 KB) mounts lazily through the daemon with the new mount API and reads
// back byte for byte; the fsopen path reports failures with the step and errno.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { eodOk } from "../helpers/cli.ts";
import { haveRoot, tempDir } from "../helpers/kernel.ts";
import { cleanup, eodAsync } from "../helpers/lazy.ts";
import { tarArchive } from "../helpers/tar-layer.ts";
import { kernelSupportsPreContent } from "../../src/sys/fanotify.ts";
import { fsMountAsync, mount, MOUNT_DATA_MAX, MS_RDONLY, umount } from "../../src/sys/mount.ts";
import { getRlimit, raiseNofile, RLIMIT_NOFILE } from "../../src/sys/rlimit.ts";
import { unavailable } from "../helpers/skip.ts";

const support = haveRoot() ? kernelSupportsPreContent() : { ok: false, missing: ["root"] };
const skip = unavailable(!haveRoot() ? "needs root to mount" : !support.ok ? `kernel lacks: ${support.missing.join("; ")}` : false);
const LAYERS = 70;

let work = "";
let built: { img: string; blobs: Array<{ id: string; kernelSize: number }> } | null = null;
before(() => { if (!skip) work = tempDir("eod-many-"); });
after(() => {
  if (!work) return;
  cleanup(work, path.join(work, "cache"));
  fs.rmSync(work, { recursive: true, force: true });
});

test(`an image of ${LAYERS} blobs (device= options beyond one page) mounts and reads correctly`, { skip, timeout: 300_000 }, async () => {
  const datas: Buffer[] = [];
  const tars: string[] = [];
  for (let k = 0; k < LAYERS; k++) {
    datas.push(randomBytes(3000 + k * 37));
    const tar = path.join(work, `l${k}.tar`);
    fs.writeFileSync(tar, tarArchive([{ path: "d/", type: "dir" }, { path: `d/f${k}`, data: datas[k] }]));
    tars.push(tar);
  }
  const img = path.join(work, "img");
  eodOk("build", ...tars, "-o", img);
  const manifest = JSON.parse(fs.readFileSync(path.join(img, "manifest.json"), "utf8"));
  assert.equal(manifest.blobs.length, LAYERS, "one blob per layer");
  built = { img, blobs: manifest.blobs };
  const cache = path.join(work, "cache");
  const data = manifest.blobs.map((b: { id: string }) => `device=${path.join(cache, "blobs", b.id)}`).join(",");
  assert.ok(data.length + 1 > MOUNT_DATA_MAX, `the option string (${data.length} B) must not fit one page`);

  const mnt = path.join(work, "mnt");
  fs.mkdirSync(mnt);
  const r = await eodAsync(["mount", img, mnt, "--cache-dir", cache]);
  assert.equal(r.status, 0, r.stderr);
  try {
    for (let k = 0; k < LAYERS; k++) assert.ok(fs.readFileSync(path.join(mnt, `d/f${k}`)).equals(datas[k]), `file of layer ${k}`);
    const st = JSON.parse((await eodAsync(["status", "--cache-dir", cache, "--json"])).stdout);
    assert.equal(st.blobs.length, LAYERS);
    assert.equal(st.blobs.filter((b: { cachedBytes: number }) => b.cachedBytes > 0).length, LAYERS, "every blob was read through the daemon");
  } finally {
    const u = await eodAsync(["umount", mnt, "--cache-dir", cache]);
    assert.equal(u.status, 0, u.stderr);
  }
});

test("the same options through mount(2) are cut at one page (EINVAL: too few devices); fsMountAsync takes them all", { skip }, async (t) => {
  if (!built) return t.skip("the image test failed");
  // Sparse files of the blobs' kernel-form sizes: the mount reads only the bootstrap, never these.
  const dir = path.join(work, "plain-blobs");
  fs.mkdirSync(dir);
  const devices = built.blobs.map((b) => {
    const p = path.join(dir, b.id);
    fs.writeFileSync(p, "");
    fs.truncateSync(p, b.kernelSize);
    return `device=${p}`;
  });
  const bootstrap = path.join(built.img, "bootstrap.erofs");
  const mnt = path.join(work, "mnt-plain");
  fs.mkdirSync(mnt);
  assert.ok(devices.join(",").length + 1 > MOUNT_DATA_MAX);
  assert.throws(() => mount(bootstrap, mnt, "erofs", MS_RDONLY, devices.join(",")), { errno: "EINVAL" }); // dmesg: extra devices don't match
  await fsMountAsync(bootstrap, mnt, "erofs", true, devices);
  try {
    assert.equal(fs.readdirSync(path.join(mnt, "d")).length, LAYERS);
    assert.match(fs.readFileSync("/proc/self/mountinfo", "utf8").split("\n").find((l) => l.split(" ")[4] === mnt) ?? "", / ro[, ]/, "mounted read-only");
  } finally {
    umount(mnt);
  }
});

test("fsMountAsync names the failing step and errno", { skip }, async () => {
  const dir = path.join(work, "mnt-bad");
  fs.mkdirSync(dir);
  await assert.rejects(fsMountAsync(path.join(work, "missing.erofs"), dir, "erofs", true, ["device=/nonexistent"]), (err: unknown) => {
    assert.equal((err as { code?: string }).code, "SYS");
    assert.equal((err as { syscall?: string }).syscall, "fsconfig");
    assert.equal((err as { errno?: string }).errno, "ENOENT");
    return true;
  });
  await assert.rejects(fsMountAsync("x", dir, "no-such-fs", true, []), { syscall: "fsopen", errno: "ENODEV" });
});

test("raiseNofile never lowers the limit and gives at least what the hard limit allows", () => {
  const before = getRlimit(RLIMIT_NOFILE);
  const got = raiseNofile(Math.min(before.soft, 64));
  assert.deepEqual(got, before, "asking for less changes nothing");
  const want = 65536;
  const raised = raiseNofile(want);
  assert.ok(raised.soft >= Math.min(want, before.hard), `soft ${raised.soft}`);
  const capEff = BigInt(`0x${/CapEff:\s*([0-9a-f]+)/.exec(fs.readFileSync("/proc/self/status", "utf8"))![1]}`);
  if ((capEff >> 24n) & 1n) assert.ok(raised.soft >= want, "CAP_SYS_RESOURCE may raise the hard limit");
  else assert.equal(raised.hard, before.hard, "without CAP_SYS_RESOURCE the hard limit stays");
});
