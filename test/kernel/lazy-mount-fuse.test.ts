// The lazy-mount suite (test/helpers/lazy-suite.ts) with the FUSE frontend, on this kernel's file-backed erofs.
import fs from "node:fs";
import { haveRoot } from "../helpers/kernel.ts";
import { startFuseDaemon } from "../helpers/fuse.ts";
import { lazyMountSuite } from "../helpers/lazy-suite.ts";
import { unavailable } from "../helpers/skip.ts";

lazyMountSuite({
  frontend: "fuse",
  skip: unavailable(!haveRoot() ? "needs root to mount" : !fs.existsSync("/dev/fuse") && "needs /dev/fuse"),
  // Until `eod daemon --frontend fuse` builds this frontend, each cache's daemon is test/helpers/fuse-daemon.ts.
  startDaemon: async (cache, env) => { await startFuseDaemon(cache, undefined, env); },
  foregroundSkip: "eod mount --frontend fuse --foreground (the daemon's frontend selection) is not wired yet",
});
