// Summaries of repeated runs: best of N for timings (the least disturbed run), medians and percentiles for latencies.

/** The fastest run that succeeded, or null if none did. */
export function fastestOk<T extends { ok: boolean }>(runs: T[], seconds: (r: T) => number): T | null {
  return runs.filter((r) => r.ok).sort((a, b) => seconds(a) - seconds(b))[0] ?? null;
}

/** The q-quantile (0..1) of ascending `sorted`, nearest rank. */
export function percentile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

export function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}
