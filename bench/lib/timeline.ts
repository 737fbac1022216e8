// A run's timeline for the registry benchmarks: what the proxy served and what the eod processes logged, each
// at its wall-clock time, as seconds after the run's start, so a slow phase shows where it is.
import type { ProxiedRequest } from "./throttled-proxy.ts";

export interface TimelineEvent {
  /** Seconds after the run's start. */
  at: number;
  /** Seconds it lasted (a request: until its answer ended). */
  took?: number;
  what: string;
}

/** The log lines (JSON lines with `time` and `msg`) whose `msg` is one of `msgs`, as events named `<who>: <msg>`. */
export function logEvents(who: string, text: string, msgs: readonly string[], wall0: number): TimelineEvent[] {
  const out: TimelineEvent[] = [];
  for (const line of text.split("\n")) {
    if (!line.startsWith("{")) continue;
    let j: { time?: string; msg?: string; ms?: number };
    try { j = JSON.parse(line) as typeof j; } catch { continue; }
    if (!j.time || !j.msg || !msgs.includes(j.msg)) continue;
    out.push({ at: (Date.parse(j.time) - wall0) / 1000, what: `${who}: ${j.msg}${j.ms !== undefined ? ` (${j.ms} ms)` : ""}` });
  }
  return out;
}

/** The proxy's requests as events: method, the path's last part, status and bytes. */
export function requestEvents(log: readonly ProxiedRequest[], wall0: number): TimelineEvent[] {
  return log.map((r) => ({
    at: (r.startMs - wall0) / 1000,
    ...(r.endMs !== null ? { took: (r.endMs - r.startMs) / 1000 } : {}),
    what: `registry: ${r.method} ${shortUrl(r.url)} ${r.status ?? "-"} ${r.bytes} B`,
  }));
}

/** Every event in time order. */
export function timeline(...lists: TimelineEvent[][]): TimelineEvent[] {
  return lists.flat().sort((a, b) => a.at - b.at);
}

export function formatTimeline(events: readonly TimelineEvent[]): string {
  return events.map((e) => `  ${e.at.toFixed(3).padStart(7)} s${e.took !== undefined ? ` +${e.took.toFixed(3)}` : "       "}  ${e.what}`).join("\n");
}

/** `/v2/bench/debian/blobs/sha256:0123…` → `blobs/sha256:012345678901`. */
function shortUrl(url: string): string {
  const m = /\/(manifests|blobs)\/([^/?]+)/.exec(url);
  return m ? `${m[1]}/${m[2].slice(0, 19)}` : url;
}
