// `eod convert <src-ref> <dst-ref>`: an OCI/Docker image in a registry → our image, pushed in its OCI form
// (src/image/oci-form.ts). The source manifest is resolved (tag → platform), its config fetched and verified;
// each layer blob streams from the registry into the layer build (verified by digest and diff_id as it
// passes, memory bounded) into an image directory (a temporary one unless -o). The destination is checked
// first (an upload session opened and cancelled) before any building. Each layer's blob is pushed as soon as
// the layer is done, while the next ones build; the other files (a prefetch list's hot blob among them: it is
// complete only once the tree is) and the config (the source's, with diff_ids naming our layers) once the
// image is written; blobs the destination has are skipped; the OCI manifest goes
// last, so a tag never names an image whose blobs are missing.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { EodError } from "../errors.ts";
import { MANIFEST_NAME, parseManifest } from "../image/manifest.ts";
import { ANNOTATIONS, OCI_CONFIG_TYPE, OCI_FORM_TYPES, OCI_MANIFEST_TYPE, ociConfigOf, ociLayersOf, ociManifestOf } from "../image/oci-form.ts";
import { Semaphore } from "../util/semaphore.ts";
import { fileSource, formatPlatform, formatReference, parseReference, RegistryClient, sha256Digest, type BlobSource, type PushedBlob, type Reference } from "../remote/registry/index.ts";
import { DEFAULT_CHUNK_SIZE, type FinishedBlob } from "./image.ts";
import { chunkWorkersFor } from "./chunk-workers.ts";
import { buildFromLayers, type LayersOptions, type LayersSummary } from "./layers/build-layers.ts";
import { registryLayers } from "./layers/registry-layers.ts";

export interface ConvertOptions extends LayersOptions {
  /** os/arch[/variant] of the source image when its reference names an index (default the host's). */
  platform?: string;
  insecureRegistries?: string[];
  /** Also keep the image directory here (default: a temporary directory, removed). */
  output?: string;
  /** Parallel blob pushes (default 4). */
  pushConcurrency?: number;
  /** Upload the last layer's blob while it is written (default true). */
  streamLastBlob?: boolean;
  /** Per-layer progress: bytes of layer `index` read from the registry so far, of `total`. */
  onLayer?: (index: number, name: string, done: number, total: number) => void;
  /** Push progress: files pushed (or found present) of `total`. */
  onPush?: (done: number, total: number) => void;
  /** A client to use (tests); else one is made and closed. */
  client?: RegistryClient;
}

export interface ConvertSummary {
  source: { reference: string; digest: string; platform?: string; layers: number };
  target: { reference: string; digest: string; size: number };
  build: LayersSummary;
  /** Every blob of the target manifest: how it got there. */
  pushed: Array<{ path: string; digest: string; size: number; how: PushedBlob["how"] }>;
  seconds: { pull: number; push: number; total: number };
}

