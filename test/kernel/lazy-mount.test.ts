// The lazy-mount suite (test/helpers/lazy-suite.ts) with the fanotify frontend.
import { haveRoot } from "../helpers/kernel.ts";
import { lazyMountSuite } from "../helpers/lazy-suite.ts";
import { unavailable } from "../helpers/skip.ts";
import { kernelSupportsPreContent } from "../../src/sys/fanotify.ts";

const support = haveRoot() ? kernelSupportsPreContent() : { ok: false, missing: ["root"] };
lazyMountSuite({
  frontend: "fanotify",
  skip: unavailable(!haveRoot() ? "needs root to mount" : !support.ok ? `kernel lacks: ${support.missing.join("; ")}` : false),
});
