// Seek-index benchmark (issue 14): a cold start of an ordinary gzip image, lazily through its seek index,
// against the full pull + extract that containerd's overlayfs path does and against our converted image. A
// benchmark, not a test; needs root (mounts, chroot, drop_caches), Debian's docker-registry and a kernel with
// fanotify pre-content events.
//
//   node bench/gzip-index.ts [--runs=3] [--rows=full,index,converted,prefetch,spans] [--spans=1M,4M] [--wait-quiet=SECONDS]
//                            [--timeline=1] [--daemon-ahead]                               (npm run bench:index)
//
// --wait-quiet: on a shared machine, wait before each timed run (up to SECONDS in all) until other processes
// have used less than 6% of a CPU for 2 s (bench:lazy's option). --timeline: print each lazy run's requests
// (always in the results, with how long the link was busy during the mount and during the command).
// --daemon-ahead: start each lazy run's cache daemon before the clock, as on a host that runs it as a service
// (bench:containerd does so); by default `eod mount` starts it, inside the clock.
//
// The Debian corpus (bench/corpus.ts) as one gzip layer (bench/lib/corpus-image.ts; one layer, so the full
// row needs no whiteouts) is pushed as an ordinary OCI image to a local registry (127.0.0.1, started here).
// Before the clock, not timed but reported: `eod convert` of it to a second tag (the converted row), and `eod
// index <ref> --push` (the index row: its time and the size of what it pushed, read back from the registry's
// referrers tag, against the image's size). With --spans and an `eod index` that takes --span, the image is
// pushed again to one repository per span and indexed there too: the index size at those spans, and (row
// "spans") a lazy row for each. With an `eod index` that takes --prefetch-from (row "prefetch"): `eod trace` of
// the command on a lazy mount of the index row's image (bench/lib/cold-trace.ts), and the image pushed again
// to a repository of its own and indexed there with --prefetch-from that trace.
// Timed rows, every one through bench/lib/throttled-proxy.ts (one shared 20 MB/s link, 20 ms before each
// answer: the link of bench:containerd and bench:convert), page caches dropped before each run, the rows
// interleaved, best of N:
//   full       resolve + config + every layer downloaded (digest-checked into files), then `tar -xpzf` of each
//              into a fresh directory (bench/lib/full-pull.ts), then `chroot <dir> python3 -c 'import json'`;
//   index      `eod mount <the gzip image>` (the index found as a referrer) into a fresh cache, the same command;
//   converted  `eod mount <the converted image>` into a fresh cache, the same command;
//   index-prefetch  as index, the index made with the trace's prefetch list (the daemon fetches it after the mount).
// Bytes are what the proxy sent (for the lazy rows also the part sent before `eod mount` returned: manifests,
// the index artifact, bootstrap, tables), and what the daemon counted (misses, fetches, fetched bytes).
// Ratios: index ÷ full (time, target ≤ 0.3), index ÷ converted (time and bytes: what the gzip spans cost),
// index-prefetch ÷ index (time), index size ÷ image size (target ≤ 2 %). CPU used by other processes in each row is reported.
// Results are printed and written to bench/results/index-<UTC timestamp>.json; the exit status is non-zero if
// a run failed or a target was missed.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { debianCorpus } from "./corpus.ts";
import { option, runsOption } from "./lib/args.ts";
import { COLD_CMD, LATENCY_MS, RATE, runColdCommand } from "./lib/cold-start.ts";
import { traceColdStart } from "./lib/cold-trace.ts";
import { corpusLayer, pushCorpusImage, type CorpusLayer } from "./lib/corpus-image.ts";
import { cleanupOnSignals, removeUnlessMounted } from "./lib/cleanup.ts";
import { ForeignCpu, idleFraction } from "./lib/foreign-cpu.ts";
import { mb, ratio, secs, table } from "./lib/format.ts";
import { pullAndExtract, type FullPull } from "./lib/full-pull.ts";
import { indexArtifact, type IndexArtifact } from "./lib/index-artifact.ts";
import { lazyColdStart, NO_DOCKER_CONFIG, type DaemonFetches } from "./lib/lazy-cold-start.ts";
import { linkBusySeconds } from "./lib/link-busy.ts";
import { EOD, NODE } from "./lib/paths.ts";
import { gitState, hostInfo, writeResults } from "./lib/results.ts";
import { describe, run, runningChildren } from "./lib/run.ts";
import { fastestOk } from "./lib/stats.ts";
import { dropCaches, progressLine } from "./lib/system.ts";
import { throttledProxy, type ThrottledProxy } from "./lib/throttled-proxy.ts";
import { formatTimeline, requestEvents, type TimelineEvent } from "./lib/timeline.ts";
import { cleanup as killCacheDaemon } from "../test/helpers/lazy.ts";
import { startRegistry, type RunningRegistry } from "../test/helpers/registry.ts";
import { kernelSupportsPreContent } from "../src/sys/fanotify.ts";
import { parseTrace } from "../src/image/prefetch.ts";

