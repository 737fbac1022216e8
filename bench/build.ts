// Build benchmark: `eod build` vs mkfs.erofs on the Debian corpus (bench/corpus.ts). A benchmark, not a test.
//
//   npx node bench/build.ts [--runs=3] [--mkfs=<path>]      (npm run bench:build)
//
// For each case the wall time is the best of N runs (`sync` before each), eod and mkfs.erofs interleaved.
// Compressed builds compare like with like, the same codec on both sides: eod's zstd (its default, at its
// default level) with `mkfs.erofs -zzstd` at that level, eod's lz4 with `mkfs.erofs -zlz4`. A mkfs.erofs
// without a codec (Debian 12's 1.5 has only lz4 and lz4hc) gets "n/a" for that case, not a ratio against
// another codec.
// Peak RSS comes from GNU time (`/usr/bin/time -f %M`), or from polling /proc/<pid>/status VmHWM without it.
// Also builds a tree of 1×, 2×, 4× hardlinked copies of the corpus with `--compress none` to show RSS is flat.
// `--mkfs=<path>` (or `--mkfs <path>`) is the mkfs.erofs to compare against (default: mkfs.erofs on PATH), e.g.
// one built from source with libzstd; $MKFS_EROFS names a second one to compare against as well.
// Results are printed and written to bench/results/build-<UTC timestamp>.json. Exit status is non-zero if
// any run failed or any target was missed.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { debianCorpus } from "./corpus.ts";
import { option, runsOption } from "./lib/args.ts";
import { table } from "./lib/format.ts";
import { EOD as eodMain } from "./lib/paths.ts";
import { gitState, hostInfo, writeResults } from "./lib/results.ts";

const GNU_TIME = "/usr/bin/time";
const RSS_TARGET_MIB = 300;
const RUN_TIMEOUT_MS = Number(option("timeout-s", "1800")) * 1000;
const KEEP_OUTPUT = 64 * 1024;

const RUNS = runsOption();
const MKFS = mkfsOption();
/** eod build's default zstd level (src/image/codec.ts), given to mkfs.erofs too (its own default is also 3). */
const ZSTD_LEVEL = 3;

function mkfsOption(): string {
  const i = process.argv.indexOf("--mkfs");
  if (i < 0) return option("mkfs", "mkfs.erofs");
  const bin = process.argv[i + 1];
  if (!bin || bin.startsWith("--")) {
    console.error("bench/build.ts: --mkfs needs the path of a mkfs.erofs binary");
    process.exit(2);
  }
  return bin;
}

// ---------------------------------------------------------------- running and measuring

interface Run {
  ok: boolean;
  seconds: number;
  rssKiB: number | null;
  exit: string; // "0", "1", "SIGKILL", "timeout", "spawn error: ..."
  stdout: string; // tail
  stderr: string; // tail
  stdoutHead: string;
}

const haveGnuTime = spawnSync(GNU_TIME, ["-f", "%M", "true"], { stdio: "ignore" }).status === 0;
let current: number | null = null; // pid (= process group) of the running child, for Ctrl-C

function keepTail(buf: string, more: string): string {
  const s = buf + more;
  return s.length > KEEP_OUTPUT ? s.slice(-KEEP_OUTPUT) : s;
}
function keepHead(buf: string, more: string): string {
  return buf.length >= 4096 ? buf : (buf + more).slice(0, 4096);
}

