// Names are bytes. eod prints a name that is not printable UTF-8 escaped, the way a user can type it back:
// \xNN for each byte that is not (an invalid UTF-8 byte, a control character) and \\ for a backslash, as
// GNU ls/find escape names; eod inspect --stat takes that form, and errors name directories by such paths.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { escapePath, parsePath } from "../../src/erofs/printable-name.ts";
import { eod, eodOk } from "../helpers/cli.ts";

const bytes = (...parts: Array<string | number[]>) => Buffer.concat(parts.map((p) => (typeof p === "string" ? Buffer.from(p) : Buffer.from(p))));

test("escapePath() and parsePath() round-trip every byte; printable UTF-8 stays as it is", () => {
  for (let b = 1; b < 256; b++) {
    if (b === 0x2f) continue; // "/" separates names
    const name = bytes("a", [b], "z");
    const printed = escapePath([name]);
    assert.doesNotMatch(printed, /\uFFFD/);
    assert.deepEqual(parsePath(printed), [name], `byte 0x${b.toString(16)} printed as ${printed}`);
  }
  assert.equal(escapePath([bytes("héllo"), bytes("日本")]), "/héllo/日本");
  assert.equal(escapePath([bytes("f", [0xff], "o")]), "/f\\xffo");
  assert.equal(escapePath([bytes("a\nb\\c")]), "/a\\x0ab\\\\c");
  assert.equal(escapePath([bytes([0xc3])]), "/\\xc3"); // a cut UTF-8 sequence
  assert.deepEqual(parsePath("/a//./b\\\\x41"), [bytes("a"), bytes("b\\x41")]);
  assert.deepEqual(parsePath("/odd\\q"), [bytes("odd\\q")]); // an unknown escape is a literal backslash
});

test("eod inspect lists non-UTF-8 names escaped and --stat reaches them; errors name directories by path", (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "eod-odd-names-"));
  t.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const src = path.join(tmp, "src");
  fs.mkdirSync(src);
  const at = (...parts: Buffer[]) => Buffer.concat([Buffer.from(src + "/"), ...parts.flatMap((p, i) => (i ? [Buffer.from("/"), p] : [p]))]);
  fs.writeFileSync(at(bytes("f", [0xff], "o")), "latin-1 name\n");
  fs.writeFileSync(at(bytes("a\nb")), "newline\n");
  fs.writeFileSync(at(bytes("back\\slash")), "backslash\n");
  fs.mkdirSync(at(bytes("d", [0xfe])));
  fs.writeFileSync(at(bytes("d", [0xfe]), bytes("inner")), "inside\n");
  fs.symlinkSync(at(bytes("f", [0xff], "o")), at(bytes("link")));
  const image = path.join(tmp, "one.erofs");
  eodOk("build", src, "--single", image);

  const listing = eodOk("inspect", image);
  assert.doesNotMatch(listing, /\uFFFD/);
  for (const p of ["/f\\xffo", "/a\\x0ab", "/back\\\\slash", "/d\\xfe", "/d\\xfe/inner"]) assert.ok(listing.includes(` ${p}\n`), `${p} not in\n${listing}`);
  assert.ok(listing.includes(`/link -> ${src}/f\\xffo`), listing);

  for (const p of ["/f\\xffo", "/d\\xfe/inner", "/back\\\\slash"]) {
    const e = JSON.parse(eodOk("inspect", image, "--stat", p, "--json")) as { path: string; type: string };
    assert.equal(e.path, p);
    assert.equal(e.type, "file");
  }
  const miss = eod("inspect", image, "--stat", "/d\\xfe/nope");
  assert.equal(miss.status, 1, miss.stderr);
  assert.match(miss.stderr, /No such entry \/d\\xfe\/nope: directory \/d\\xfe has no "nope"/);
  assert.doesNotMatch(miss.stderr, /directory \d+/);
});
