// `eod mount --frontend fuse` through loop devices on this kernel (mount.loop_devices = always, so the path
// kernels without file-backed erofs take is tested here too): the tree is identical, `eod status` names the
// frontend, why, and the loop devices; after `eod umount` no loop device is left. Then 50 mounts, reads and
// unmounts beside a mount that stays: the daemon's fds, the loop devices and the FUSE connections are the
// same after as before. The fanotify frontend refuses loop devices (its events are not raised for a loop
// device's reads: unfetched ranges would read as zeros).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { boundLoops } from "../../src/sys/loop.ts";
import { kernelSupportsPreContent } from "../../src/sys/fanotify.ts";
import { kernelSupportsFuse } from "../../src/frontend/resolve.ts";
import { eodOk, REPO } from "../helpers/cli.ts";
import { compareTrees } from "../helpers/compare-trees.ts";
import { haveRoot, tempDir } from "../helpers/kernel.ts";
import { eodAsync, lazyWorkspace } from "../helpers/lazy.ts";
import { unavailable } from "../helpers/skip.ts";

const root = haveRoot();
const loops = fs.existsSync("/dev/loop-control");
const fanotify = root ? kernelSupportsPreContent() : { ok: false, missing: ["root"] };
const fuse = kernelSupportsFuse();
const fuseBuilt = fs.existsSync(path.join(REPO, "src/frontend/fuse/service.ts"));
const base = !root ? "needs root to mount" : !loops && "needs loop devices (CONFIG_BLK_DEV_LOOP)";
const SKIP = {
  fanotify: unavailable(base || (!fanotify.ok && `kernel lacks: ${fanotify.missing.join("; ")}`)),
  fuse: unavailable(base || (!fuse.ok ? `kernel lacks: ${fuse.missing.join("; ")}` : !fuseBuilt && "the fuse frontend (src/frontend/fuse/service.ts) is not built yet")),
};
const env = { EOD_LOOP_DEVICES: "always" };
const ITERATIONS = 50;

let work = "";
let ws: ReturnType<typeof lazyWorkspace>;
const images: Array<{ src: string; img: string }> = [];

before(() => {
  if (SKIP.fanotify && SKIP.fuse) return;
  work = tempDir("eod-loop-mount-");
  ws = lazyWorkspace(work);
  for (const name of ["a", "b"]) {
    const src = path.join(work, `src-${name}`);
    fs.mkdirSync(path.join(src, "dir"), { recursive: true });
    fs.writeFileSync(path.join(src, "dir/random.bin"), crypto.randomBytes(3 << 20));
    fs.writeFileSync(path.join(src, "small"), `image ${name}\n`);
    fs.symlinkSync("dir/random.bin", path.join(src, "link"));
    const img = path.join(work, `img-${name}`);
    eodOk("build", src, "-o", img, "--chunk-size", "64K");
    images.push({ src, img });
  }
});

after(() => { if (work) ws.teardown(); });

async function eodMount(fe: string, img: string, mnt: string, cache: string): Promise<void> {
  const r = await eodAsync(["mount", img, mnt, "--cache-dir", cache, "--frontend", fe], env);
  assert.equal(r.status, 0, r.stderr);
}

async function eodUmount(mnt: string, cache: string): Promise<void> {
  const r = await eodAsync(["umount", mnt, "--cache-dir", cache]);
  assert.equal(r.status, 0, r.stderr);
}

async function status(cache: string): Promise<{ pid: number; frontend: { name: string; reason?: string }; erofsMount: { loopDevices: string }; mounts: Array<{ mountPoint: string; loopDevices?: string[] }> }> {
  return JSON.parse((await eodAsync(["status", "--cache-dir", cache, "--json"])).stdout);
}

/** Loop devices whose backing file is under the test's directory. */
function ourLoops(): string[] {
  return [...boundLoops()].filter(([, file]) => file.startsWith(`${work}/`)).map(([n]) => `/dev/loop${n}`).sort();
}

/** FUSE mounts under the test's directory (the fuse frontend's blob filesystem of a cache). */
function ourFuseMounts(): string[] {
  return fs.readFileSync("/proc/self/mountinfo", "utf8").split("\n").filter((l) => / - fuse(\.\S+)? /.test(l)).map((l) => l.split(" ")[4]).filter((m) => m.startsWith(`${work}/`));
}

/** Autoclear happens as erofs lets go, the daemon exits after its last mount: give each a moment. */
async function settle<T>(probe: () => T, ok: (v: T) => boolean): Promise<T> {
  let v = probe();
  for (let i = 0; i < 100 && !ok(v); i++) {
    await new Promise((r) => setTimeout(r, 50));
    v = probe();
  }
  return v;
}

