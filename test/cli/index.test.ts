// `eod index` (issue 14) from the command line: its usage errors; an index made from a local OCI layout
// (GNU gzip, uncompressed and multi-frame zstd layers), shown by `eod inspect` (per layer: kind, spans, windows,
// index ÷ layer) and verified span by span by `eod check --layers`, which names the layer an index made for
// another image lacks; a one-frame zstd layer refused; a docker save archive indexed as its layout; an index
// pushed next to an image in the real registry, then inspected and checked by reference.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { eod, eodOk } from "../helpers/cli.ts";
import { dockerSaveOf, pushLayoutAsIs, writeGzipLayout, type GzipLayout } from "../helpers/gzip-oci-layout.ts";
import { testLayers } from "../helpers/oci-image.ts";
import { startRegistry, type RunningRegistry } from "../helpers/registry.ts";
import { RegistryClient, staticCredentials } from "../../src/remote/registry/index.ts";

let work = "";
let reg: RunningRegistry | undefined;
let client: RegistryClient | undefined;
const layouts: Record<string, GzipLayout> = {};

before(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "eod-index-cli-"));
  layouts.gzip = writeGzipLayout(work, "gzip");
  layouts.none = writeGzipLayout(work, "none", testLayers(), { compress: "none" });
  layouts.zstdFrames = writeGzipLayout(work, "zstd-frames", testLayers(), { compress: "zstd-frames" });
  layouts.zstd = writeGzipLayout(work, "zstd", testLayers(), { compress: "zstd" });
  const other = testLayers();
  other[2] = [{ path: "./", type: "dir" }, { path: "other", data: Buffer.from("another image\n") }];
  layouts.other = writeGzipLayout(work, "other", other);
});

