// An xattr whose value is empty is a real xattr (setfattr -n user.x -v ""): GNU tar --xattrs writes it as a
// PAX record "SCHILY.xattr.user.x=" and restores it, mkfs.erofs --tar keeps it (erofs-utils lib/tar.c stores
// a zero-length value), and so must a build from that tar. An empty value deletes only the plain keywords
// (path, mtime, ...), as POSIX says for an extended header overriding a global one.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parsePax } from "../../src/mkfs/layers/pax.ts";
import { eodOk, haveTool } from "../helpers/cli.ts";
import { unavailable, skipTest } from "../helpers/skip.ts";

function record(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len++;
  return `${len}${body}`;
}

test("parsePax() keeps an empty SCHILY.xattr / LIBARCHIVE.xattr value; an empty plain keyword is still a delete", () => {
  const into = parsePax(Buffer.from(record("path", "a") + record("SCHILY.xattr.user.full", "abc")), new Map(), "t");
  parsePax(Buffer.from(record("SCHILY.xattr.user.empty", "") + record("LIBARCHIVE.xattr.user.e2", "") + record("path", "")), into, "t");
  assert.deepEqual([...into.keys()].sort(), ["LIBARCHIVE.xattr.user.e2", "SCHILY.xattr.user.empty", "SCHILY.xattr.user.full"]);
  assert.equal(into.get("SCHILY.xattr.user.empty")!.length, 0);
});

const tools = ["tar", "setfattr", "getfattr"].every(haveTool);

test("a layer made by GNU tar --xattrs keeps a file's empty-valued xattr", { skip: unavailable(!tools && "needs GNU tar, setfattr and getfattr (attr)") }, (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "eod-empty-xattr-"));
  t.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const src = path.join(tmp, "src");
  fs.mkdirSync(src);
  fs.writeFileSync(path.join(src, "f"), "hi\n");
  for (const [n, v] of [["user.empty", ""], ["user.full", "abc"]]) {
    const r = spawnSync("setfattr", ["-n", n, "-v", v, path.join(src, "f")], { encoding: "utf8" });
    if (r.status !== 0) return skipTest(t, `setfattr on ${tmp}: ${r.stderr.trim()}`);
  }
  const tar = path.join(tmp, "layer.tar");
  const made = spawnSync("tar", ["--xattrs", "--xattrs-include=*", "--format=posix", "-cf", tar, "-C", src, "f"], { encoding: "utf8" });
  assert.equal(made.status, 0, made.stderr);
  assert.ok(fs.readFileSync(tar).includes(" SCHILY.xattr.user.empty=\n"), "GNU tar wrote no empty-valued record");

  // The reference: GNU tar restores the empty xattr.
  const back = path.join(tmp, "back");
  fs.mkdirSync(back);
  assert.equal(spawnSync("tar", ["--xattrs", "--xattrs-include=*", "-xf", tar, "-C", back]).status, 0);
  const restored = spawnSync("getfattr", ["--absolute-names", "-d", path.join(back, "f")], { encoding: "utf8" }).stdout;
  assert.match(restored, /^user\.empty=""$/m);

  const img = path.join(tmp, "img");
  eodOk("build", tar, "-o", img);
  const stat = JSON.parse(eodOk("inspect", img, "--stat", "/f", "--json")) as { xattrs?: Record<string, string> };
  assert.deepEqual(stat.xattrs, { "user.empty": "", "user.full": Buffer.from("abc").toString("base64") });
});
