// `eod trace` of the cold-start command (cold-start.ts COLD_CMD) chrooted into a lazy mount of an image: the
// trace a prefetch list is made from (eod convert / eod index --prefetch-from), for the benches' prefetch rows.
import fs from "node:fs";
import path from "node:path";
import { COLD_CMD } from "./cold-start.ts";
import { EOD, NODE } from "./paths.ts";
import { describe, run } from "./run.ts";
import { cleanup as stopCacheDaemon } from "../../test/helpers/lazy.ts";

/** Mounts `ref` under `work` (a fresh cache), traces the command, unmounts: the trace file (<work>/cold.trace.json). */
export async function traceColdStart(ref: string, work: string, env: Record<string, string>): Promise<string> {
  const mnt = path.join(work, "trace-mnt");
  const cache = path.join(work, "trace-cache");
  const traceFile = path.join(work, "cold.trace.json");
  fs.mkdirSync(mnt);
  const eod = async (args: string[]) => {
    const r = await run(NODE, [EOD, ...args], { env, timeoutMs: 300_000 });
    if (r.code !== 0) throw new Error(`eod ${args.join(" ")}: ${describe(r)}\n${r.stderr.slice(-2000)}`);
  };
  try {
    await eod(["mount", ref, mnt, "--cache-dir", cache]);
    await eod(["trace", mnt, "-o", traceFile, "--cache-dir", cache, "--", "chroot", mnt, ...COLD_CMD]);
    await eod(["umount", mnt, "--cache-dir", cache]);
  } finally {
    stopCacheDaemon(mnt, cache);
    fs.rmSync(cache, { recursive: true, force: true });
  }
  return traceFile;
}
