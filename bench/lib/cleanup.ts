// How a benchmark leaves the machine: its scratch directory removed only when nothing is mounted below it
// (removing a live mount's files would reach into the image or the cache), and its cleanup run on SIGINT and
// SIGTERM too, before the process exits with the signal's status.
import fs from "node:fs";

/** Removes `dir` unless something is still mounted below it (then says so and leaves it). */
export function removeUnlessMounted(dir: string): void {
  const left = fs.readFileSync("/proc/self/mounts", "utf8").split("\n").map((l) => l.split(" ")[1] ?? "").filter((p) => p.startsWith(dir));
  if (left.length) console.error(`!! not removing ${dir}: still mounted: ${left.join(", ")}`);
  else fs.rmSync(dir, { recursive: true, force: true });
}

/** On SIGINT or SIGTERM: runs `cleanup` (which must be safe to call twice), then exits 130 or 143. */
export function cleanupOnSignals(cleanup: () => Promise<void>): void {
  for (const [sig, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
    process.once(sig, () => {
      process.stderr.write(`${sig}: cleaning up\n`);
      cleanup().catch((e: Error) => console.error(`!! cleanup: ${e.message}`)).finally(() => process.exit(code));
    });
  }
}