const TARGETS = { indexToFull: 0.3, indexToImage: 0.02 };
const RUNS = runsOption();
/** What --rows names: the four rows ("prefetch" is index-prefetch), and "spans" for a lazy row per --spans index. */
const ROW_KINDS = ["full", "index", "converted", "prefetch", "spans"] as const;
const ROWS = option("rows", ROW_KINDS.join(",")).split(",").filter(Boolean).map((r) => {
  if (!(ROW_KINDS as readonly string[]).includes(r)) throw new Error(`--rows: unknown ${JSON.stringify(r)} (${ROW_KINDS.join(", ")})`);
  return r as (typeof ROW_KINDS)[number];
});
/** A timed row: its name in the results ("full", "index", "converted", "index-span-1m" …) and the image it starts. */
interface RowSpec { row: string; label: string; ref: string }
/** Spans other than `eod index`'s default to measure the index size at (as `eod index --span` takes them). */
const SPANS = option("spans", "1M,4M").split(",").filter(Boolean);
const REPO = "bench/debian";
/** Seconds the whole run may spend waiting, before timed runs, for other processes to stop using the CPU. */
const WAIT_QUIET_S = Math.max(0, Number(option("wait-quiet", "0")) || 0);
const SHOW_TIMELINE = option("timeline", "") !== "";
/** --daemon-ahead: each lazy run's cache daemon is started before the clock (as a service), not by `eod mount`. */
const DAEMON_AHEAD = process.argv.includes("--daemon-ahead");

interface ColdRun {
  row: string;
  /** Start (pull or mount) → end of the command. */
  seconds: number;
  /** full: download + extract; lazy: eod mount. */
  prepareS: number;
  runS: number;
  /** What the throttled proxy sent, and in how many answers; lazy rows: the part sent before the mount returned. */
  bytes: number;
  requests: number;
  mountBytes?: number;
  /** Lazy rows: seconds of the mount and of the command during which the link carried at least one answer. */
  linkBusy?: { mountS: number; runS: number };
  /** Lazy rows: the proxy's requests, seconds after the start (printed with --timeline). */
  timeline?: TimelineEvent[];
  ok: boolean;
  problem: string | null;
  /** CPU seconds used by processes not the bench's during the run. */
  foreignCpuS: number;
  full?: FullPull;
  daemon?: DaemonFetches | null;
}

/** `eod index --json`'s own count (its index image directory) beside what the registry holds. */
interface IndexSummary { indexBytes: number; imageBytes: number; seconds: number; build: { layers: Array<{ spans: number; indexBytes: number; tarBytes: number; storedBytes: number }> } }
interface IndexBuild { span: string; repository: string; seconds: number; artifact: IndexArtifact; ratioToImage: number; summary: IndexSummary; prefetchFrom?: string }

/** `eod <args>` with no docker credentials; throws with its stderr if it fails. */
async function eodOk(args: string[]): Promise<{ stdout: string; seconds: number }> {
  const r = await run(NODE, [EOD, ...args], { env: NO_DOCKER_CONFIG, timeoutMs: 900_000 });
  if (r.code !== 0) throw new Error(`eod ${args.join(" ")}: ${describe(r)}\n${r.stderr.trim().slice(-3000)}`);
  return { stdout: r.stdout, seconds: r.seconds };
}

