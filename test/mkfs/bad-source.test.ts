// `eod build` on a source it cannot use: an unreadable file or directory, a missing source, a source that is a
// file, a bad option. Each must fail with a message naming the culprit and the documented exit code (1 for a
// build error, 2 for a usage error), and must leave nothing behind: no output, no `.<name>.tmp-*` next to
// it, and an earlier output untouched.
//
// Root reads any file whatever its mode, so when running as root the unreadable cases run the CLI as
// nobody (setpriv, util-linux); as any other user chmod 000 is enough.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { buildImage } from "../../src/mkfs/image.ts";
import { buildSingle } from "../../src/mkfs/single.ts";
import { unavailable } from "../helpers/skip.ts";

const CLI = path.resolve(import.meta.dirname, "../../src/cli/main.ts");
const NOBODY = 65534;
const IS_ROOT = process.getuid?.() === 0;
const HAVE_SETPRIV = spawnSync("setpriv", ["--version"]).status === 0;

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `eod <args>` as the current user. */
function eod(args: string[]): Run {
  return finish(spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", timeout: 60_000 }));
}

/** Runs `eod <args>` as a user that cannot read mode-000 files (nobody when we are root). */
function eodUnprivileged(args: string[]): Run {
  if (!IS_ROOT) return eod(args);
  const setpriv = [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, "--clear-groups", process.execPath, CLI, ...args];
  return finish(spawnSync("setpriv", setpriv, { encoding: "utf8", timeout: 60_000, cwd: "/" }));
}

function finish(r: ReturnType<typeof spawnSync>): Run {
  if (r.error) throw r.error;
  return { status: r.status, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** A clean failure: exit `code`, one "eod: …" message naming `culprit`, no stack trace, nothing on stdout. */
function assertFailed(r: Run, code: number, culprit: string): void {
  const show = `exit ${r.status}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
  assert.equal(r.status, code, show);
  assert.equal(r.stdout, "", show);
  assert.match(r.stderr, /^eod: /, show);
  assert.ok(r.stderr.includes(culprit), `stderr does not name ${culprit}\n${show}`);
  assert.doesNotMatch(r.stderr, /\n\s+at /, `stderr holds a stack trace\n${show}`);
}

/** The entries of `dir` (sorted); a failed build must leave no `.<name>.tmp-*` here. */
function listing(dir: string): string[] {
  return fs.readdirSync(dir).sort();
}

function digestOfTree(dir: string): string {
  const h = createHash("sha256");
  for (const name of fs.readdirSync(dir, { recursive: true }).map(String).sort()) {
    const p = path.join(dir, name);
    h.update(name);
    if (fs.statSync(p).isFile()) h.update(fs.readFileSync(p));
  }
  return h.digest("hex");
}

/**
 * A temp dir that an unprivileged user can traverse, holding `src/` (readable except for what `lock` makes
 * unreadable) and `out/`, an empty directory the unprivileged user may write in.
 */
function setup(t: test.TestContext): { root: string; src: string; out: string } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "eod-bad-source-"));
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  fs.chmodSync(root, 0o755);
  const src = path.join(root, "src");
  fs.mkdirSync(path.join(src, "sub", "deeper"), { recursive: true });
  fs.writeFileSync(path.join(src, "readable.txt"), "readable\n");
  fs.writeFileSync(path.join(src, "sub", "secret.bin"), Buffer.alloc(10_000, 0x5a));
  fs.writeFileSync(path.join(src, "sub", "deeper", "inner.txt"), "inner\n");
  fs.writeFileSync(path.join(src, "zz-last.txt"), "last\n");
  for (const d of [src, path.join(src, "sub"), path.join(src, "sub", "deeper")]) fs.chmodSync(d, 0o755);
  const out = path.join(root, "out");
  fs.mkdirSync(out, { mode: 0o755 });
  if (IS_ROOT) fs.chownSync(out, NOBODY, NOBODY);
  return { root, src, out };
}

const unprivileged = { skip: unavailable(IS_ROOT && !HAVE_SETPRIV ? "running as root without setpriv (util-linux) to drop privileges" : false) };

test("build -o fails on an unreadable file, names it and leaves no output or temp dir", unprivileged, (t) => {
  const { src, out } = setup(t);
  const secret = path.join(src, "sub", "secret.bin");
  fs.chmodSync(secret, 0o000);
  const r = eodUnprivileged(["build", src, "-o", path.join(out, "img")]);
  assertFailed(r, 1, secret);
  assert.deepEqual(listing(out), []);
});

test("build --single fails on an unreadable file, names it and leaves no output or temp file", unprivileged, (t) => {
  const { src, out } = setup(t);
  const secret = path.join(src, "sub", "secret.bin");
  fs.chmodSync(secret, 0o000);
  const r = eodUnprivileged(["build", src, "--single", path.join(out, "one.erofs")]);
  assertFailed(r, 1, secret);
  assert.deepEqual(listing(out), []);
});

test("build -o fails on an unreadable directory, names it and leaves nothing behind", unprivileged, (t) => {
  const { src, out } = setup(t);
  const locked = path.join(src, "sub", "deeper");
  fs.chmodSync(locked, 0o000);
  const r = eodUnprivileged(["build", src, "-o", path.join(out, "img")]);
  assertFailed(r, 1, locked);
  assert.deepEqual(listing(out), []);
});

test("a failed build -o leaves an earlier image directory untouched", unprivileged, async (t) => {
  const { src, out } = setup(t);
  const img = path.join(out, "img");
  await buildImage(src, img, { chunkSize: 64 * 1024 });
  if (IS_ROOT) for (const p of [img, ...fs.readdirSync(img, { recursive: true }).map((n) => path.join(img, String(n)))]) fs.chownSync(p, NOBODY, NOBODY);
  const before = digestOfTree(img);
  const secret = path.join(src, "sub", "secret.bin");
  fs.chmodSync(secret, 0o000);
  const r = eodUnprivileged(["build", src, "-o", img]);
  assertFailed(r, 1, secret);
  assert.deepEqual(listing(out), ["img"]);
  assert.equal(digestOfTree(img), before);
});

test("a failed build --single leaves an earlier image file untouched", unprivileged, async (t) => {
  const { src, out } = setup(t);
  const file = path.join(out, "one.erofs");
  await buildSingle(src, file);
  if (IS_ROOT) fs.chownSync(file, NOBODY, NOBODY);
  const before = fs.readFileSync(file);
  const secret = path.join(src, "sub", "secret.bin");
  fs.chmodSync(secret, 0o000);
  const r = eodUnprivileged(["build", src, "--single", file]);
  assertFailed(r, 1, secret);
  assert.deepEqual(listing(out), ["one.erofs"]);
  assert.deepEqual(fs.readFileSync(file), before);
});

test("build of a source directory that does not exist names it, exits 1 and creates nothing", (t) => {
  const { root, out } = setup(t);
  const missing = path.join(root, "vanished");
  assertFailed(eod(["build", missing, "-o", path.join(out, "img")]), 1, missing);
  assertFailed(eod(["build", missing, "--single", path.join(out, "one.erofs")]), 1, missing);
  assert.deepEqual(listing(out), []);
});

test("build of a source that is a regular file says it is not a directory", (t) => {
  const { src, out } = setup(t);
  const file = path.join(src, "readable.txt");
  for (const target of [["-o", path.join(out, "img")], ["--single", path.join(out, "one.erofs")]]) {
    const r = eod(["build", file, ...target]);
    assertFailed(r, 1, file);
    assert.match(r.stderr, /not a directory/);
  }
  assert.deepEqual(listing(out), []);
});

test("build --chunk-size 3000 is a usage error (exit 2) that names the option", (t) => {
  const { src, out } = setup(t);
  for (const target of [["-o", path.join(out, "img")], ["--single", path.join(out, "one.erofs")]]) {
    const r = eod(["build", src, ...target, "--chunk-size", "3000"]);
    assertFailed(r, 2, "--chunk-size");
    assert.ok(r.stderr.includes("3000"), r.stderr);
  }
  assert.deepEqual(listing(out), []);
});
