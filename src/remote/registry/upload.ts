// Pushes: blobs (skipped when the repository has them; a cross-repository mount first when asked; then
// one monolithic PUT, or PATCH chunks and a final PUT, retried from a new upload session on failure) and
// manifests (PUT under a tag or digest, checked against Docker-Content-Digest).
import { EodError, RemoteError } from "../../errors.ts";
import { positiveInt } from "../remote.ts";
import { bytesSource, type BlobSource } from "./blob-source.ts";
import { checkDigest, sha256Digest, verifyBytes } from "./digest.ts";
import { parseManifest, type Descriptor } from "./manifest.ts";
import { one } from "../answer.ts";
import { headBlob, name, type CallOptions, type Repo, type Session } from "./session.ts";
import type { Exchange } from "./transport.ts";
import { sha256Stream } from "../../util/sha256.ts";

export interface PushBlobOptions extends CallOptions {
  /** Known digest of the content (else computed by reading it once). */
  digest?: string;
  mediaType?: string;
  /** Upload in PATCH chunks of this many bytes; default: one monolithic PUT. */
  chunkSize?: number;
  /** Try a cross-repository mount from this repository (same registry) first. */
  mountFrom?: string;
}

export interface PushedBlob extends Descriptor {
  /** How the blob got there: it already was, mounted from another repository, or uploaded. */
  how: "exists" | "mounted" | "uploaded";
}

/**
 * Pushes a blob unless the repository has it: a cross-repository mount first when `mountFrom` is given
 * (the registry may decline, then we upload), then one PUT, or PATCH chunks of `chunkSize` and a final
 * PUT. A failed upload is retried from a new upload session.
 */
export async function pushBlob(s: Session, repo: Repo, content: Uint8Array | BlobSource, opts: PushBlobOptions = {}): Promise<PushedBlob> {
  const source = content instanceof Uint8Array ? bytesSource(content) : content;
  const digest = opts.digest ? checkDigest(opts.digest) : await digestOf(source);
  const desc: Descriptor = { mediaType: opts.mediaType ?? "application/octet-stream", digest, size: source.size };
  if (opts.chunkSize !== undefined) positiveInt(opts.chunkSize, 1, "chunkSize");
  if ((await headBlob(s, repo, digest, opts)) !== undefined) return { ...desc, how: "exists" };
  const what = `push blob ${name(repo)}@${digest}`;
  return s.retry(opts.signal, async () => {
    const start = await startUpload(s, repo, digest, opts.mountFrom, what, opts.signal);
    if (start.mounted) return { ...desc, how: "mounted" as const };
    let location = start.location;
    if (opts.chunkSize !== undefined && source.size > 0) {
      for (let pos = 0; pos < source.size; pos += opts.chunkSize) {
        const n = Math.min(opts.chunkSize, source.size - pos);
        const piece = await source.read(pos, n);
        const ex = await s.exchange(repo, "push", "PATCH", location, {
          headers: { "content-type": "application/octet-stream", "content-range": `${pos}-${pos + n - 1}`, "content-length": String(n) },
          body: () => piece, signal: opts.signal, // no overall deadline for a big chunk: undici's silence limits apply
        });
        if (ex.status !== 202) throw await s.statusError(ex, `${what}: PATCH bytes ${pos}-${pos + n - 1}`, repo);
        await ex.body.dump({ limit: 64 * 1024 }).catch(() => {});
        // The registry says what it holds now ("0-<last>"); anything else and the final digest would not match.
        const held = one(ex.headers.range);
        if (held !== undefined && held.replace(/^bytes=/, "") !== `0-${pos + n - 1}`) {
          throw new RemoteError("REMOTE_IO", ex.url, `${what}: after PATCH bytes ${pos}-${pos + n - 1} the registry holds ${held}`);
        }
        location = uploadLocation(ex, location, what);
      }
      await finishUpload(s, repo, location, digest, undefined, what, opts.signal);
    } else {
      await finishUpload(s, repo, location, digest, source, what, opts.signal);
    }
    return { ...desc, how: "uploaded" as const };
  });
}

/** Cross-repository mount of a blob `from` another repository of the same registry; false if declined. */
export async function mountBlob(s: Session, repo: Repo, digest: string, from: string, opts: CallOptions = {}): Promise<boolean> {
  checkDigest(digest);
  return s.retry(opts.signal, async () => {
    const start = await startUpload(s, repo, digest, from, `mount blob ${digest} from ${from} into ${name(repo)}`, opts.signal);
    if (!start.mounted) await cancelUpload(s, repo, start.location, opts.signal); // declined: the session it opened instead
    return start.mounted;
  });
}