/** The options `eod index` has ("--span" …), or null when this tree has no `eod index` yet. */
async function indexCommandOptions(): Promise<string | null> {
  const r = await run(NODE, [EOD, "index", "--help"], { timeoutMs: 60_000 });
  return r.code === 0 ? r.stdout : null;
}

/** `eod index <registry>/<repository>:v1 --push` (after pushing the image there); times it and reads back what it pushed. */
async function buildIndex(reg: RunningRegistry, layer: CorpusLayer, repository: string, span: string | null, prefetchFrom?: string): Promise<IndexBuild> {
  const ref = await pushCorpusImage(reg.host, repository, "v1", layer);
  const extra = [...(span ? ["--span", span] : []), ...(prefetchFrom ? ["--prefetch-from", prefetchFrom] : [])];
  progressLine(`eod index ${ref} ${extra.join(" ")} --push`);
  const { stdout, seconds } = await eodOk(["index", ref, "--push", "--json", ...extra]);
  const artifact = await indexArtifact(ref);
  return { span: span ?? "default", repository, seconds, artifact, ratioToImage: artifact.bytes / artifact.image.bytes, summary: JSON.parse(stdout) as IndexSummary, ...(prefetchFrom ? { prefetchFrom } : {}) };
}

async function timedRun(spec: RowSpec, proxy: ThrottledProxy, foreign: ForeignCpu, dir: string, waitS: number): Promise<ColdRun & { waitedS: number }> {
  const { row } = spec;
  const waitedS = await foreign.waitQuiet(waitS);
  foreign.mark(row);
  const foreign0 = foreign.sections[row]?.foreignS ?? 0;
  dropCaches();
  proxy.reset();
  let r: Omit<ColdRun, "bytes" | "requests" | "foreignCpuS">;
  if (row === "full") {
    try {
      const t0 = performance.now();
      const full = await pullAndExtract(spec.ref, dir);
      const cmd = await runColdCommand(path.join(dir, "rootfs"));
      const seconds = (performance.now() - t0) / 1000;
      const ok = cmd.code === 0;
      r = { row, seconds, prepareS: full.downloadS + full.extractS, runS: cmd.seconds, ok, problem: ok ? null : `cold command: ${describe(cmd)}: ${cmd.stderr.trim().slice(-2000)}`, full };
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  } else {
    let mountBytes = 0;
    let mountedMs = 0;
    const wall0 = Date.now();
    const lazy = await lazyColdStart(spec.ref, dir, { daemonAhead: DAEMON_AHEAD, onMounted: () => { mountBytes = proxy.bytes(); mountedMs = Date.now(); } });
    const endMs = wall0 + lazy.seconds * 1000;
    const linkBusy = { mountS: linkBusySeconds(proxy.log(), wall0, mountedMs), runS: linkBusySeconds(proxy.log(), mountedMs, endMs) };
    r = { row, seconds: lazy.seconds, prepareS: lazy.mountS, runS: lazy.runS, ok: lazy.ok, problem: lazy.problem, mountBytes, linkBusy, timeline: requestEvents(proxy.log(), wall0), daemon: lazy.daemon };
  }
  const bytes = proxy.bytes();
  const requests = proxy.requests();
  foreign.mark("between runs");
  return { ...r, bytes, requests, foreignCpuS: (foreign.sections[row]?.foreignS ?? 0) - foreign0, waitedS };
}

/** The frontend's miss-to-answer time, when it reports one. */
function fillLatency(d: DaemonFetches): string {
  const l = d.fillLatencyMs;
  return l?.count ? `, fill p50 ${l.p50.toFixed(1)} ms p90 ${l.p90.toFixed(1)} ms max ${l.max.toFixed(1)} ms` : "";
}

function describeRun(r: ColdRun): string {
  const what = r.full
    ? `download ${secs(r.full.downloadS)} s + extract ${secs(r.full.extractS)} s + run ${secs(r.runS)} s`
    : `mount ${secs(r.prepareS)} s (daemon up ${secs(r.daemon?.daemonUpS)} s, its load ${secs(r.daemon?.loadMs != null ? r.daemon.loadMs / 1000 : null)} s; ${mb(r.mountBytes ?? 0)} MB, link busy ${secs(r.linkBusy?.mountS)} s) + run ${secs(r.runS)} s (link busy ${secs(r.linkBusy?.runS)} s)${r.daemon ? `; daemon: ${r.daemon.misses} misses, ${r.daemon.fetches} fetches, ${mb(r.daemon.fetchedBytes)} MB, ${mb(r.daemon.inflatedBytes)} MB inflated${fillLatency(r.daemon)}` : ""}`;
  return `${secs(r.seconds)} s (${what}), ${mb(r.bytes)} MB in ${r.requests} answers; other processes ${r.foreignCpuS.toFixed(1)} CPU s${r.ok ? "" : `; FAILED: ${r.problem}`}`;
}

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) throw new Error("bench:index needs root (mounts, chroot, drop_caches)");
  const support = kernelSupportsPreContent();
  if (!support.ok) throw new Error(`this kernel cannot lazy-mount: ${support.missing.join("; ")}`);
  const corpus = await debianCorpus();
  const layer = await corpusLayer(corpus);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "eod-bench-index-"));
  const foreign = new ForeignCpu(work);
  foreign.start();
  const idleBefore = await idleFraction(2000);
  const loadBefore = os.loadavg();
  if (idleBefore < 0.85) console.error(`!! the machine is busy: only ${(idleBefore * 100).toFixed(0)}% idle over 2 s before the bench; numbers will be noisy`);
  let reg: RunningRegistry | undefined;
  let proxy: ThrottledProxy | undefined;
  let cleaning: Promise<void> | null = null;
  // One cleanup, however many callers (a signal, then main's `finally`).
  const cleanupAll = (): Promise<void> => (cleaning ??= (async () => {
    for (const pid of runningChildren) try { process.kill(pid, "SIGKILL"); } catch { /* gone */ }
    for (const d of fs.existsSync(work) ? fs.readdirSync(work) : []) killCacheDaemon(path.join(work, d), path.join(work, d, "cache"));
    foreign.stop();
    await proxy?.close();
    await reg?.stop();
    removeUnlessMounted(work);
  })());
  cleanupOnSignals(cleanupAll);
  try {
    reg = await startRegistry();
    const link = await throttledProxy(reg.host);
    proxy = link;
    progressLine(`pushing the corpus image (${mb(layer.size)} MB gzip layer) and converting it`);
    const source = await pushCorpusImage(reg.host, REPO, "v1", layer);
    const conv = await eodOk(["convert", source, `${reg.host}/${REPO}:eod`, "--json"]);
    const converted = JSON.parse(conv.stdout) as { target: { digest: string }; pushed: Array<{ size: number }> };
    const convertedBytes = converted.pushed.reduce((n, b) => n + b.size, 0);

    const help = await indexCommandOptions();
    let index: IndexBuild | null = null;
    const spans: IndexBuild[] = [];
    let prefetched: { build: IndexBuild; traceFiles: number } | null = null;
    if (help === null) console.error("!! this tree has no `eod index`: the index row and the index sizes are not measured");
    else {
      index = await buildIndex(reg, layer, REPO, null);
      if (!help.includes("--span")) console.error("!! `eod index` has no --span: the index size is measured at its default span only");
      else for (const span of SPANS) spans.push(await buildIndex(reg, layer, `${REPO}-span-${span.toLowerCase()}`, span));
      if (ROWS.includes("prefetch") && !help.includes("--prefetch-from")) console.error("!! `eod index` has no --prefetch-from: the index-prefetch row is not measured");
      else if (ROWS.includes("prefetch")) {
        progressLine(`eod trace of ${COLD_CMD.join(" ")} on a lazy mount of ${REPO}:v1`);
        const traceFile = await traceColdStart(`${reg.host}/${REPO}:v1`, work, NO_DOCKER_CONFIG);
        const traceFiles = parseTrace(fs.readFileSync(traceFile, "utf8"), traceFile).files.length;
        prefetched = { build: await buildIndex(reg, layer, `${REPO}-prefetch`, null, traceFile), traceFiles };
      }
    }
    const specs: RowSpec[] = [
      ...(ROWS.includes("full") ? [{ row: "full", label: "full pull + extract (tar -xpzf), chroot", ref: `${link.host}/${REPO}:v1` }] : []),
      ...(ROWS.includes("index") && index ? [{ row: "index", label: "lazy, gzip image + seek index", ref: `${link.host}/${REPO}:v1` }] : []),
      ...(ROWS.includes("converted") ? [{ row: "converted", label: "lazy, converted image", ref: `${link.host}/${REPO}:eod` }] : []),
      ...(prefetched ? [{ row: "index-prefetch", label: `lazy, seek index + trace prefetch list (${prefetched.traceFiles} files)`, ref: `${link.host}/${prefetched.build.repository}:v1` }] : []),
      ...(ROWS.includes("spans") ? spans.map((b) => ({ row: `index-span-${b.span}`, label: `lazy, seek index --span ${b.span}`, ref: `${link.host}/${b.repository}:v1` })) : []),
    ];

    const runs: ColdRun[] = [];
    let n = 0;
    let waitedS = 0;
    for (let i = 0; i < RUNS; i++) {
      for (const spec of specs) {
        const r = await timedRun(spec, link, foreign, path.join(work, `run-${n++}`), WAIT_QUIET_S - waitedS);
        waitedS += r.waitedS;
        progressLine(`run ${i + 1}/${RUNS} ${spec.row}: ${describeRun(r)}`);
        if (SHOW_TIMELINE && r.timeline) console.log(formatTimeline(r.timeline));
        runs.push(r);
      }
    }
    const idleAfter = await idleFraction(1000);
    const best = (row: string) => fastestOk(runs.filter((r) => r.row === row), (r) => r.seconds);
    const full = best("full");
    const lazy = best("index");
    const conv2 = best("converted");
    const pre = best("index-prefetch");
    const over = (a: number | undefined, b: number | undefined) => (a !== undefined && b !== undefined && b > 0 ? a / b : null);
    const ratios = {
      indexToFull: over(lazy?.seconds, full?.seconds),
      convertedToFull: over(conv2?.seconds, full?.seconds),
      indexToConverted: over(lazy?.seconds, conv2?.seconds),
      indexToConvertedBytes: over(lazy?.bytes, conv2?.bytes),
      prefetchToIndex: over(pre?.seconds, lazy?.seconds),
      indexToImage: index?.ratioToImage ?? null,
    };
    const result = {
      bench: "index", date: new Date().toISOString(), git: gitState(), host: hostInfo(), runs: RUNS, rows: specs, daemonAhead: DAEMON_AHEAD,
      link: `${RATE / 1e6} MB/s shared, ${LATENCY_MS} ms per answer (bench/lib/throttled-proxy.ts)`, command: COLD_CMD,
      image: { layerBytes: layer.size, diffId: layer.diffId, digest: layer.digest, bytes: index?.artifact.image.bytes ?? null },
      converted: { bytes: convertedBytes, digest: converted.target.digest, seconds: conv.seconds },
      index, spans, prefetch: prefetched, targets: TARGETS, ratios,
      best: Object.fromEntries(specs.map((spec) => [spec.row, best(spec.row)])),
      machine: {
        idleBefore, idleAfter, loadavgBefore: loadBefore, loadavgAfter: os.loadavg(), waitedForQuietS: waitedS,
        foreignCpuBySection: foreign.sections,
      },
      all: runs,
    };

    console.log(`\nbench:index: start → end of ${COLD_CMD.join(" ")} (best of ${RUNS}; ${result.link})\n`);
    const line = (spec: RowSpec) => {
      const r = best(spec.row);
      return [
        spec.label, secs(r?.seconds), r ? (r.full ? `${secs(r.full.downloadS)} + ${secs(r.full.extractS)}` : secs(r.prepareS)) : "-",
        r?.linkBusy ? `${secs(r.runS)} (${secs(r.linkBusy.runS)})` : secs(r?.runS),
        r ? mb(r.bytes) : "-", r?.mountBytes !== undefined ? mb(r.mountBytes) : "-", r ? String(r.requests) : "-", r?.daemon ? `${r.daemon.misses}/${r.daemon.fetches}` : "-",
        ratio(over(r?.seconds, full?.seconds)), spec.row === "index" ? `<= ${TARGETS.indexToFull}` : "", r ? r.foreignCpuS.toFixed(1) : "-",
      ];
    };
    console.log(table([
      ["row", "time s", "pull+extract / mount s", "run s (link busy)", "MB sent", "of it at mount", "answers", "misses/fetches", "÷ full", "target", "others' CPU s"],
      ...specs.map(line),
    ]));
    console.log(`\nthe gzip spans' cost: index ÷ converted ${ratio(ratios.indexToConverted, 2)} in time, ${ratio(ratios.indexToConvertedBytes, 2)} in bytes (${lazy ? mb(lazy.bytes) : "-"} vs ${conv2 ? mb(conv2.bytes) : "-"} MB)`);
    if (prefetched) console.log(`the trace prefetch list: index-prefetch ÷ index ${ratio(ratios.prefetchToIndex, 2)} in time (${pre ? secs(pre.seconds) : "-"} vs ${lazy ? secs(lazy.seconds) : "-"} s)`);
    console.log(`\nimage ${index ? mb(index.artifact.image.bytes) : mb(layer.size)} MB (gzip layer ${mb(layer.size)} MB); converted ${mb(convertedBytes)} MB (eod convert ${secs(conv.seconds)} s)`);
    if (index) {
      console.log(table([
        ["eod index --span", "spans", "index MB", "÷ image", "target", "eod index s", "files in the registry"],
        ...[index, ...spans].map((b) => [b.span, String(b.summary.build.layers.reduce((k, l) => k + l.spans, 0)), mb(b.artifact.bytes), `${(b.ratioToImage * 100).toFixed(2)} %`, `<= ${TARGETS.indexToImage * 100} %`, secs(b.seconds),
          Object.entries(b.artifact.files).map(([f, s]) => `${f} ${mb(s)}`).join(", ")]),
      ]));
    }
    const sections = Object.entries(foreign.sections).filter(([, v]) => v.wallS >= 1);
    if (WAIT_QUIET_S > 0) console.log(`\nwaited ${waitedS.toFixed(0)} s (of at most ${WAIT_QUIET_S}) for a quiet machine before timed runs`);
    console.log(`\nmachine: idle ${(idleBefore * 100).toFixed(0)}% before, ${(idleAfter * 100).toFixed(0)}% after; load average ${loadBefore.map((l) => l.toFixed(2)).join(" ")} before, ${os.loadavg().map((l) => l.toFixed(2)).join(" ")} after; CPU used by other processes: ${sections.map(([k, v]) => `${k} ${v.foreignS.toFixed(1)} s in ${v.wallS.toFixed(0)} s`).join(", ")}`);
    const noisy = sections.filter(([k, v]) => specs.some((spec) => spec.row === k) && v.foreignS > 0.1 * v.wallS);
    if (noisy.length) console.log(`!! other processes used over 10% of a CPU during ${noisy.map(([k]) => k).join(", ")}: those timings are unreliable`);
    const out = writeResults("index", result);
    console.log(`\nresults: ${out}`);
    const failed = runs.filter((r) => !r.ok);
    for (const r of failed) console.error(`!! ${r.row} run failed: ${r.problem}`);
    const missed = (v: number | null, target: number) => v !== null && v > target;
    return failed.length || missed(ratios.indexToFull, TARGETS.indexToFull) || missed(ratios.indexToImage, TARGETS.indexToImage) ? 1 : 0;
  } finally {
    await cleanupAll();
  }
}

main().then((code) => { process.exitCode = code; }, (err: unknown) => { console.error(err); process.exitCode = 1; });
