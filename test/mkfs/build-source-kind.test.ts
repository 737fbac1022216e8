// `eod build` decides by content what a file source is. A file that is neither a directory nor a layer
// archive is refused with what it is (an EROFS image's leading zeros are not an empty tar), and nothing is
// written; a real empty tar still builds an empty image.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { eod, eodOk } from "../helpers/cli.ts";
import { oneFileImage } from "../helpers/one-file-image.ts";


function assertRefused(args: string[], what: RegExp, out: string): void {
  const r = eod(...args);
  const show = `eod ${args.join(" ")}: exit ${r.status}\n${r.stderr}${r.stdout}`;
  assert.equal(r.status, 1, show);
  assert.match(r.stderr, what, show);
  assert.doesNotMatch(r.stderr, /\n\s+at /, show);
  assert.equal(fs.existsSync(out), false, `${out} was written\n${show}`);
}

test("build from an EROFS image file says it is one instead of building an empty image", (t) => {
  const { tmp, image } = oneFileImage(t, "eod-source-kind-");
  const out = path.join(tmp, "out");
  assertRefused(["build", image, "-o", out], /one\.erofs is an EROFS image, not a directory or a layer archive/, out);
  assertRefused(["build", "--layer", image, "-o", out], /one\.erofs is an EROFS image, not a tar, tar\.gz or tar\.zst layer/, out);
  assertRefused(["build", image, image, "-o", out], /one\.erofs is an EROFS image/, out);
});

test("a file whose first block is zeros but is not all zeros is not an empty tar", (t) => {
  const { tmp } = oneFileImage(t, "eod-source-kind-");
  const odd = path.join(tmp, "odd.bin");
  fs.writeFileSync(odd, Buffer.concat([Buffer.alloc(1536), Buffer.from("not a tar header at all")]));
  const out = path.join(tmp, "out");
  assertRefused(["build", odd, "-o", out], /odd\.bin is not a directory or a layer archive/, out);
});

test("an empty tar (GNU tar, only zero blocks) still builds an empty image", (t) => {
  const { tmp } = oneFileImage(t, "eod-source-kind-");
  const empty = path.join(tmp, "empty.tar");
  const r = spawnSync("tar", ["-cf", empty, "-T", "/dev/null"]);
  assert.equal(r.status, 0, String(r.stderr));
  const out = path.join(tmp, "out");
  eodOk("build", empty, "-o", out);
  assert.ok(fs.existsSync(path.join(out, "manifest.json")));
});
