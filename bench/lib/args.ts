// The benchmarks' `--name=value` options (no option library: a bench takes a handful, all with defaults).

/** The value of `--name=value` (or `--name value`) on the command line, or `dflt`. */
export function option(name: string, dflt: string): string {
  const joined = process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  if (joined !== undefined) return joined;
  const at = process.argv.indexOf(`--${name}`);
  const next = at >= 0 ? process.argv[at + 1] : undefined;
  return next !== undefined && !next.startsWith("--") ? next : dflt;
}

/** `--runs=N`: how many times each timed run is repeated (at least 1; 3 by default). */
export function runsOption(): number {
  return Math.max(1, Number(option("runs", "3")) | 0);
}
