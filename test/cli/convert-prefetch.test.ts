// `eod convert --prefetch` against the real registry (Debian's docker-registry on 127.0.0.1): the image has
// one more blob, the hot one, first; fsck.erofs takes it and extracts the same tree as the image converted
// without a list; a list entry naming nothing is a warning. Mounted lazily from the registry (fanotify
// frontend, behind a proxy that counts requests), the mount's prefetch reads the hot blob in one request and
// the mounted tree is the same as the plain image's.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { haveTool, tool } from "../helpers/cli.ts";
import { compareTrees } from "../helpers/compare-trees.ts";
import { haveRoot } from "../helpers/kernel.ts";
import { eodAsync, lazyWorkspace } from "../helpers/lazy.ts";
import { pushOciImage, writeTestLayers } from "../helpers/oci-image.ts";
import { registryProxy, startRegistry, type RegistryProxy, type RunningRegistry } from "../helpers/registry.ts";
import { unavailable } from "../helpers/skip.ts";
import type { TarSpec } from "../helpers/tar-layer.ts";
import { RegistryClient, staticCredentials } from "../../src/remote/registry/index.ts";
import { kernelSupportsPreContent } from "../../src/sys/fanotify.ts";

const K = 1024;
const f = (p: string, data: Buffer): TarSpec => ({ path: p, data });
const d = (p: string): TarSpec => ({ path: p, type: "dir" });
const LAYERS: TarSpec[][] = [
  [d("usr/"), d("usr/bin/"), d("usr/lib/"), { path: "bin", type: "symlink", linkpath: "usr/bin" }, f("usr/bin/tool", randomBytes(300 * K)),
    f("usr/lib/big.so", randomBytes(1024 * K)), d("data/"), f("data/cold.bin", randomBytes(3000 * K)), d("etc/"), f("etc/conf", randomBytes(200 * K))],
  [d("etc/"), f("etc/conf", randomBytes(180 * K)), d("app/"), f("app/a.so", randomBytes(100 * K)), f("app/b.so", randomBytes(150 * K))],
  [d("app/"), f("app/.wh.b.so", Buffer.alloc(0)), d("data/"), f("data/more.bin", randomBytes(500 * K))],
];
const LIST = "# what the start reads\n/etc/conf\n/bin/tool\n/app\n/missing/file\n";

let work = "";
let reg: RunningRegistry;
let client: RegistryClient;
let plain: { dir: string; ref: string };
let hot: { dir: string; ref: string; stderr: string };
const noCreds = () => ({ DOCKER_CONFIG: path.join(work, "no-docker-config") });

before(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "eod-convert-prefetch-"));
  reg = await startRegistry();
  client = new RegistryClient({ credentials: staticCredentials({}) });
  await pushOciImage(client, { registry: reg.host, repository: "eod/src" }, "v1", writeTestLayers(work, LAYERS));
  fs.writeFileSync(path.join(work, "list"), LIST);
  const convert = async (tag: string, ...extra: string[]) => {
    const dir = path.join(work, tag);
    const r = await eodAsync(["convert", `${reg.host}/eod/src:v1`, `${reg.host}/eod/conv:${tag}`, "-o", dir, "--json", ...extra], noCreds());
    assert.equal(r.status, 0, r.stderr);
    return { dir, ref: JSON.parse(r.stdout).target.reference as string, stderr: r.stderr };
  };
  plain = await convert("plain");
  hot = await convert("hot", "--prefetch", path.join(work, "list"));
});

