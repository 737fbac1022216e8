// A cache daemon with the FUSE frontend built directly (node test/helpers/fuse-daemon.ts <cache-dir>), for tests
// that need one in a process of its own while `eod daemon --frontend fuse` is not there: settings from the
// EOD_* variables, as `eod daemon` reads them; a /dev/fuse fd in EOD_FUSE_FD is served as a holder's would be;
// FUSE_TEST_RESEND=0 journals taken requests instead of asking the kernel to resend them (a kernel before 6.9).
// It writes daemon.pid, exits when idle or on SIGTERM, and logs JSON lines to stderr.
import fs from "node:fs";
import path from "node:path";
import { loadConfig } from "../../src/config/config.ts";
import { Daemon } from "../../src/daemon/daemon.ts";
import { FuseFrontend } from "../../src/frontend/fuse/service.ts";
import { jsonLog } from "../../src/util/log.ts";

const cacheDir = path.resolve(process.argv[2]);
const config = loadConfig({ "cache-dir": cacheDir });
const log = jsonLog((line) => fs.writeSync(2, line));
const held = process.env.EOD_FUSE_FD;
const frontend = new FuseFrontend(log, { cacheDir, inheritedFd: held === undefined ? undefined : Number(held), resend: process.env.FUSE_TEST_RESEND !== "0" });
let stopping: Promise<void> | null = null;
const stop = (why: string, code: number) => {
  stopping ??= (async () => {
    log("info", "test daemon stopping", { why });
    await daemon.stop();
    fs.rmSync(path.join(cacheDir, "daemon.pid"), { force: true });
  })().then(() => process.exit(code), (err: unknown) => { log("error", "stop failed", { err }); process.exit(1); });
};
frontend.onFatal = () => stop("the frontend failed", 1);
const daemon: Daemon = new Daemon({ cacheDir, frontend, log, remote: config.remote, cache: config.cache, onIdle: () => stop("idle", 0) });
process.once("SIGTERM", () => stop("SIGTERM", 0));
await daemon.start();
fs.writeFileSync(path.join(cacheDir, "daemon.pid"), `${process.pid}\n`);
log("info", "test daemon started", { pid: process.pid, mounts: daemon.mounts.length });
