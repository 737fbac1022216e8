// The daemon's mount table on disk: replaced durably, and a corrupt one is an error naming the file, kept
// aside, never read as "no mounts".
import { after, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { loadState, saveState, stateFile, type DaemonState } from "../../src/daemon/state.ts";

const root = fs.mkdtempSync(path.join(os.tmpdir(), "eod-state-"));
after(() => fs.rmSync(root, { recursive: true, force: true }));
let n = 0;
const freshDir = () => fs.mkdtempSync(path.join(root, `c${++n}-`));

const STATE: DaemonState = {
  version: 1,
  mounts: [{
    mountPoint: "/mnt/a", source: "http://127.0.0.1:1/img/", frontend: "fanotify", bootstrapPath: "/c/bootstraps/x.erofs",
    mountSource: "/c/bootstraps/x.erofs", manifestDigest: "sha256:00", blobs: [{ id: "ab".repeat(32), remotePath: "blobs/ab" }], mountedAt: "2026-01-01T00:00:00.000Z",
  }],
};

test("saveState() then loadState() gives the table back, with no temporary file left", () => {
  const dir = freshDir();
  saveState(dir, STATE);
  assert.deepEqual(loadState(dir), STATE);
  assert.deepEqual(fs.readdirSync(dir), ["state.json"]);
  assert.equal(fs.statSync(stateFile(dir)).mode & 0o777, 0o600);
});

test("no state.json yet: no mounts", () => {
  assert.deepEqual(loadState(freshDir()), { version: 1, mounts: [] });
});

for (const [what, text] of [
  ["cut short", JSON.stringify(STATE).slice(0, 40)],
  ["zeros after a crash", "\0".repeat(64)],
  ["another version", JSON.stringify({ version: 7, mounts: [] })],
  ["mounts that are not records", JSON.stringify({ version: 1, mounts: [{ mountPoint: 3 }] })],
] as const) {
  test(`a corrupt state.json (${what}) is an error naming it, and is kept aside; the next start begins empty`, () => {
    const dir = freshDir();
    fs.writeFileSync(stateFile(dir), text);
    assert.throws(() => loadState(dir), (e: Error & { code?: string }) => e.code === "DAEMON" && e.message.includes(`${stateFile(dir)} is corrupt`) && e.message.includes("state.json.corrupt-"));
    const kept = fs.readdirSync(dir).filter((f) => f.startsWith("state.json.corrupt-"));
    assert.equal(kept.length, 1);
    assert.equal(fs.readFileSync(path.join(dir, kept[0]), "utf8"), text, "the bad file is kept as it was");
    assert.deepEqual(loadState(dir), { version: 1, mounts: [] });
  });
}

test("a state.json that cannot be read is an error naming it, and stays where it is", () => {
  const dir = freshDir();
  fs.mkdirSync(stateFile(dir));
  assert.throws(() => loadState(dir), { code: "DAEMON", message: new RegExp(`Cannot read the mount table ${stateFile(dir)}: EISDIR`) });
  assert.ok(fs.statSync(stateFile(dir)).isDirectory());
});

test("a failed save is thrown, and the old table stays", () => {
  const dir = freshDir();
  saveState(dir, STATE);
  fs.mkdirSync(`${stateFile(dir)}.tmp-${process.pid}`); // the temporary file cannot be created
  assert.throws(() => saveState(dir, { version: 1, mounts: [] }), { code: "EISDIR" });
  assert.deepEqual(loadState(dir), STATE);
});