after(async () => {
  await client?.close();
  await reg?.stop();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

const manifestOf = (dir: string) => JSON.parse(fs.readFileSync(path.join(dir, "manifest.json"), "utf8"));

const noFsck = unavailable(!haveTool("fsck.erofs") ? "needs fsck.erofs (erofs-utils)" : false);

test("convert --prefetch: a hot blob first, a warning for the missing entry; fsck.erofs extracts the same tree as without a list", { skip: noFsck, timeout: 120_000 }, async () => {
  const m = manifestOf(hot.dir);
  assert.equal(manifestOf(plain.dir).blobs.length, 3, "one blob per layer");
  assert.equal(m.blobs.length, 3, "the hot blob, layer 1's and layer 3's: all of layer 2's data is listed");
  assert.deepEqual(m.prefetch.map((e: { path: string }) => e.path), ["/etc/conf", "/bin/tool", "/app"]);
  assert.match(hot.stderr, /warning: prefetch entry \/missing\/file is not a file or directory of the tree: skipped/);
  // conf (layer 2's), tool and a.so, whole: nothing else, nothing of layer 1's conf or the deleted b.so
  assert.equal(m.blobs[0].kernelSize, (180 + 300 + 100) * K);
  const extracted: string[] = [];
  for (const img of [plain.dir, hot.dir]) {
    const line = (await eodAsync(["unpack", img, "--blobs-to", `${img}-blobs`])).stdout.trim();
    const [bootstrap, data = ""] = line.split(" ");
    const out = `${img}-tree`;
    const fsck = tool("fsck.erofs", [...data.split(",").map((x) => `--device=${x.slice("device=".length)}`), `--extract=${out}`, bootstrap]);
    assert.equal(fsck.status, 0, `fsck.erofs ${img}:\n${fsck.stderr}${fsck.stdout}`);
    extracted.push(out);
  }
  assert.deepEqual(await compareTrees(extracted[0], extracted[1]), []);
});

const support = haveRoot() ? kernelSupportsPreContent() : { ok: false, missing: ["root"] };
const noMount = unavailable(!haveRoot() ? "needs root to mount" : !support.ok ? `kernel lacks: ${support.missing.join("; ")}` : false);

test("mounted lazily from the registry, the prefetch reads the hot blob in one request; the tree is the plain image's", { skip: noMount, timeout: 180_000 }, async () => {
  const mnts = path.join(work, "mounts");
  fs.mkdirSync(mnts);
  const ws = lazyWorkspace(mnts);
  const requests: string[] = [];
  let proxy: RegistryProxy | undefined;
  try {
    proxy = await registryProxy(reg.host, { before: (req) => { requests.push(`${req.method} ${req.url}`); return false; } });
    const mount = async (ref: string) => {
      const { cache, mnt } = ws.fresh();
      const r = await eodAsync(["mount", ref.replace(reg.host, proxy!.host), mnt, "--cache-dir", cache]);
      assert.equal(r.status, 0, r.stderr);
      return { cache, mnt };
    };
    const h = await mount(hot.ref);
    const hotBlob = manifestOf(hot.dir).blobs[0];
    let s: { prefetches: number; inFlight: number; cachedBytes: number } | undefined;
    for (let i = 0; i < 200; i++) {
      const st = JSON.parse((await eodAsync(["status", "--cache-dir", h.cache, "--json"])).stdout);
      s = st.blobs.find((b: { id: string }) => b.id === hotBlob.id);
      if (s && s.prefetches > 0 && s.inFlight === 0 && s.cachedBytes >= hotBlob.kernelSize) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(s && s.cachedBytes >= hotBlob.kernelSize, `the prefetch filled the hot blob: ${JSON.stringify(s)}`);
    assert.equal(s.prefetches, 1, "one prefetch request");
    assert.equal(requests.filter((r) => r.includes(hotBlob.remote.digest)).length, 1, `one request for the hot blob:\n${requests.join("\n")}`);
    const p = await mount(plain.ref);
    assert.deepEqual(await compareTrees(p.mnt, h.mnt, { ignoreRootAttrs: true, seekHoles: false }), []);
    for (const m of [h, p]) {
      const r = await eodAsync(["umount", m.mnt, "--cache-dir", m.cache]);
      assert.equal(r.status, 0, r.stderr);
    }
  } finally {
    await proxy?.close();
    ws.teardown();
  }
});