/**
 * Opens an upload session and cancels it: the repository answers and takes our pushes (credentials with push
 * scope), checked before any long work whose result would go there.
 */
export async function checkPush(s: Session, repo: Repo, opts: CallOptions = {}): Promise<void> {
  await s.retry(opts.signal, async () => {
    const start = await startUpload(s, repo, "", undefined, `push to ${name(repo)}`, opts.signal);
    if (!start.mounted) await cancelUpload(s, repo, start.location, opts.signal);
  });
}

/** Discards an upload session (best effort: the registry drops sessions nobody completes anyway). */
async function cancelUpload(s: Session, repo: Repo, location: string, signal?: AbortSignal): Promise<void> {
  const ex = await s.exchange(repo, "push", "DELETE", location, { signal, deadlineMs: s.timeoutMs }).catch(() => undefined);
  await ex?.body.dump().catch(() => {});
}

async function startUpload(s: Session, repo: Repo, digest: string, mountFrom: string | undefined, what: string, signal?: AbortSignal): Promise<{ mounted: true } | { mounted: false; location: string }> {
  const query = mountFrom ? `?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(mountFrom)}` : "";
  const ex = await s.exchange(repo, "push", "POST", `/v2/${repo.repository}/blobs/uploads/${query}`, {
    headers: { "content-length": "0" }, signal, deadlineMs: s.timeoutMs, mountFrom,
  });
  await ex.body.dump({ limit: 64 * 1024 }).catch(() => {});
  if (ex.status === 201 && mountFrom) return { mounted: true };
  if (ex.status !== 202) throw await s.statusError(ex, `${what}: POST upload`, repo);
  return { mounted: false, location: uploadLocation(ex, undefined, what) };
}

async function finishUpload(s: Session, repo: Repo, location: string, digest: string, source: BlobSource | undefined, what: string, signal?: AbortSignal): Promise<void> {
  const url = new URL(location);
  url.searchParams.set("digest", digest);
  const size = source?.size ?? 0;
  const ex = await s.exchange(repo, "push", "PUT", url.href, {
    // Content-Type matters: without it the registry's Go form parsing eats the body.
    headers: { "content-type": "application/octet-stream", "content-length": String(size) },
    body: source && size > 0 ? () => pieces(source) : undefined, signal,
  });
  if (ex.status !== 201) throw await s.statusError(ex, `${what}: PUT`, repo);
  await ex.body.dump({ limit: 64 * 1024 }).catch(() => {});
  const header = one(ex.headers["docker-content-digest"]);
  if (header && header !== digest) throw new EodError("DIGEST_MISMATCH", `${what}: the registry stored ${header}`);
}

/** The upload URL from Location (absolute or relative to the registry). */
function uploadLocation(ex: Exchange, previous: string | undefined, what: string): string {
  const loc = one(ex.headers.location);
  if (!loc) throw new RemoteError("REMOTE_IO", ex.url, `${what}: the registry gave no upload Location`);
  return new URL(loc, previous ?? ex.url).href;
}

/** PUT a manifest (or index) under a tag or its digest; returns its descriptor. */
/** A pushed manifest; `ociSubject` is the registry's OCI-Subject header: it recorded the manifest's subject. */
export interface PushedManifest extends Descriptor {
  ociSubject?: string;
}

export async function pushManifest(s: Session, repo: Repo, reference: string, bytes: Uint8Array, mediaType: string, opts: CallOptions = {}): Promise<PushedManifest> {
  const digest = sha256Digest(bytes);
  if (reference.includes(":")) verifyBytes(bytes, reference, `manifest ${name(repo)}@${reference}`);
  parseManifest(bytes, mediaType, `manifest for ${name(repo)}:${reference}`); // do not push what we could not read back
  const what = `PUT manifest ${name(repo)}:${reference}`;
  const ociSubject = await s.retry(opts.signal, async () => {
    const ex = await s.exchange(repo, "push", "PUT", `/v2/${repo.repository}/manifests/${reference}`, {
      headers: { "content-type": mediaType }, body: () => bytes, signal: opts.signal, deadlineMs: s.timeoutMs,
    });
    if (ex.status !== 201 && ex.status !== 200) throw await s.statusError(ex, what, repo);
    await ex.body.dump({ limit: 64 * 1024 }).catch(() => {});
    const header = one(ex.headers["docker-content-digest"]);
    if (header && header !== digest) throw new EodError("DIGEST_MISMATCH", `${what}: the registry stored it as ${header}, we sent ${digest}`);
    return one(ex.headers["oci-subject"]);
  });
  return { mediaType, digest, size: bytes.length, ...(ociSubject ? { ociSubject } : {}) };
}