function readHwmKiB(pid: number): number | null {
  try {
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** One timed run: removes `outputs` first, `sync`s, then runs cmd under GNU time (or with VmHWM polling). */
async function measure(cmd: string, args: string[], outputs: string[], scratch: string): Promise<Run> {
  for (const o of outputs) rmSync(o, { recursive: true, force: true });
  spawnSync("sync");
  const rssFile = path.join(scratch, "rss.txt");
  rmSync(rssFile, { force: true });
  const [file, argv] = haveGnuTime ? [GNU_TIME, ["-f", "%M", "-o", rssFile, cmd, ...args]] : [cmd, args];

  let stdout = "";
  let stdoutHead = "";
  let stderr = "";
  let polled: number | null = null;
  let timedOut = false;
  const t0 = process.hrtime.bigint();
  const outcome = await new Promise<{ code: number | null; signal: string | null; error?: Error }>((resolve) => {
    const child = spawn(file, argv, { stdio: ["ignore", "pipe", "pipe"], detached: true });
    current = child.pid ?? null;
    child.stdout.setEncoding("utf8").on("data", (d: string) => { stdout = keepTail(stdout, d); stdoutHead = keepHead(stdoutHead, d); });
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr = keepTail(stderr, d)));
    const poll = haveGnuTime || !child.pid ? null : setInterval(() => {
      const v = readHwmKiB(child.pid!);
      if (v !== null) polled = Math.max(polled ?? 0, v);
    }, 10);
    const timer = setTimeout(() => {
      timedOut = true;
      if (child.pid) try { process.kill(-child.pid, "SIGKILL"); } catch {}
    }, RUN_TIMEOUT_MS);
    child.on("error", (error) => { clearTimeout(timer); if (poll) clearInterval(poll); resolve({ code: null, signal: null, error }); });
    child.on("close", (code, signal) => { clearTimeout(timer); if (poll) clearInterval(poll); resolve({ code, signal }); });
  });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  current = null;

  let rssKiB: number | null = polled;
  if (haveGnuTime) {
    try {
      // On failure GNU time writes "Command exited with non-zero status N" before the value.
      const last = readFileSync(rssFile, "utf8").trim().split("\n").pop() ?? "";
      if (/^\d+$/.test(last)) rssKiB = Number(last);
    } catch {}
  }
  const exit = outcome.error ? `spawn error: ${outcome.error.message}`
    : timedOut ? `timeout after ${RUN_TIMEOUT_MS / 1000} s`
    : outcome.signal ?? String(outcome.code);
  return { ok: exit === "0", seconds, rssKiB, exit, stdout, stderr, stdoutHead };
}

// ---------------------------------------------------------------- sizes

interface Size { bytes: number; files: number; entries?: { path: string; bytes: number }[] }

function sizeOf(p: string): Size | null {
  if (!existsSync(p)) return null;
  const st = lstatSync(p);
  if (!st.isDirectory()) return { bytes: st.size, files: 1 };
  const entries: { path: string; bytes: number }[] = [];
  const walk = (dir: string): void => {
    for (const d of readdirSync(dir, { withFileTypes: true })) {
      const q = path.join(dir, d.name);
      if (d.isDirectory()) walk(q);
      else if (d.isFile()) entries.push({ path: path.relative(p, q), bytes: lstatSync(q).size });
    }
  };
  walk(p);
  const bytes = entries.reduce((a, e) => a + e.bytes, 0);
  return { bytes, files: entries.length, entries: entries.length <= 64 ? entries : undefined };
}

function sumSizes(paths: string[]): Size | null {
  const s = paths.map(sizeOf);
  if (s.some((x) => x === null)) return null;
  return { bytes: s.reduce((a, x) => a + x!.bytes, 0), files: s.reduce((a, x) => a + x!.files, 0) };
}

function corpusStats(dir: string): { entries: number; bytes: number } {
  let entries = 0;
  let bytes = 0;
  const seen = new Set<string>();
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const q = path.join(d, e.name);
      entries++;
      if (e.isDirectory()) walk(q);
      else if (e.isFile()) {
        const st = lstatSync(q);
        const key = `${st.dev}:${st.ino}`;
        if (!seen.has(key)) { seen.add(key); bytes += st.size; }
      }
    }
  };
  walk(dir);
  return { entries: entries + 1, bytes }; // +1: the root, as `find | wc -l` counts it
}

const MiB = (bytes: number): string => (bytes / 1048576).toFixed(1);

// ---------------------------------------------------------------- misc

/** The compressors a mkfs.erofs lists: "Available compressors are: …" in --help up to 1.7, "available compressors: …"
 *  in --version from 1.8 (whose --help lists them with their levels, one a line). */
