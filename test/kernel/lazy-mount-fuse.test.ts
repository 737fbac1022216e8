// The lazy-mount suite (test/helpers/lazy-suite.ts) with the FUSE frontend (`eod mount --frontend fuse`), on this
// kernel's file-backed erofs.
import fs from "node:fs";
import { haveRoot } from "../helpers/kernel.ts";
import { lazyMountSuite } from "../helpers/lazy-suite.ts";
import { unavailable } from "../helpers/skip.ts";

lazyMountSuite({
  frontend: "fuse",
  skip: unavailable(!haveRoot() ? "needs root to mount" : !fs.existsSync("/dev/fuse") && "needs /dev/fuse"),
});
