// The one line a guest script in the kernel-lab VM (test/vm/*) prints as its report, and how the host finds it:
// a prefix naming the script, so nothing else the guest prints (eod's own output, a crash dump) can pass for it.

function prefix(script: string): string {
  return `${script} report: `;
}

/** The report line of `script` (e.g. "fuse-e2e"). */
export function reportLine(script: string, report: object): string {
  return prefix(script) + JSON.stringify(report);
}

/** The last report of `script` in a guest's stdout, or undefined if it printed none. */
export function findReport(script: string, stdout: string): Record<string, any> | undefined {
  const line = stdout.split("\n").findLast((l) => l.startsWith(prefix(script)));
  return line === undefined ? undefined : (JSON.parse(line.slice(prefix(script).length)) as Record<string, any>);
}