/** What the daemon's fds point at, sorted (a leak shows up by name). */
function fdTargets(pid: number): string[] {
  return fs.readdirSync(`/proc/${pid}/fd`).map((fd) => { try { return fs.readlinkSync(`/proc/${pid}/fd/${fd}`); } catch { return "?"; } }).sort();
}

test("fanotify refuses mount.loop_devices = always with a clear error, and leaves no loop device", { skip: SKIP.fanotify, timeout: 120_000 }, async () => {
  const { cache, mnt } = ws.fresh();
  const r = await eodAsync(["mount", images[0].img, mnt, "--cache-dir", cache, "--frontend", "fanotify"], env);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr + r.stdout, /mount\.loop_devices is always, and the fanotify frontend cannot serve reads through loop devices/);
  assert.deepEqual(ourLoops(), []);
});

for (const fe of ["fuse"] as const) {
  test(`${fe} through loop devices: the tree is identical, eod status names frontend, reason and devices; none is left after umount`, { skip: SKIP[fe], timeout: 180_000 }, async () => {
    const { cache, mnt } = ws.fresh();
    const { src, img } = images[0];
    await eodMount(fe, img, mnt, cache);
    const s = await status(cache);
    assert.equal(s.frontend.name, fe);
    assert.equal(s.frontend.reason, `asked for (--frontend ${fe})`);
    assert.equal(s.erofsMount.loopDevices, "always");
    const devices = s.mounts[0].loopDevices ?? [];
    assert.equal(devices.length, 2, "one for the bootstrap, one for the blob");
    assert.deepEqual(ourLoops(), [...devices].sort());
    assert.match(eodOk("status", "--cache-dir", cache), new RegExp(`frontend ${fe} \\(asked for[^\\n]*\\n[^]*on ${devices.join(" ")}`));
    assert.deepEqual(await compareTrees(src, mnt, { ignoreRootAttrs: true }), []);
    await eodUmount(mnt, cache);
    assert.deepEqual(await settle(ourLoops, (l) => l.length === 0), [], "no loop device after eod umount");
    assert.deepEqual(await settle(ourFuseMounts, (m) => m.length === 0), [], "no FUSE mount once the daemon is gone");
  });

  test(`${fe}: ${ITERATIONS} mounts, reads and unmounts beside a mount that stays leak no daemon fd, loop device or FUSE connection`, { skip: SKIP[fe], timeout: 600_000 }, async () => {
    const { cache, mnt: keep } = ws.fresh();
    const mnt = path.join(work, `${path.basename(keep)}-again`);
    fs.mkdirSync(mnt);
    await eodMount(fe, images[0].img, keep, cache); // image a stays; image b comes and goes (its blobs open and close)
    const want = crypto.createHash("sha256").update(fs.readFileSync(path.join(images[1].src, "dir/random.bin"))).digest("hex");
    const { pid } = await status(cache);
    // Image b's blob is released after each umount (its cache file closed, its presence map flushed) a moment later.
    const blobB = JSON.parse(fs.readFileSync(path.join(images[1].img, "manifest.json"), "utf8")).blobs[0].id as string;
    const released = (fds: string[]) => !fds.some((f) => f.startsWith(path.join(cache, "blobs", blobB)));
    let baseline: { fds: string[]; loops: string[]; fuse: string[] } | null = null;
    for (let i = 0; i < ITERATIONS; i++) {
      await eodMount(fe, images[1].img, mnt, cache);
      assert.equal(crypto.createHash("sha256").update(fs.readFileSync(path.join(mnt, "dir/random.bin"))).digest("hex"), want);
      await eodUmount(mnt, cache);
      const now = { fds: await settle(() => fdTargets(pid), released), loops: await settle(ourLoops, (l) => l.length === 2), fuse: ourFuseMounts() };
      baseline ??= now; // after the first round: the blob files and sockets a daemon keeps are open by then
      if (i === ITERATIONS - 1) {
        assert.equal((await status(cache)).pid, pid, "the same daemon served every round");
        assert.deepEqual(now.fds, baseline.fds, `daemon fds after round 1 and after round ${ITERATIONS}`);
        assert.deepEqual(now.loops, baseline.loops, "only the staying mount's loop devices");
        assert.deepEqual(now.fuse, baseline.fuse);
        assert.equal(now.fuse.length, fe === "fuse" ? 1 : 0, "one FUSE connection for the cache, or none");
      }
    }
    await eodUmount(keep, cache);
    assert.deepEqual(await settle(ourLoops, (l) => l.length === 0), []);
    assert.deepEqual(await settle(ourFuseMounts, (m) => m.length === 0), []);
    assert.equal(await settle(() => fs.existsSync(`/proc/${pid}`), (alive) => !alive), false, "the daemon exited with its last mount (its /dev/fuse fd, so the connection, with it)");
  });
}
