// eod inspect reads only metadata, so an image directory needs only manifest.json and the bootstrap: with
// blobs/ absent (the chunk tables with it) it still prints the summary, the listing and --stat, and says
// which chunk tables it did not have. eod check of the same directory reports what is missing.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { eod, eodOk } from "../helpers/cli.ts";

test("eod inspect of an image directory holding only manifest.json and the bootstrap", (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "eod-inspect-meta-"));
  t.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const src = path.join(tmp, "src");
  fs.mkdirSync(path.join(src, "dir"), { recursive: true });
  fs.writeFileSync(path.join(src, "dir/big"), Buffer.alloc(500_000, 3));
  fs.writeFileSync(path.join(src, "small"), "hello\n");
  fs.symlinkSync("dir/big", path.join(src, "link"));
  const img = path.join(tmp, "img");
  eodOk("build", src, "-o", img);
  const full = eodOk("inspect", img);
  const fullStat = JSON.parse(eodOk("inspect", img, "--stat", "/dir/big", "--json")) as unknown;

  fs.rmSync(path.join(img, "blobs"), { recursive: true });
  fs.rmSync(path.join(img, "bootstrap.erofs.zst"));
  assert.deepEqual(fs.readdirSync(img).sort(), ["bootstrap.erofs", "manifest.json"]);
  const listing = eodOk("inspect", img);
  const entries = (text: string) => text.split("\n").filter((l) => /^(dir|file|symlink) /.test(l));
  assert.deepEqual(entries(listing), entries(full));
  assert.match(listing, /blob [0-9a-f]{64}: \d+ chunks, kernel \d+ B, remote \d+ B zstd \(chunk table not here: blobs\/[0-9a-f]{64}\.ctab\)/);
  assert.deepEqual(JSON.parse(eodOk("inspect", img, "--stat", "/dir/big", "--json")), fullStat);
  assert.ok(Array.isArray((JSON.parse(eodOk("inspect", img, "--json")) as { entries: unknown[] }).entries));

  const check = eod("check", img);
  assert.equal(check.status, 1, check.stdout + check.stderr);
  assert.match(check.stdout, /Cannot read .*: ENOENT/); // check needs every file
});
