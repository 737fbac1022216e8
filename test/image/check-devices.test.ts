// `eod check` of an EROFS file with extra devices, decided as fsck.erofs does: a device that is not given, or
// a --device for an image with no device table, fails the check (fsck.erofs: "extra devices don't match");
// a device file whose size disagrees with the device table fails it too. What was not checked is said, so
// "OK" never hides an unread device.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { eod, eodOk, haveTool, tool } from "../helpers/cli.ts";
import { unavailable } from "../helpers/skip.ts";

function setup(t: { after(fn: () => void): void }) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "eod-check-dev-"));
  t.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const src = path.join(tmp, "src");
  fs.mkdirSync(src);
  fs.writeFileSync(path.join(src, "big"), Buffer.alloc(300_000, 7));
  fs.writeFileSync(path.join(src, "small"), "hello\n");
  eodOk("build", src, "-o", path.join(tmp, "img"));
  const [bootstrap, data] = eodOk("unpack", path.join(tmp, "img"), "--blobs-to", path.join(tmp, "blobs")).trim().split(" ");
  return { tmp, src, bootstrap, blob: data.slice("device=".length) };
}

test("check of an EROFS file whose extra device is not given fails and says it was not checked", (t) => {
  const { bootstrap, blob } = setup(t);
  const r = eod("check", bootstrap);
  assert.equal(r.status, 1, r.stdout + r.stderr);
  assert.match(r.stdout, /device 1 \([0-9a-f]{64}\): not given \(--device <file>, in device-table order\)/);
  assert.doesNotMatch(r.stdout, /OK/);
  const ok = eodOk("check", bootstrap, "--device", blob);
  assert.match(ok, /: OK \(\d+ entries/);
  assert.match(ok, /\n  not checked: file data: an EROFS file has no data digests/);
  const json = JSON.parse(eodOk("check", "--json", bootstrap, "--device", blob)) as { ok: boolean; notChecked: string[] };
  assert.equal(json.ok, true);
  assert.ok(json.notChecked.some((n) => /file data/.test(n)), JSON.stringify(json));
});

test("check fails when a device file's size disagrees with the device table", (t) => {
  const { tmp, bootstrap, blob } = setup(t);
  for (const [name, size] of [["short", fs.statSync(blob).size - 4096], ["long", fs.statSync(blob).size + 8192]] as const) {
    const copy = path.join(tmp, name);
    fs.copyFileSync(blob, copy);
    fs.truncateSync(copy, size);
    const r = eod("check", bootstrap, "--device", copy);
    assert.equal(r.status, 1, `${name}: ${r.stdout}${r.stderr}`);
    assert.match(r.stdout, new RegExp(`device 1 .*: ${copy} has ${size} bytes, the device table says \\d+ blocks`), r.stdout);
  }
});

test("--device where the image has no device table, or for an image directory, is a usage error", (t) => {
  const { tmp, src, blob } = setup(t);
  const one = path.join(tmp, "one.erofs");
  eodOk("build", src, "--single", one);
  for (const cmd of ["check", "inspect"]) {
    const r = eod(cmd, one, "--device", blob);
    assert.equal(r.status, 2, `${cmd}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, /one\.erofs has no extra devices \(no device table\), but 1 --device was given/);
    const d = eod(cmd, path.join(tmp, "img"), "--device", blob);
    assert.equal(d.status, 2, `${cmd}: ${d.stdout}${d.stderr}`);
    assert.match(d.stderr, /--device is for an EROFS file/);
  }
});

test("agrees with fsck.erofs on a mkfs.erofs --blobdev image", { skip: unavailable(!haveTool("mkfs.erofs") && "needs erofs-utils") }, (t) => {
  const { tmp, src } = setup(t);
  const image = path.join(tmp, "mkfs.erofs");
  const blob = path.join(tmp, "mkfs.blob");
  assert.equal(tool("mkfs.erofs", ["--chunksize=4096", `--blobdev=${blob}`, image, src]).status, 0);
  assert.notEqual(tool("fsck.erofs", [image]).status, 0, "fsck.erofs accepts a missing device");
  assert.equal(eod("check", image).status, 1);
  assert.equal(tool("fsck.erofs", [`--device=${blob}`, image]).status, 0);
  assert.match(eodOk("check", image, "--device", blob), /OK/);
});