function mkfsCompressors(bin: string): string[] {
  const out = ["--version", "--help"].map((arg) => {
    const r = spawnSync(bin, [arg], { encoding: "utf8" });
    if (r.error) throw new Error(`cannot run the reference ${bin}: ${r.error.message}`);
    return `${r.stdout ?? ""}${r.stderr ?? ""}`;
  }).join("\n");
  const listed = /available compressors[^\n]*/i.exec(out)?.[0] ?? "";
  return ["lz4", "lz4hc", "lzma", "deflate", "libdeflate", "zstd"].filter((c) => new RegExp(`\\b${c}\\b`).test(listed));
}

function mkfsVersion(bin: string, firstRunStdout?: string): string {
  // Old erofs-utils (1.5) reject --version but print the "mkfs.erofs <version>" banner first anyway, as every run does.
  const r = spawnSync(bin, ["--version"], { encoding: "utf8" });
  const banner = (s: string | undefined): string | undefined => s?.split("\n").find((l) => /mkfs\.erofs\s+\S/i.test(l))?.trim();
  return banner(r.stdout) ?? banner(firstRunStdout) ?? "unknown";
}

function indent(s: string, lines = 40): string {
  const all = s.trimEnd().split("\n");
  const shown = all.slice(-lines).map((l) => "    | " + l).join("\n");
  return (all.length > lines ? `    | ... (${all.length - lines} lines omitted)\n` : "") + shown;
}

function reportFailure(what: string, cmd: string, args: string[], r: Run): void {
  console.error(`\n!! ${what} failed (${r.exit}): ${[cmd, ...args].join(" ")}`);
  if (r.stderr.trim()) console.error(`  stderr:\n${indent(r.stderr)}`);
  if (r.stdout.trim()) console.error(`  stdout (tail):\n${indent(r.stdout, 10)}`);
}

// ---------------------------------------------------------------- the benchmark

interface Series { label: string; cmd: string; args: string[]; outputs: string[]; runs: Run[]; failed: Run | null }

function series(label: string, cmd: string, args: string[], outputs: string[]): Series {
  return { label, cmd, args, outputs, runs: [], failed: null };
}
const best = (s: Series): number | null => (s.failed || s.runs.length === 0 ? null : Math.min(...s.runs.map((r) => r.seconds)));
const peakRss = (s: Series): number | null => {
  const v = s.runs.map((r) => r.rssKiB).filter((x): x is number => x !== null);
  return v.length ? Math.max(...v) : null;
};

async function runSeries(s: Series, scratch: string): Promise<void> {
  if (s.failed) return;
  const r = await measure(s.cmd, s.args, s.outputs, scratch);
  if (r.ok) s.runs.push(r);
  else { s.failed = r; reportFailure(s.label, s.cmd, s.args, r); }
}

interface CaseDef {
  id: string; title: string; target: number; eod: string[]; eodOut: string[]; ref: (tag: string) => { args: string[]; out: string[] };
  /** The mkfs.erofs compressor the reference needs. */
  codec?: string;
}

