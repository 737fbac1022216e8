// The cold-start workload every lazy-mount benchmark times, and the link it runs over, so that their numbers
// compare: `chroot <mnt> python3 -c 'import json'` behind a server throttled to 20 MB/s plus 20 ms a request.
import { run, type RunResult } from "./run.ts";

export const COLD_CMD = ["python3", "-c", "import json"];
/** Bytes/s of the throttled server (`eod serve --rate`). */
export const RATE = 20_000_000;
/** Milliseconds the throttled server waits before each answer (`eod serve --latency`). */
export const LATENCY_MS = 20;

/** Runs the cold-start command chrooted into `mnt`. */
export function runColdCommand(mnt: string, timeoutMs = 300_000): Promise<RunResult> {
  return run("chroot", [mnt, ...COLD_CMD], { timeoutMs });
}
