// How the benchmarks print numbers: fixed decimals, "-" for a number not measured, plain-text tables.

const KiB = 1024;
const MiB = 1024 * 1024;

export const mb = (bytes: number): string => (bytes / 1e6).toFixed(2);
export const secs = (s: number | null | undefined): string => (s == null ? "-" : s.toFixed(2));
export const ms = (v: number | null | undefined): string => (v == null ? "-" : v.toFixed(2));
export const ratio = (v: number | null | undefined, d = 3): string => (v == null || !Number.isFinite(v) ? "-" : v.toFixed(d));
/** A chunk or fetch size as the CLI takes it: 1M, 128K. */
export const chunkLabel = (c: number): string => (c >= MiB ? `${c / MiB}M` : `${c / KiB}K`);

/** Plain-text table; the first `left` columns are left-aligned, the rest right-aligned. */
export function table(rows: string[][], left = 1): string {
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows.map((r, ri) => {
    const line = r.map((c, i) => (i < left ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join("  ").trimEnd();
    return ri === 0 ? line + "\n" + w.map((n) => "-".repeat(n)).join("  ") : line;
  }).join("\n");
}
