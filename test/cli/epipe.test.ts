// A reader that stops early (`eod inspect img | head -1`) closes the pipe under eod: eod must stop quietly,
// as `ls | head -1` does (exit status 141, 128 + SIGPIPE, no message), never with an unhandled EPIPE trace.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { eodOk, REPO } from "../helpers/cli.ts";

const CLI = path.join(REPO, "bin/eod.mjs");

/** Runs `eod <args> | head -1` in bash; returns eod's exit status, its stderr and what head printed. */
function intoHead(args: string[], tmp: string): { status: number; stderr: string; head: string } {
  const errFile = path.join(tmp, "stderr");
  const quoted = [process.execPath, CLI, ...args].map((a) => `'${a.replaceAll("'", `'\\''`)}'`).join(" ");
  const r = spawnSync("bash", ["-c", `${quoted} 2>'${errFile}' | head -1; exit "\${PIPESTATUS[0]}"`], { encoding: "utf8" });
  return { status: r.status ?? -1, stderr: fs.readFileSync(errFile, "utf8"), head: r.stdout };
}

test("eod inspect | head -1 stops quietly with 141 when the reader goes away", (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "eod-epipe-"));
  t.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const src = path.join(tmp, "src");
  fs.mkdirSync(src);
  // more listing than a pipe buffer holds (64 KiB), so eod is still writing when head exits
  for (let i = 0; i < 2000; i++) fs.writeFileSync(path.join(src, `file-with-a-longish-name-${String(i).padStart(5, "0")}`), "");
  eodOk("build", src, "--single", path.join(tmp, "one.erofs"));
  for (const args of [["inspect", path.join(tmp, "one.erofs")], ["inspect", "--json", path.join(tmp, "one.erofs")]]) {
    const r = intoHead(args, tmp);
    assert.equal(r.stderr, "", `eod ${args.join(" ")} wrote to stderr:\n${r.stderr}`);
    assert.equal(r.status, 141, `eod ${args.join(" ")}`);
    assert.ok(r.head.length > 0);
  }
});
