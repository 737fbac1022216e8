import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { getXattr, listXattrs, setXattr } from "../../src/sys/index.ts";
import { haveRoot, tempDir } from "../helpers/kernel.ts";
import { unavailable } from "../helpers/skip.ts";

const ROOT_ONLY = unavailable(haveRoot() ? false : "trusted.* xattrs need root");

function fixture(): { file: string; link: string } {
  const dir = tempDir("eod-xattr-");
  const file = path.join(dir, "file");
  fs.writeFileSync(file, "x");
  const link = path.join(dir, "link");
  fs.symlinkSync("file", link);
  return { file, link };
}

test("setXattr()/getXattr()/listXattrs() round-trip user.* on a regular file", () => {
  const { file } = fixture();
  const value = Uint8Array.from([0, 1, 2, 255, 0]);
  setXattr(file, "user.eod.a", value);
  setXattr(file, "user.eod.empty", new Uint8Array(0));
  assert.deepEqual(new Uint8Array(getXattr(file, "user.eod.a")), value);
  assert.equal(getXattr(file, "user.eod.empty").length, 0);
  const names = listXattrs(file);
  assert.ok(names.includes("user.eod.a") && names.includes("user.eod.empty"), `got ${names}`);
});

test("setXattr() replaces a value with a longer one, and getXattr() reads all of it", () => {
  const { file } = fixture();
  setXattr(file, "user.eod.grow", Buffer.from("short"));
  const long = Buffer.alloc(3000, 0x61);
  setXattr(file, "user.eod.grow", long);
  assert.deepEqual(getXattr(file, "user.eod.grow"), long);
});

test("setXattr() takes a Uint8Array view at a nonzero byteOffset", () => {
  const { file } = fixture();
  const backing = Buffer.from("XXhelloYY");
  setXattr(file, "user.eod.view", backing.subarray(2, 7));
  assert.equal(getXattr(file, "user.eod.view").toString(), "hello");
});

test("xattr calls act on a symlink itself, not its target (trusted.*)", { skip: ROOT_ONLY }, () => {
  const { file, link } = fixture();
  setXattr(link, "trusted.eod.l", Buffer.from("on-link"));
  setXattr(file, "trusted.eod.f", Buffer.from("on-file"));
  assert.equal(getXattr(link, "trusted.eod.l").toString(), "on-link");
  assert.ok(listXattrs(link).includes("trusted.eod.l"));
  assert.ok(!listXattrs(link).includes("trusted.eod.f"));
  assert.ok(!listXattrs(file).includes("trusted.eod.l"));
  assert.equal(getXattr(file, "trusted.eod.f").toString(), "on-file");
});

test("setXattr() of user.* on a symlink fails with EPERM (kernel rule)", () => {
  const { link } = fixture();
  assert.throws(() => setXattr(link, "user.eod.x", Buffer.from("v")), { code: "SYS", errno: "EPERM" });
});

test("xattr calls work on a fifo and a device node without opening them", { skip: ROOT_ONLY }, () => {
  const dir = tempDir("eod-xattr-");
  const fifo = path.join(dir, "fifo");
  const dev = path.join(dir, "null");
  execFileSync("mkfifo", [fifo]);
  execFileSync("mknod", [dev, "c", "1", "3"]);
  for (const p of [fifo, dev]) {
    setXattr(p, "trusted.eod.t", Buffer.from(p));
    assert.equal(getXattr(p, "trusted.eod.t").toString(), p);
    assert.ok(listXattrs(p).includes("trusted.eod.t"));
  }
});

test("getXattr() of a missing path throws SysError ENOENT", () => {
  const missing = path.join(tempDir("eod-xattr-"), "nope");
  assert.throws(() => getXattr(missing, "user.x"), (err: unknown) => {
    assert.ok(err instanceof Error);
    assert.equal((err as { code?: string }).code, "SYS");
    assert.equal((err as { errno?: string }).errno, "ENOENT");
    assert.equal((err as { syscall?: string }).syscall, "lgetxattr");
    assert.match(err.message, /nope/);
    return true;
  });
  assert.throws(() => listXattrs(missing), { errno: "ENOENT", syscall: "llistxattr" });
});

test("getXattr() of an absent attribute throws SysError ENODATA", () => {
  const { file } = fixture();
  assert.throws(() => getXattr(file, "user.eod.absent"), { errno: "ENODATA" });
});
