// A frontend whose kernel fd fails (poll reports an error) can no longer answer anything: it tells the daemon
// (onFatal), and the daemon exits non-zero so its holder starts a fresh one. The failure is real, not mocked:
// the frontends are handed the write end of a FIFO whose reader is gone, which epoll reports as EPOLLERR, so
// libuv's poll fails exactly as it would on a broken fanotify group or /dev/cachefiles.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { FanotifyFrontend } from "../../src/frontend/fanotify/service.ts";
import { FscacheFrontend } from "../../src/frontend/fscache/service.ts";
import type { Frontend } from "../../src/frontend/frontend.ts";
import { REPO } from "../helpers/cli.ts";

/** An fd whose poll fails: a FIFO's write end after its only reader closed. */
function brokenFd(dir: string): number {
  const fifo = path.join(dir, "fifo");
  execFileSync("mkfifo", [fifo]);
  const reader = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  const writer = fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
  fs.closeSync(reader);
  return writer;
}

/** The error a frontend made by `make` on a broken fd reports through onFatal once it is ready. */
async function fatalOf(make: (fd: number, dir: string) => Frontend): Promise<unknown> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "eod-fatal-"));
  let f: Frontend | null = null;
  try {
    f = make(brokenFd(dir), dir);
    return await new Promise<unknown>((resolve) => {
      f!.onFatal = resolve;
      f!.ready?.();
    });
  } finally {
    await f?.close().catch(() => {});
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test("fanotify: a failed poll of the group is fatal (onFatal, logged once)", async () => {
  const log: string[] = [];
  const err = await fatalOf((fd, dir) => new FanotifyFrontend((_l, msg) => log.push(msg), { inheritedFd: fd, cacheDir: dir }));
  assert.equal((err as { syscall?: string }).syscall, "poll", String(err));
  assert.deepEqual(log.filter((m) => m.includes("can no longer serve")), ["polling the fanotify group failed: the fanotify frontend can no longer serve"]);
});

test("fscache: a failed poll of /dev/cachefiles is fatal", async () => {
  const log: string[] = [];
  const err = await fatalOf((fd, dir) => new FscacheFrontend((_l, msg) => log.push(msg), { cacheDir: dir, inheritedFd: fd }));
  assert.equal((err as { syscall?: string }).syscall, "poll", String(err));
  assert.ok(log.some((m) => m.includes("polling /dev/cachefiles failed")), log.join("\n"));
});

test("a daemon whose frontend fails exits non-zero (its holder then starts a fresh one)", { timeout: 60_000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "eod-fatal-daemon-"));
  const fd = brokenFd(dir);
  try {
    const logFile = path.join(dir, "daemon.log");
    const child = spawn(process.execPath, [path.join(REPO, "bin/eod.mjs"), "daemon", "--cache-dir", path.join(dir, "cache"), "--frontend", "fanotify", "--log-file", logFile], {
      stdio: ["ignore", "ignore", "pipe", fd], env: { ...process.env, EOD_FANOTIFY_FD: "3" }, // as a holder hands its group over
    });
    let stderr = "";
    child.stderr!.on("data", (c: Buffer) => { stderr += c; });
    const code = await new Promise<number | null>((resolve) => child.once("exit", (c) => resolve(c)));
    const log = fs.existsSync(logFile) ? fs.readFileSync(logFile, "utf8") : "";
    assert.notEqual(code, 0, `exit code ${code}\n${stderr}\n${log}`);
    assert.match(log, /polling the fanotify group failed: the fanotify frontend can no longer serve/);
    assert.match(log, /daemon stopped/, "it stopped cleanly first (mounts are left for the next daemon)");
  } finally {
    fs.closeSync(fd);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
