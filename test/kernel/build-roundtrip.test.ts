// Images built by `eod build` are mounted by the real kernel (file-backed erofs) and must match the source
// tree in every byte and attribute; fsck.erofs must accept them.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { makeAwkwardTree, makeSmallTree } from "../helpers/awkward-tree.ts";
import { eodOk, haveTool, tool } from "../helpers/cli.ts";
import { haveRoot, tempDir } from "../helpers/kernel.ts";
import { mountAndCompare } from "../helpers/mount-compare.ts";
import { unavailable } from "../helpers/skip.ts";

const skip = unavailable(!haveRoot() ? "needs root to mount" : !haveTool("fsck.erofs") ? "needs fsck.erofs (erofs-utils)" : false);
let work = "";
let awkward = "";
let small = "";

before(() => {
  if (skip) return;
  work = tempDir("eod-roundtrip-");
  awkward = path.join(work, "awkward");
  small = path.join(work, "small");
  fs.mkdirSync(awkward);
  fs.mkdirSync(small);
  makeAwkwardTree(awkward);
  makeSmallTree(small);
});

after(() => { if (work) fs.rmSync(work, { recursive: true, force: true }); });

function fsck(image: string, devices: string[] = []): void {
  const r = tool("fsck.erofs", [...devices.map((d) => `--device=${d}`), "--extract", image]);
  assert.equal(r.status, 0, `fsck.erofs ${image} failed:\n${r.stderr}${r.stdout}`);
}

/** Builds the image directory, unpacks its blobs and returns the bootstrap and the mount data string. */
function buildLazy(src: string, name: string, ...opts: string[]): { dir: string; bootstrap: string; data: string; devices: string[] } {
  const dir = path.join(work, name);
  eodOk("build", src, "-o", dir, ...opts);
  const line = eodOk("unpack", dir, "--blobs-to", `${dir}-blobs`).trim();
  const [bootstrap, data = ""] = line.split(" ");
  const devices = data ? data.split(",").map((d) => d.slice("device=".length)) : [];
  return { dir, bootstrap, data, devices };
}

test("--single image of the awkward tree mounts identical to the source", { skip, timeout: 600_000 }, async () => {
  const image = path.join(work, "awkward.erofs");
  eodOk("build", awkward, "--single", image);
  fsck(image);
  await mountAndCompare(awkward, image);
});

test("lazy image (bootstrap + zstd blob) of the awkward tree mounts identical via unpack", { skip, timeout: 600_000 }, async () => {
  const img = buildLazy(awkward, "awkward-img");
  fsck(img.bootstrap, img.devices);
  await mountAndCompare(awkward, img.bootstrap, img.data);
  eodOk("check", img.dir);
});

for (const variant of [["--compress", "lz4"], ["--compress", "none", "--chunk-size", "4K"], ["--chunk-size", "64K", "--inline-max", "4K"]]) {
  test(`lazy image ${variant.join(" ")} of a small tree mounts identical`, { skip, timeout: 120_000 }, async () => {
    const img = buildLazy(small, `small-${variant.join("").replace(/\W/g, "")}`, ...variant);
    fsck(img.bootstrap, img.devices);
    await mountAndCompare(small, img.bootstrap, img.data);
    eodOk("check", img.dir);
  });
}

test("the same tree gives the same bytes (deterministic output)", { skip, timeout: 120_000 }, () => {
  const a = path.join(work, "det-a");
  const b = path.join(work, "det-b");
  eodOk("build", small, "-o", a);
  eodOk("build", small, "-o", b);
  assert.equal(fs.readFileSync(path.join(a, "manifest.json"), "utf8"), fs.readFileSync(path.join(b, "manifest.json"), "utf8"));
  eodOk("build", small, "--single", `${a}.erofs`);
  eodOk("build", small, "--single", `${b}.erofs`);
  assert.ok(fs.readFileSync(`${a}.erofs`).equals(fs.readFileSync(`${b}.erofs`)));
});