async function main(): Promise<number> {
  const corpus = await debianCorpus();
  const stats = corpusStats(corpus);
  const tmp = mkdtempSync(path.join(os.tmpdir(), "eod-bench-"));
  let scaleRoot: string | null = null;
  const cleanup = (): void => {
    for (const d of [scaleRoot, tmp]) if (d) rmSync(d, { recursive: true, force: true });
  };
  process.once("SIGINT", () => {
    if (current) try { process.kill(-current, "SIGKILL"); } catch {}
    cleanup();
    process.exit(130);
  });

  try {
    const refs = [{ tag: "mkfs", bin: MKFS }];
    if (process.env.MKFS_EROFS) refs.push({ tag: "mkfs-alt", bin: process.env.MKFS_EROFS });
    const codecs = new Map(refs.map((r) => [r.tag, mkfsCompressors(r.bin)]));
    const eod = (args: string[]): string[] => [eodMain, ...args];

    console.log(`corpus   ${corpus}: ${stats.entries} entries, ${MiB(stats.bytes)} MiB of file data`);
    console.log(`eod      ${process.execPath} ${path.relative(process.cwd(), eodMain) || eodMain} (node ${process.version})`);
    for (const r of refs) console.log(`${r.tag.padEnd(8)} ${r.bin}: ${mkfsVersion(r.bin)}, compressors: ${codecs.get(r.tag)!.join(", ") || "none"}`);
    console.log(`runs     best of ${RUNS}, sync before each; peak RSS via ${haveGnuTime ? GNU_TIME + " -f %M" : "/proc/<pid>/status VmHWM polling"}`);
    console.log(`scratch  ${tmp}\n`);

    const cases: CaseDef[] = [
      {
        id: "chunked", title: "chunked 1 MiB, no compression, separate blobs", target: 1.0,
        eod: ["build", corpus, "-o", `${tmp}/img`, "--compress", "none", "--chunk-size", "1048576"], eodOut: [`${tmp}/img`],
        ref: (t) => ({ args: ["--chunksize=1048576", `--blobdev=${tmp}/${t}-blob`, `${tmp}/${t}-meta.erofs`, corpus], out: [`${tmp}/${t}-meta.erofs`, `${tmp}/${t}-blob`] }),
      },
      {
        id: "single", title: "single uncompressed image", target: 1.0,
        eod: ["build", corpus, "--single", `${tmp}/single.erofs`], eodOut: [`${tmp}/single.erofs`],
        ref: (t) => ({ args: [`${tmp}/${t}-plain.erofs`, corpus], out: [`${tmp}/${t}-plain.erofs`] }),
      },
      {
        id: "zstd", title: "compressed with zstd (eod's default)", target: 1.0, codec: "zstd",
        eod: ["build", corpus, "-o", `${tmp}/imgz`], eodOut: [`${tmp}/imgz`],
        ref: (t) => ({ args: [`-zzstd,${ZSTD_LEVEL}`, `${tmp}/${t}-zstd.erofs`, corpus], out: [`${tmp}/${t}-zstd.erofs`] }),
      },
      {
        id: "lz4", title: "compressed with lz4", target: 1.0, codec: "lz4",
        eod: ["build", corpus, "-o", `${tmp}/imgl`, "--compress", "lz4"], eodOut: [`${tmp}/imgl`],
        ref: (t) => ({ args: ["-zlz4", `${tmp}/${t}-lz4.erofs`, corpus], out: [`${tmp}/${t}-lz4.erofs`] }),
      },
    ];

    const results = cases.map((c) => ({
      def: c,
      eod: series(`eod build (${c.id})`, process.execPath, eod(c.eod), c.eodOut),
      refs: refs.map((r) => {
        const { args, out } = c.ref(r.tag);
        const missing = c.codec && !codecs.get(r.tag)!.includes(c.codec) ? `${r.bin} has no ${c.codec} (it lists: ${codecs.get(r.tag)!.join(", ") || "none"})` : null;
        return { ...r, missing, s: series(`${r.bin} (${c.id})`, r.bin, args, out) };
      }),
    }));

    for (const r of results) {
      process.stderr.write(`running ${r.def.id} ...`);
      for (let i = 0; i < RUNS; i++) {
        await runSeries(r.eod, tmp);
        for (const ref of r.refs) if (!ref.missing) await runSeries(ref.s, tmp);
        process.stderr.write(` ${i + 1}`);
      }
      process.stderr.write("\n");
    }

    const versions = Object.fromEntries(refs.map((ref) => {
      const first = results.flatMap((r) => r.refs.filter((x) => x.tag === ref.tag).map((x) => x.s.runs[0]?.stdoutHead ?? x.s.failed?.stdoutHead))
        .find((s) => s);
      return [ref.bin, mkfsVersion(ref.bin, first)];
    }));

    // ------------------------------------------------------------ scale: RSS vs tree size
    const scale: { copies: number; entries: number; ok: boolean; seconds: number | null; rssKiB: number | null; bytes: number | null; exit: string }[] = [];
    {
      // cp -al needs the same filesystem as the corpus; fall back to a temp dir beside the cache if tmp isn't.
      const sameFs = statSync(tmp).dev === statSync(corpus).dev;
      scaleRoot = mkdtempSync(sameFs ? path.join(tmp, "scale-") : path.join(path.dirname(corpus), ".eod-bench-scale-"));
      for (const copies of [1, 2, 4]) {
        const tree = path.join(scaleRoot, `x${copies}`);
        mkdirSync(tree);
        let copyErr: string | null = null;
        for (let i = 0; i < copies && !copyErr; i++) {
          const r = spawnSync("cp", ["-al", corpus, path.join(tree, `copy${i}`)], { encoding: "utf8" });
          if (r.status !== 0) copyErr = `cp -al failed: ${r.stderr.trim()}`;
        }
        if (copyErr) {
          console.error(`!! scale ${copies}x: ${copyErr}`);
          scale.push({ copies, entries: 0, ok: false, seconds: null, rssKiB: null, bytes: null, exit: copyErr });
          continue;
        }
        process.stderr.write(`running scale ${copies}x ...\n`);
        const out = path.join(tmp, `scale-img-x${copies}`);
        const args = eod(["build", tree, "-o", out, "--compress", "none"]);
        const r = await measure(process.execPath, args, [out], tmp);
        if (!r.ok) reportFailure(`eod build (scale ${copies}x)`, process.execPath, args, r);
        scale.push({
          copies, entries: 1 + copies * stats.entries, ok: r.ok, seconds: r.ok ? r.seconds : null,
          rssKiB: r.rssKiB, bytes: r.ok ? sizeOf(out)?.bytes ?? null : null, exit: r.exit,
        });
        rmSync(out, { recursive: true, force: true });
      }
    }

    // ------------------------------------------------------------ report
    const rows: string[][] = [["case", "vs", "eod s", "ref s", "ratio", "target", "time", "eod RSS MiB", `RSS≤${RSS_TARGET_MIB}`]];
    const json: Record<string, unknown>[] = [];
    let failures = 0;
    for (const r of results) {
      const eb = best(r.eod);
      const rss = peakRss(r.eod);
      const rssOk = rss !== null && rss / 1024 <= RSS_TARGET_MIB;
      if (!r.eod.failed && !rssOk) failures++;
      for (const ref of r.refs) {
        if (ref.missing) {
          rows.push([r.def.id, ref.tag, eb?.toFixed(3) ?? "FAILED", "n/a", "-", `≤${r.def.target.toFixed(2)}`, "n/a", rss !== null ? MiB(rss * 1024) : "-", r.eod.failed ? "-" : rssOk ? "pass" : "FAIL"]);
          continue;
        }
        const rb = best(ref.s);
        const ratio = eb !== null && rb !== null ? eb / rb : null;
        const pass = ratio !== null && ratio <= r.def.target;
        if (!pass) failures++;
        rows.push([
          r.def.id, ref.tag, eb?.toFixed(3) ?? "FAILED", rb?.toFixed(3) ?? "FAILED", ratio?.toFixed(2) ?? "-",
          `≤${r.def.target.toFixed(2)}`, pass ? "pass" : "FAIL", rss !== null ? MiB(rss * 1024) : "-",
          r.eod.failed ? "-" : rssOk ? "pass" : "FAIL",
        ]);
      }
      json.push({
        id: r.def.id, title: r.def.title, target_ratio: r.def.target,
        eod: {
          argv: ["node", ...r.eod.args], ok: !r.eod.failed, runs_s: r.eod.runs.map((x) => x.seconds), best_s: eb,
          peak_rss_kib: rss, size: r.eod.failed ? null : sizeOf(r.def.eodOut[0]!),
          error: r.eod.failed ? { exit: r.eod.failed.exit, stderr: r.eod.failed.stderr.slice(-4000) } : null,
        },
        references: r.refs.map((ref) => ({
          tag: ref.tag, bin: ref.bin, unsupported: ref.missing, version: versions[ref.bin], argv: [ref.bin, ...ref.s.args], ok: !ref.s.failed,
          runs_s: ref.s.runs.map((x) => x.seconds), best_s: best(ref.s), peak_rss_kib: peakRss(ref.s),
          size: ref.s.failed ? null : sumSizes(ref.s.outputs),
          outputs: ref.s.failed ? null : Object.fromEntries(ref.s.outputs.map((o) => [path.basename(o), sizeOf(o)?.bytes ?? null])),
          ratio: eb !== null && best(ref.s) !== null ? eb / best(ref.s)! : null,
          error: ref.s.failed ? { exit: ref.s.failed.exit, stderr: ref.s.failed.stderr.slice(-4000) } : null,
        })),
      });
    }
    for (const s of scale) if (!s.ok || s.rssKiB === null || s.rssKiB / 1024 > RSS_TARGET_MIB) failures++;

    console.log("\nmkfs.erofs: " + Object.entries(versions).map(([b, v]) => `${b} → ${v}`).join("; "));
    console.log("\nwall time (best of " + RUNS + ") and eod peak RSS");
    console.log(table(rows, 2));

    console.log("\nimage sizes (apparent bytes)");
    const sizeRows: string[][] = [["case", "output", "MiB", "files"]];
    for (const r of results) {
      const es = r.eod.failed ? null : sizeOf(r.def.eodOut[0]!);
      sizeRows.push([r.def.id, `eod ${path.basename(r.def.eodOut[0]!)}${es && es.files > 1 ? " (bootstrap+blobs)" : ""}`, es ? MiB(es.bytes) : "-", es ? String(es.files) : "-"]);
      if (es?.entries && es.files > 1) {
        for (const e of [...es.entries].sort((a, b) => b.bytes - a.bytes).slice(0, 8)) sizeRows.push(["", `  ${e.path.replace(/([0-9a-f]{12})[0-9a-f]{20,}/g, "$1…")}`, MiB(e.bytes), ""]);
      }
      for (const ref of r.refs) {
        if (ref.s.failed || ref.missing) { sizeRows.push(["", ref.tag, "-", "-"]); continue; }
        for (const o of ref.s.outputs) sizeRows.push(["", `${ref.tag} ${path.basename(o).replace(`${ref.tag}-`, "")}`, MiB(sizeOf(o)?.bytes ?? 0), "1"]);
        if (ref.s.outputs.length > 1) sizeRows.push(["", `${ref.tag} total`, MiB(sumSizes(ref.s.outputs)?.bytes ?? 0), String(ref.s.outputs.length)]);
      }
    }
    console.log(table(sizeRows, 2));

    console.log(`\npeak RSS vs tree size: eod build --compress none on N hardlinked copies (cp -al) of the corpus`);
    console.log(table([["copies", "entries", "eod s", "peak RSS MiB", `RSS≤${RSS_TARGET_MIB}`, "output MiB"],
      ...scale.map((s) => [`${s.copies}x`, String(s.entries), s.seconds?.toFixed(3) ?? "FAILED",
        s.rssKiB !== null ? MiB(s.rssKiB * 1024) : "-", s.ok && s.rssKiB !== null && s.rssKiB / 1024 <= RSS_TARGET_MIB ? "pass" : "FAIL",
        s.bytes !== null ? MiB(s.bytes) : "-"])]));

    const refRss = results.flatMap((r) => r.refs.map((ref) => `${r.def.id}/${ref.tag} ${peakRss(ref.s) !== null ? MiB(peakRss(ref.s)! * 1024) : "-"}`));
    console.log(`\n(reference peak RSS MiB: ${refRss.join(", ")})`);

    const outFile = writeResults("build", {
      date: new Date().toISOString(),
      git: gitState(),
      host: hostInfo(),
      node: process.version,
      runs: RUNS,
      rss_method: haveGnuTime ? "gnu-time %M" : "VmHWM polling",
      rss_target_mib: RSS_TARGET_MIB,
      corpus: { path: corpus, ...stats },
      mkfs_versions: versions,
      cases: json,
      scale,
      failures,
    });
    console.log(`\nresults written to ${path.relative(process.cwd(), outFile)}`);
    console.log(failures ? `\n${failures} failure(s) (failed runs or missed targets)` : "\nall targets met");
    return failures ? 1 : 0;
  } finally {
    cleanup();
  }
}

process.exitCode = await main();
