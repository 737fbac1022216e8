// A progress bar on stderr when it is a terminal (and no --json), nothing otherwise.
import cliProgress from "cli-progress";
import type { BuildProgress } from "../mkfs/output.ts";

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

/** One bar per layer (bytes read from the registry) and one for the push, on stderr when it is a terminal. */
export function layerBars(enabled: boolean): {
  layer(index: number, name: string, done: number, total: number): void;
  push(done: number, total: number): void;
  stop(): void;
} {
  if (!enabled || !process.stderr.isTTY) return { layer: () => {}, push: () => {}, stop: () => {} };
  const multi = new cliProgress.MultiBar({
    format: "{name} [{bar}] {percentage}% {value}/{total}",
    stream: process.stderr,
    hideCursor: true,
    clearOnComplete: true,
  }, cliProgress.Presets.shades_classic);
  const bars = new Map<string, cliProgress.SingleBar>();
  const update = (key: string, name: string, done: number, total: number) => {
    let bar = bars.get(key);
    if (!bar) { bar = multi.create(Math.max(total, 1), 0, { name }); bars.set(key, bar); }
    bar.update(done, { name });
  };
  let stopped = false;
  return {
    layer: (i, name, done, total) => update(`layer ${i}`, name, done, total),
    push: (done, total) => update("push", "push", done, total),
    stop() { if (!stopped) { stopped = true; multi.stop(); } },
  };
}
