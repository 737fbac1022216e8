import { test } from "node:test";
import assert from "node:assert/strict";
import { SysError } from "../../src/errors.ts";
import { check, errnoName, toSafeNumber } from "../../src/sys/index.ts";

test("errnoName() maps numbers to the names Node uses", () => {
  assert.equal(errnoName(2), "ENOENT");
  assert.equal(errnoName(95), "ENOTSUP"); // not its alias EOPNOTSUPP
  assert.equal(errnoName(11), "EAGAIN"); // not EWOULDBLOCK
  assert.equal(errnoName(9999), "E9999");
});

test("check() passes results through and converts safe BigInts", () => {
  assert.equal(check(0, "x"), 0);
  assert.equal(check(2n ** 40n, "x"), 2 ** 40);
  assert.throws(() => toSafeNumber(2n ** 60n, "lseek"), RangeError);
});

test("check() of -1 throws a SysError carrying the syscall and detail", () => {
  assert.throws(() => check(-1, "frob", () => "/some/path"), (err: unknown) => {
    assert.ok(err instanceof SysError);
    assert.equal(err.syscall, "frob");
    assert.match(err.message, /^frob \/some\/path failed: E/);
    return true;
  });
});
