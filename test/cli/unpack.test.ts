// `eod unpack` takes an image directory; given an EROFS file (which needs no unpacking) it says so, with a
// usage error and no stack trace, and creates nothing.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { eod, eodOk } from "../helpers/cli.ts";

test("eod unpack <file.erofs> is a usage error that says what the file is", (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "eod-unpack-"));
  t.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  fs.mkdirSync(path.join(tmp, "src"));
  fs.writeFileSync(path.join(tmp, "src/a"), "hello\n");
  const image = path.join(tmp, "one.erofs");
  eodOk("build", path.join(tmp, "src"), "--single", image);
  const out = path.join(tmp, "blobs");
  const r = eod("unpack", image, "--blobs-to", out);
  const show = `exit ${r.status}\n${r.stderr}`;
  assert.equal(r.status, 2, show);
  assert.match(r.stderr, /^eod: .*one\.erofs is an EROFS file, not an image directory/, show);
  assert.doesNotMatch(r.stderr, /TypeError|\n\s+at /, show);
  assert.equal(r.stdout, "");
  assert.equal(fs.existsSync(out), false, "--blobs-to was created");
});
