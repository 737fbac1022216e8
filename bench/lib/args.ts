// The benchmarks' `--name=value` options (no option library: a bench takes a handful, all with defaults).

/** The value of `--name=value` on the command line, or `dflt`. */
export function option(name: string, dflt: string): string {
  return process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? dflt;
}

/** `--runs=N`: how many times each timed run is repeated (at least 1; 3 by default). */
export function runsOption(): number {
  return Math.max(1, Number(option("runs", "3")) | 0);
}
