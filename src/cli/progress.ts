// A progress bar on stderr when it is a terminal (and no --json), nothing otherwise.
import cliProgress from "cli-progress";
import type { BuildProgress } from "../build/output.ts";

export function progressBar(enabled: boolean): { update: BuildProgress; stop(): void } {
  if (!enabled || !process.stderr.isTTY) return { update: () => {}, stop: () => {} };
  const bar = new cliProgress.SingleBar({
    format: "{phase} [{bar}] {percentage}% {value}/{total}",
    stream: process.stderr,
    hideCursor: true,
    clearOnComplete: true,
  }, cliProgress.Presets.shades_classic);
  let started = false;
  let phase = "";
  return {
    update(p, done, total) {
      if (!started) { bar.start(Math.max(total, 1), 0, { phase: p }); started = true; }
      if (p !== phase) { phase = p; bar.setTotal(Math.max(total, done, 1)); }
      bar.update(done, { phase: p });
    },
    stop() { if (started) bar.stop(); },
  };
}
