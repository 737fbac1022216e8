// `eod trace`: which files of a mounted image a workload touches, in first-touch order. While a trace runs,
// every range a frontend asks of the mount's blobs is recorded (blob, offset, length); when it stops, the
// ranges are mapped back to files through the bootstrap (chunk indexes → file offsets) and written as a
// prefetch list with the byte ranges touched (src/image/prefetch.ts), for `eod build --prefetch-from`.
//
// What a frontend sees is what gets recorded: with fanotify every read of a blob that is not yet complete
// (hits included); with fscache only misses. Trace on a fresh cache to see every first touch.
import { S_IFMT, S_IFREG } from "../erofs/constants.ts";
import type { ErofsReader } from "../erofs/reader.ts";
import { mergeRanges, TRACE_MEDIA_TYPE, type PrefetchEntry, type Trace } from "../image/prefetch.ts";

/** Accesses kept per trace; beyond it the trace stops growing (and says so) so memory stays bounded. */
const MAX_RECORDS = 1_000_000;

export class TraceRecorder {
  readonly #records: Array<[number, number, number]> = [];
  truncated = false;

  /** Records an access of blob `k` (device k + 1) at [offset, offset+length). */
  record(k: number, offset: number, length: number): void {
    const last = this.#records.at(-1);
    if (last && last[0] === k && last[1] === offset && last[2] === length) return; // the same read, retried
    if (this.#records.length >= MAX_RECORDS) { this.truncated = true; return; }
    this.#records.push([k, offset, length]);
  }

  /** The files touched, in first-touch order, each with the byte ranges touched. */
  toTrace(reader: ErofsReader, imageDigest: string): Trace {
    const index = fileChunksByDevice(reader);
    const files = new Map<string, Array<[number, number]>>();
    for (const [k, offset, length] of this.#records) {
      const chunks = index[k];
      if (!chunks) continue;
      for (const c of overlapping(chunks, offset, offset + length)) {
        // the part of the access inside this chunk, as a range of the file
        const from = Math.max(offset, c.start);
        const to = Math.min(offset + length, c.end);
        let ranges = files.get(c.path);
        if (!ranges) files.set(c.path, (ranges = []));
        ranges.push([c.la + (from - c.start), to - from]);
      }
    }
    const out: PrefetchEntry[] = [...files].map(([path, ranges]) => ({ path, ranges: mergeRanges(ranges) }));
    return { mediaType: TRACE_MEDIA_TYPE, image: imageDigest, files: out };
  }
}

interface FileChunkAt {
  /** Byte range in the blob's kernel form. */
  start: number;
  end: number;
  path: string;
  /** Where the chunk starts in the file. */
  la: number;
}

/** Every chunk of every regular file, per device (k = deviceId − 1), sorted by blob offset. */
function fileChunksByDevice(reader: ErofsReader): FileChunkAt[][] {
  const byDevice: FileChunkAt[][] = reader.devices.map(() => []);
  for (const { path, inode } of reader.walk()) {
    if ((inode.mode & S_IFMT) !== S_IFREG) continue;
    const p = `/${path.map((n) => Buffer.from(n).toString()).join("/")}`;
    for (const c of reader.chunks(inode)) {
      if (!c.addr || c.addr.deviceId < 1 || c.addr.deviceId > byDevice.length) continue;
      const start = c.addr.startBlk * reader.blkSz;
      byDevice[c.addr.deviceId - 1].push({ start, end: start + c.len, path: p, la: c.la });
    }
  }
  for (const list of byDevice) list.sort((a, b) => a.start - b.start);
  return byDevice;
}

/**
 * The chunks of a sorted list that overlap [from, to): several when files share a deduplicated chunk. Chunks
 * are chunk-table regions, which never partly overlap, so ends are sorted like starts.
 */
function* overlapping(list: readonly FileChunkAt[], from: number, to: number): Generator<FileChunkAt> {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) { // the first chunk that ends after `from`
    const mid = (lo + hi) >>> 1;
    if (list[mid].end <= from) lo = mid + 1;
    else hi = mid;
  }
  for (let i = lo; i < list.length && list[i].start < to; i++) if (list[i].end > from) yield list[i];
}