export async function convertImage(srcRef: string, dstRef: string, opts: ConvertOptions = {}): Promise<ConvertSummary> {
  const started = performance.now();
  const src = parseReference(srcRef);
  const dst = parseReference(dstRef);
  const client = opts.client ?? new RegistryClient({ insecureRegistries: opts.insecureRegistries ?? [] });
  const work = fs.mkdtempSync(path.join(opts.output ? path.dirname(path.resolve(opts.output)) : os.tmpdir(), ".eod-convert-"));
  // Started now, so the threads boot during the registry round trips below instead of after them.
  const chunkWorkers = chunkWorkersFor(opts.chunkSize ?? DEFAULT_CHUNK_SIZE);
  try {
    const { img, config, configWhere, layers } = await registryLayers(client, src, opts);
    ociConfigOf(config, [], configWhere); // the config we will push is made from it: refused now, not after the build
    await client.checkPush(dst); // the destination answers and takes our pushes, before any building
    const slots = new Semaphore(opts.pushConcurrency ?? 4);
    let pushedCount = 0;
    let total = img.manifest.layers.length * 2 + 3; // at most a table and a blob per layer, manifest, bootstrap, config
    const tick = () => opts.onPush?.(++pushedCount, total);
    // A layer's blob is pushed as soon as it is complete, while the next layers build.
    const early = new Map<string, Promise<PushedBlob>>();
    // The last layer's blob has nothing after it to overlap with: it is uploaded while it is written (a
    // streamed upload), and committed once its digest is known, or cancelled if the destination has it.
    const last = img.manifest.layers.length - 1;
    let streamed: StreamedBlob | null = null;
    const onBlobOpen = (file: string, k: number, appended: (listener: (length: number, bytes: Uint8Array | null) => void) => void) => {
      if (k === last && opts.streamLastBlob !== false) streamed = startStreamed(client, dst, file, appended);
    };
    const pushEarly = (b: FinishedBlob, k: number) => {
      const s = streamed as StreamedBlob | null;
      if (s && k === last) {
        // Completed from now on, while the build lays out and writes the bootstrap: the destination is asked
        // whether it has the blob, and the upload committed as soon as its last bytes are sent.
        s.finished(b);
        const push = slots.run(() => s.complete(() => client.pushBlob(dst, fdSource(s.fd, b.table.remoteSize), { digest: b.remoteDigest, mediaType: OCI_FORM_TYPES.blob })));
        push.then(tick, () => {});
        early.set(b.remoteDigest, push);
        return;
      }
      const fd = fs.openSync(b.remoteTmp, "r"); // now: the build renames the file later
      const push = slots.run(() => client.pushBlob(dst, fdSource(fd, b.table.remoteSize), { digest: b.remoteDigest, mediaType: OCI_FORM_TYPES.blob }))
        .finally(() => fs.closeSync(fd));
      push.then(tick, () => {}); // a failure is reported where it is awaited
      early.set(b.remoteDigest, push);
    };
    const imageDir = opts.output ? path.resolve(opts.output) : path.join(work, "image");
    let build: LayersSummary;
    try {
      build = await buildFromLayers(layers, imageDir, { ...opts, chunkWorkers, onBlobOpen, onBlobDone: pushEarly });
    } catch (err) {
      await (streamed as StreamedBlob | null)?.abort();
      await Promise.allSettled(early.values());
      throw err;
    }
    const pulled = performance.now();

    // Push the other files and the config (and wait for the blobs already on their way); the OCI manifest last.
    const manifestBytes = fs.readFileSync(path.join(imageDir, MANIFEST_NAME));
    const m = parseManifest(manifestBytes.toString("utf8"), `${imageDir}/${MANIFEST_NAME}`);
    const ociLayers = ociLayersOf({ digest: sha256Digest(manifestBytes), size: manifestBytes.length }, m);
    const titles = ociLayers.map((l) => l.annotations![ANNOTATIONS.title]);
    const ociConfig = ociConfigOf(config, ociLayers, configWhere);
    total = ociLayers.length + 1;
    const pushFile = (digest: string, mediaType: string, source: () => Promise<Uint8Array | BlobSource>) => slots.run(async () => {
      const r = await client.pushBlob(dst, await source(), { digest, mediaType });
      tick();
      return r;
    });
    const oci = ociManifestOf(ociLayers, ociConfig, {
      [ANNOTATIONS.sourceDigest]: img.digest,
      [ANNOTATIONS.sourceRef]: formatReference(src),
    });
    const [configPush, ...filePushes] = await Promise.all([
      pushFile(oci.config.digest, OCI_CONFIG_TYPE, async () => ociConfig),
      ...ociLayers.map((l, k) => early.get(l.digest) ?? pushFile(l.digest, l.mediaType, () => fileSource(path.join(imageDir, titles[k])))),
    ]);
    const ociBytes = Buffer.from(JSON.stringify(oci));
    const pushed = await client.pushManifest(dst, dst.digest ?? dst.tag ?? "latest", ociBytes, OCI_MANIFEST_TYPE);
    const done = performance.now();
    return {
      source: { reference: formatReference(src), digest: img.digest, ...(img.platform ? { platform: formatPlatform(img.platform) } : {}), layers: layers.length },
      target: { reference: formatReference(withDigest(dst, pushed.digest)), digest: pushed.digest, size: pushed.size },
      build,
      pushed: [
        { path: "(config)", digest: configPush.digest, size: configPush.size, how: configPush.how },
        ...filePushes.map((p, k) => ({ path: titles[k], digest: p.digest, size: p.size, how: p.how })),
      ],
      seconds: { pull: (pulled - started) / 1000, push: (done - pulled) / 1000, total: (done - started) / 1000 },
    };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
    await chunkWorkers.close();
    if (!opts.client) await client.close();
  }
}

interface StreamedBlob {
  fd: number;
  /** Set by finished(): the blob is complete. */
  blob: FinishedBlob | null;
  finished(b: FinishedBlob): void;
  /** Commits the upload, or cancels it when the destination has the blob; on failure pushes with `fallback`. */
  complete(fallback: () => Promise<PushedBlob>): Promise<PushedBlob>;
  abort(): Promise<void>;
}

/**
 * Uploads a blob file while the build appends to it (in order: the remote form is never rewritten). Costs
 * bytes, never time: if the destination turns out to have the blob, the upload is cancelled. The appended
 * chunks are sent from memory as the writer hands them over (up to QUEUE_MAX bytes waiting; the rest, and
 * chunks stored plain, are read back from the file).
 */
