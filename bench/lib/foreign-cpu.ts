// What else runs on the machine while a benchmark does: the whole machine's idle fraction, and the CPU time of
// processes that are not the benchmark's (a small shared VM: other helpers' tests, benches, VMs skew timings).
import fs from "node:fs";
import { sleep } from "./system.ts";

/** Fraction of CPU time the whole machine was idle over `ms` (other work on a small VM skews every number here). */
export async function idleFraction(ms: number): Promise<number> {
  const read = () => fs.readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  const a = read();
  await sleep(ms);
  const b = read();
  const d = b.map((x, i) => x - a[i]!);
  const total = d.reduce((x, y) => x + y, 0);
  return total > 0 ? (d[3]! + (d[4] ?? 0)) / total : 1; // idle + iowait
}

/**
 * CPU time used by processes that are not this benchmark's (not descendants of this process, not started
 * with our scratch directory in their command line, not kernel threads), sampled every second and summed
 * per section: other work on a 2-CPU machine (a VM someone else boots, a test suite) skews every number.
 */
export class ForeignCpu {
  readonly #tmp: string;
  readonly #prev = new Map<number, number>();
  readonly #ours = new Map<number, boolean>();
  readonly sections: Record<string, { foreignS: number; wallS: number }> = {};
  #section = "setup";
  #sectionStart = performance.now();
  #timer: NodeJS.Timeout | null = null;

  constructor(tmp: string) {
    this.#tmp = tmp;
  }

  start(): void {
    this.#sample(false);
    this.#timer = setInterval(() => this.#sample(true), 1000);
    this.#timer.unref();
  }

  mark(section: string): void {
    this.#sample(true);
    this.#close();
    this.#section = section;
    this.#sectionStart = performance.now();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#sample(true);
    this.#close();
  }

  #close(): void {
    const s = (this.sections[this.#section] ??= { foreignS: 0, wallS: 0 });
    s.wallS += (performance.now() - this.#sectionStart) / 1000;
  }

  /** Waits (at most `maxS` seconds) until other processes used < 6% of a CPU over half a second; returns seconds waited. */
  async waitQuiet(maxS: number): Promise<number> {
    if (maxS <= 0) return 0;
    const t0 = performance.now();
    this.#sample(true);
    let quiet = 0; // consecutive quiet half seconds; a VM that idles for a moment is not gone
    while ((performance.now() - t0) / 1000 < maxS) {
      await sleep(500);
      quiet = this.#sample(false) < 0.03 ? quiet + 1 : 0; // CPU seconds in 0.5 s; not counted against the section
      if (quiet >= 4) break;
    }
    const waited = (performance.now() - t0) / 1000;
    this.#sectionStart += performance.now() - t0; // nor is the waiting part of the section's time
    return waited > 2.5 ? waited : 0; // two quiet seconds are the check, not a wait
  }

  #sample(count: boolean): number {
    const procs = new Map<number, { ppid: number; ticks: number }>();
    for (const name of fs.readdirSync("/proc")) {
      if (!/^\d+$/.test(name)) continue;
      try {
        const st = fs.readFileSync(`/proc/${name}/stat`, "utf8");
        const f = st.slice(st.lastIndexOf(")") + 2).split(" "); // f[0] = state (field 3)
        procs.set(Number(name), { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) });
      } catch { /* exited */ }
    }
    const ours = (pid: number): boolean => {
      const known = this.#ours.get(pid);
      if (known !== undefined) return known;
      let v = false;
      if (pid === process.pid) v = true;
      else if (pid === 2 || procs.get(pid)?.ppid === 2) v = true; // kernel threads: writeback etc. work for us too
      else {
        try { v = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(this.#tmp); } catch { /* exited */ }
        const pp = procs.get(pid)?.ppid;
        if (!v && pp && pp > 1) v = ours(pp);
      }
      this.#ours.set(pid, v);
      return v;
    };
    let foreign = 0;
    for (const [pid, p] of procs) {
      const before = this.#prev.get(pid) ?? 0;
      if (!ours(pid)) foreign += Math.max(0, p.ticks - before);
      this.#prev.set(pid, p.ticks);
    }
    for (const pid of this.#prev.keys()) if (!procs.has(pid)) { this.#prev.delete(pid); this.#ours.delete(pid); }
    if (count) (this.sections[this.#section] ??= { foreignS: 0, wallS: 0 }).foreignS += foreign / 100; // USER_HZ = 100
    return foreign / 100;
  }
}