/** The source read in 1 MiB pieces, as an upload body. */
async function* pieces(source: BlobSource): AsyncGenerator<Uint8Array> {
  const step = 1 << 20;
  for (let pos = 0; pos < source.size; pos += step) yield await source.read(pos, Math.min(step, source.size - pos));
}

async function digestOf(source: BlobSource): Promise<string> {
  const h = sha256Stream();
  for await (const p of pieces(source)) h.update(p);
  return `sha256:${h.digest("hex")}`;
}

/** An upload whose bytes are sent while they are produced; see streamBlob(). */
export interface StreamedUpload {
  /** Resolves once every byte of the stream is with the registry (rejects if the upload failed). */
  readonly sent: Promise<number>;
  /** Completes the upload as `digest` (the registry checks it) once `sent` resolved. */
  commit(digest: string, mediaType?: string): Promise<PushedBlob>;
  /** Stops sending and discards what the registry has (an upload nobody commits is dropped by it too). */
  cancel(): Promise<void>;
}

/** streamBlob() options. */
export interface StreamBlobOptions extends CallOptions {
  /**
   * Ends the streamed PATCH and starts another after about this many bytes (default: one PATCH for the whole
   * stream). The registry stores (and syncs) each PATCH as it ends, so less is left for the final PUT.
   */
  segmentBytes?: number;
}

/**
 * Starts a blob upload whose content is a stream of unknown length and digest (a file still being written):
 * streamed PATCHes (chunked request bodies, one or one per `segmentBytes`), committed with a PUT once the
 * caller knows the digest. Not retried (a stream cannot be sent again): on failure, push the finished
 * content with pushBlob().
 */
export function streamBlob(s: Session, repo: Repo, body: AsyncIterable<Uint8Array>, opts: StreamBlobOptions = {}): StreamedUpload {
  const what = `push blob ${name(repo)} (streamed)`;
  const ac = new AbortController();
  const signal = opts.signal ? AbortSignal.any([opts.signal, ac.signal]) : ac.signal;
  const segment = opts.segmentBytes === undefined ? Infinity : positiveInt(opts.segmentBytes, 1, "segmentBytes");
  let start: string | undefined;
  let location: string | undefined;
  const sent = (async () => {
    const started = await startUpload(s, repo, "", undefined, what, signal);
    if (started.mounted) throw new RemoteError("REMOTE_IO", name(repo), `${what}: the registry answered a plain upload as a mount`);
    start = location = started.location;
    const it = body[Symbol.asyncIterator]();
    let next = await it.next();
    let n = 0;
    for (;;) {
      const from = n;
      let full = false; // this PATCH ended at segmentBytes, not at the stream's end
      const pieces = (async function* () {
        while (!next.done) {
          const piece = next.value;
          n += piece.length;
          yield piece;
          if (n - from >= segment) { full = true; return; } // ends now, not when the next piece comes
          next = await it.next();
        }
      })();
      const ex = await s.exchange(repo, "push", "PATCH", location, { headers: { "content-type": "application/octet-stream" }, body: () => pieces, signal });
      if (ex.status !== 202) throw await s.statusError(ex, `${what}: PATCH`, repo);
      await ex.body.dump({ limit: 64 * 1024 }).catch(() => {});
      const held = one(ex.headers.range);
      if (held !== undefined && held.replace(/^bytes=/, "") !== (n ? `0-${n - 1}` : "0-0")) {
        throw new RemoteError("REMOTE_IO", ex.url, `${what}: sent ${n} bytes, the registry holds ${held}`);
      }
      location = uploadLocation(ex, location, what);
      if (!full || (next = await it.next()).done) break; // no empty PATCH after the last segment
    }
    return n;
  })();
  sent.catch(() => {}); // observed by commit() or the caller
  return {
    sent,
    async commit(digest, mediaType) {
      const size = await sent;
      await finishUpload(s, repo, location!, checkDigest(digest), undefined, `${what} as ${digest}`, opts.signal);
      return { mediaType: mediaType ?? "application/octet-stream", digest, size, how: "uploaded" };
    },
    async cancel() {
      ac.abort(new EodError("USAGE", `${what}: cancelled`));
      await sent.catch(() => {});
      const at = location ?? start;
      if (at) await cancelUpload(s, repo, at, opts.signal);
    },
  };
}
