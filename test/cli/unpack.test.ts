// `eod unpack` takes an image directory; given an EROFS file (which needs no unpacking) it says so, with a
// usage error and no stack trace, and creates nothing.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { eod } from "../helpers/cli.ts";
import { oneFileImage } from "../helpers/one-file-image.ts";

test("eod unpack <file.erofs> is a usage error that says what the file is", (t) => {
  const { tmp, image } = oneFileImage(t, "eod-unpack-");
  const out = path.join(tmp, "blobs");
  const r = eod("unpack", image, "--blobs-to", out);
  const show = `exit ${r.status}\n${r.stderr}`;
  assert.equal(r.status, 2, show);
  assert.match(r.stderr, /^eod: .*one\.erofs is an EROFS file, not an image directory/, show);
  assert.doesNotMatch(r.stderr, /TypeError|\n\s+at /, show);
  assert.equal(r.stdout, "");
  assert.equal(fs.existsSync(out), false, "--blobs-to was created");
});
