// How much of a phase the slow link was in use: the union of the proxy's requests (arrival → end of answer)
// within the phase. A phase whose link was busy most of the time is bound by the link (bytes, latency);
// one whose link was mostly idle waited for something else (CPU, decoding, process start-up).
import type { ProxiedRequest } from "./throttled-proxy.ts";

/** Seconds of [fromMs, toMs] (Date.now() times) during which at least one request was in flight. */
export function linkBusySeconds(log: readonly ProxiedRequest[], fromMs: number, toMs: number): number {
  const spans = log.map((r) => [Math.max(fromMs, r.startMs), Math.min(toMs, r.endMs ?? toMs)] as const).filter(([a, b]) => b > a).sort((x, y) => x[0] - y[0]);
  let busy = 0;
  let end = -Infinity;
  for (const [a, b] of spans) {
    if (b <= end) continue;
    busy += b - Math.max(a, end);
    end = b;
  }
  return busy / 1000;
}