function startStreamed(client: RegistryClient, dst: Reference, file: string, appended: (listener: (length: number, bytes: Uint8Array | null) => void) => void): StreamedBlob {
  const fd = fs.openSync(file, "r");
  let stopped = false;
  let closed = false;
  // The reader sleeps until the writer appends (or the blob is finished): no polling, no empty reads.
  let pos = 0;
  let written = 0;
  const queue: Array<{ at: number; bytes: Uint8Array }> = [];
  let queued = 0;
  let wake: (() => void) | null = null;
  const poke = () => { const w = wake; wake = null; w?.(); };
  appended((length, bytes) => {
    written = length;
    if (bytes && queued + bytes.length <= QUEUE_MAX) {
      queue.push({ at: length - bytes.length, bytes });
      queued += bytes.length;
    }
    if (length - pos >= READ_AHEAD_MIN) poke();
  });
  const close = () => { if (!closed) { closed = true; fs.closeSync(fd); } };
  const self: StreamedBlob = {
    fd, blob: null,
    finished(b) { self.blob = b; written = b.table.remoteSize; poke(); },
    async complete(fallback) {
      const b = self.blob!;
      try {
        if ((await client.blobSize(dst, b.remoteDigest)) !== undefined) {
          stopped = true;
          poke();
          await upload.cancel().catch(() => {});
          return { mediaType: OCI_FORM_TYPES.blob, digest: b.remoteDigest, size: b.table.remoteSize, how: "exists" };
        }
        const size = await upload.sent;
        if (size !== b.table.remoteSize) throw new EodError("REMOTE_IO", `streamed ${size} bytes of a ${b.table.remoteSize}-byte blob`);
        return { ...(await upload.commit(b.remoteDigest, OCI_FORM_TYPES.blob)), size };
      } catch {
        stopped = true;
        poke();
        await upload.cancel().catch(() => {});
        return await fallback(); // from the file, with the client's retries
      } finally {
        close();
      }
    },
    async abort() {
      stopped = true;
      poke();
      await upload.cancel().catch(() => {});
      close();
    },
  };
  const upload = client.streamBlob(dst, (async function* () {
    for (;;) {
      if (stopped) return;
      if (pos >= written) {
        if (self.blob && pos >= self.blob.table.remoteSize) return;
        await new Promise<void>((r) => { wake = r; }); // the link is ahead of the writer
        continue;
      }
      if (queue.length && queue[0].at === pos) {
        const { bytes } = queue.shift()!;
        queued -= bytes.length;
        pos += bytes.length;
        yield bytes;
        continue;
      }
      // From the file: up to the next chunk still in memory.
      const buf = Buffer.allocUnsafe(Math.min(READ_MAX, written - pos, (queue[0]?.at ?? Infinity) - pos));
      const n = await new Promise<number>((resolve, reject) => fs.read(fd, buf, 0, buf.length, pos, (err, got) => (err ? reject(err) : resolve(got))));
      if (n === 0) throw new Error(`blob file ended at ${pos} of ${written} bytes written`);
      pos += n;
      yield buf.subarray(0, n);
    }
  })(), { segmentBytes: SEGMENT });
  return self;
}

/**
 * The streamed upload ends its PATCH and starts another after this many bytes: the registry writes out (and
 * syncs) each as it ends, so the final one leaves it less to do once the blob is done (the Debian layer: the
 * last PATCH answered ~170 ms after the blob's end instead of ~260 ms; 8 MiB was no better).
 */
const SEGMENT = 16 << 20;
/** A streamed upload reads at most this much at once, and waits for at least READ_AHEAD_MIN new bytes. */
const READ_MAX = 1 << 20;
/** Appended chunks held in memory for a streamed upload, at most (a slow link makes it read them back). */
const QUEUE_MAX = 32 << 20;
const READ_AHEAD_MIN = 256 << 10;

/** An open file as a push source (its path may change meanwhile). */
function fdSource(fd: number, size: number): BlobSource {
  return {
    size,
    read: (offset, length) => new Promise((resolve, reject) => {
      const buf = Buffer.allocUnsafe(length);
      const step = (done: number): void => {
        if (done === length) return resolve(buf);
        fs.read(fd, buf, done, length - done, offset + done, (err, n) => {
          if (err) return reject(err);
          if (n === 0) return reject(new Error(`blob file ended at ${offset + done} of ${size} bytes`));
          step(done + n);
        });
      };
      step(0);
    }),
  };
}

function withDigest(ref: Reference, digest: string): Reference {
  return { ...ref, digest };
}