after(async () => {
  await client?.close();
  await reg?.stop();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

test("eod index: usage errors say what is wrong", () => {
  const cases: Array<[string[], number, RegExp]> = [
    [[], 2, /Usage: eod index/],
    [[layouts.none.dir, "-o", path.join(work, "x"), "--span", "1000"], 2, /--span must be a multiple of 4K/],
    [[layouts.none.dir], 2, /-o <dir>, --push, or both/],
    [[layouts.none.dir, "--push"], 2, /--push needs the image's registry reference/],
    [[work, "-o", path.join(work, "x")], 1, /not an image/], // a directory that is not a layout
  ];
  for (const [args, status, pattern] of cases) {
    const r = eod("index", ...args);
    assert.equal(r.status, status, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, pattern);
  }
  assert.ok(!fs.existsSync(path.join(work, "x")), "nothing written");
});

for (const [name, kind] of [["gzip", "gzip"], ["none", "none"], ["zstdFrames", "zstd"]] as const) {
  test(`eod index of a local OCI layout (${name} layers): inspect shows the seek indexes, check --layers verifies every span`, () => {
    const layout = layouts[name];
    const dir = path.join(work, `index-${name}`);
    const out = eodOk("index", layout.dir, "-o", dir, "--span", "64K");
    assert.match(out, /3 layer\(s\)/);
    assert.match(out, new RegExp(`layer 1 .*: ${kind}, \\d+ -> \\d+ bytes, \\d+ span\\(s\\), index \\d+ bytes`));
    assert.match(out, /index \d+ bytes = [\d.]+ % of the image's \d+ bytes/);

    const info = JSON.parse(eodOk("inspect", dir, "--summary", "--json")) as { blockSize: number; blobs: Array<{ remoteSize: number; seekIndex: { kind: string; spans: number; windowBytes: number; indexBytes: number; indexRatio: number } }> };
    assert.equal(info.blockSize, 512);
    assert.equal(info.blobs.length, 3);
    for (const [k, b] of info.blobs.entries()) {
      assert.equal(b.seekIndex.kind, kind);
      assert.equal(b.remoteSize, layout.layerSizes[k]);
      assert.ok(b.seekIndex.spans >= 1);
      if (kind === "none") assert.equal(b.seekIndex.windowBytes, 0);
      assert.ok(b.seekIndex.indexRatio > 0 && b.seekIndex.indexRatio < 0.2, `index ÷ layer ${b.seekIndex.indexRatio}`);
    }
    assert.match(eodOk("inspect", dir, "--summary"), new RegExp(`layer ${kind}, tar \\d+ B, layer \\d+ B, \\d+ spans`));

    const checked = eodOk("check", dir, "--layers", layout.dir);
    assert.match(checked, /OK \(.* (\d+) chunks verified\)/);
    const noLayers = eodOk("check", dir);
    assert.match(noLayers, /not checked: blob [0-9a-f]{64}: its layer sha256:[0-9a-f]{64} is not here/);
  });
}

test("a zstd layer of one frame cannot be indexed: the error says it needs conversion", () => {
  const r = eod("index", layouts.zstd.dir, "-o", path.join(work, "index-zstd"));
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /needs conversion \(one zstd frame/);
  assert.ok(!fs.existsSync(path.join(work, "index-zstd")), "nothing written");
});

test("eod index of a docker save archive gives the index of the same layout", () => {
  const archive = path.join(work, "gzip.tar");
  dockerSaveOf(layouts.gzip, archive);
  const dir = path.join(work, "index-archive");
  eodOk("index", archive, "-o", dir, "--span", "64K");
  const fromLayout = path.join(work, "index-gzip"); // made by the layout test above with the same span
  assert.equal(fs.readFileSync(path.join(dir, "manifest.json"), "utf8"), fs.readFileSync(path.join(fromLayout, "manifest.json"), "utf8"));
  assert.match(eodOk("check", dir, "--layers", layouts.gzip.dir), /OK \(/);
});

test("eod check --layers: a changed layer byte fails the span that holds it, naming layer and span", () => {
  const copy = path.join(work, "gzip-corrupt");
  fs.cpSync(layouts.gzip.dir, copy, { recursive: true });
  const blob = path.join(copy, "blobs", "sha256", layouts.gzip.layerDigests[0].slice("sha256:".length));
  const bytes = fs.readFileSync(blob);
  bytes[bytes.length >> 1] ^= 0x5a;
  fs.writeFileSync(blob, bytes);
  const r = eod("check", path.join(work, "index-gzip"), "--layers", copy);
  assert.equal(r.status, 1);
  assert.match(r.stdout, /blob [0-9a-f]{64}: remote form digest differs from the manifest/);
  assert.match(r.stdout, /blob [0-9a-f]{64} span \d+: /);
});

test("eod check of an index against another image's layers names the layer that is not there", () => {
  const dir = path.join(work, "index-other");
  eodOk("index", layouts.other.dir, "-o", dir);
  const r = eod("check", dir, "--layers", layouts.gzip.dir);
  assert.equal(r.status, 1);
  assert.match(r.stdout, /its layer sha256:[0-9a-f]{64} is not in .*the index was made for another image/);
});

test("eod index --push: the index goes next to the image; inspect and check by reference", { timeout: 120_000 }, async () => {
  reg = await startRegistry();
  client = new RegistryClient({ credentials: staticCredentials({}) });
  await pushLayoutAsIs(client, { registry: reg.host, repository: "team/app" }, "v1", layouts.gzip);
  const ref = `${reg.host}/team/app:v1`;
  const pushed = JSON.parse(eodOk("index", ref, "--push", "--span", "128K", "--json")) as { dir: string | null; artifact: { digest: string }; source: { digest: string } };
  assert.equal(pushed.dir, null, "a temporary directory with --push alone");
  assert.equal(pushed.source.digest, layouts.gzip.manifestDigest);
  assert.match(pushed.artifact.digest, /^sha256:[0-9a-f]{64}$/);

  const info = JSON.parse(eodOk("inspect", ref, "--summary", "--json")) as { blobs: Array<{ seekIndex: { kind: string } }> };
  assert.deepEqual(info.blobs.map((b) => b.seekIndex.kind), ["gzip", "gzip", "gzip"]);
  assert.match(eodOk("check", ref), /OK \(/);
});
