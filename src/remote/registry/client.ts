// The registry client (OCI distribution spec): resolving references (through an index to a platform),
// manifests, blobs (whole, streamed, by Range), and the pushes of upload.ts; every request goes through
// session.ts (auth, transport, status errors, the project's retry policy: timeouts, resets, short bodies,
// 5xx, 429). Everything fetched by digest is verified against it: blobs by
// streamed sha256 and their descriptor's size, manifests by the digest asked for or Docker-Content-Digest.
// Range reads are not verified here (a range is not a whole blob); the cache core verifies each chunk.
import { EodError, RemoteError } from "../../errors.ts";
import { contentLength, discard, one } from "../answer.ts";
import { readRangeAnswer } from "../range-reader.ts";
import { DEFAULT_MAX_FILE_BYTES, type ReadOptions, type RemoteStats } from "../remote.ts";
import type { BlobSource } from "./blob-source.ts";
import { checkDigest, DigestVerifier, sha256Digest, verifyBytes } from "./digest.ts";
import {
  formatPlatform, hostPlatform, indexPlatforms, isIndexType, isNonDistributable, MANIFEST_ACCEPT, MAX_MANIFEST_BYTES, parseManifest, parsePlatform, selectPlatform,
  type Descriptor, type ImageIndex, type ImageManifest, type Platform,
} from "./manifest.ts";
import { manifestRef, parseReference, type Reference } from "./reference.ts";
import { headBlob, name, readAll, Session, type CallOptions, type RegistryClientOptions, type Repo } from "./session.ts";
import { toRemoteError, type Exchange } from "./transport.ts";
import { checkPush, mountBlob, pushBlob, pushManifest, streamBlob, type PushBlobOptions, type PushedBlob, type PushedManifest, type StreamBlobOptions, type StreamedUpload } from "./upload.ts";
import { fetchReferrers } from "./referrers-api.ts";
import type { Referrer } from "./referrers.ts";

export type { CallOptions, RegistryClientOptions, Repo } from "./session.ts";
export type { PushBlobOptions, PushedBlob, PushedManifest, StreamBlobOptions, StreamedUpload } from "./upload.ts";

export interface FetchedManifest {
  /** The digest of `bytes` (checked against the one asked for and Docker-Content-Digest). */
  digest: string;
  mediaType: string;
  size: number;
  bytes: Uint8Array;
  manifest: ImageManifest | ImageIndex;
}

export interface ResolvedImage extends FetchedManifest {
  manifest: ImageManifest;
  /** The index the manifest was chosen from, when the reference named one. */
  index?: FetchedManifest & { manifest: ImageIndex };
  /** The platform chosen from the index. */
  platform?: Platform;
}

/**
 * A client for OCI registries. One per process is enough: it keeps connections, tokens and credentials.
 *
 * @example
 * const client = new RegistryClient({ insecureRegistries: [] });
 * try {
 *   const img = await client.resolve("127.0.0.1:5000/team/app:v1");       // platform: the host's
 *   const config = await client.fetchBlob(img.ref, img.manifest.config);   // verified
 *   const head = await client.readBlobRange(img.ref, img.manifest.layers[0].digest, 0, 512);
 * } finally {
 *   await client.close();
 * }
 */
export class RegistryClient {
  readonly #s: Session;

  constructor(opts: RegistryClientOptions = {}) {
    this.#s = new Session(opts);
  }

  /** Requests, bytes received, retries and failed attempts since the client was made. */
  stats(): RemoteStats {
    return { ...this.#s.stats };
  }

  async close(): Promise<void> {
    await this.#s.close();
  }

  // ---- manifests ------------------------------------------------------------------------------------

  /** GET a manifest or index by tag or digest; its bytes are checked against the digest. */
  async getManifest(repo: Repo, reference: string, opts: CallOptions = {}): Promise<FetchedManifest> {
    const path = `/v2/${repo.repository}/manifests/${reference}`;
    const what = `manifest ${name(repo)}:${reference}`.replace(/:sha256:/, "@sha256:");
    const byDigest = reference.includes(":");
    if (byDigest) checkDigest(reference);
    return this.#s.retry(opts.signal, async () => {
      const ex = await this.#s.exchange(repo, "pull", "GET", path, { headers: { accept: MANIFEST_ACCEPT }, signal: opts.signal, deadlineMs: this.#s.timeoutMs });
      if (ex.status !== 200) throw await this.#s.statusError(ex, what, repo, byDigest ? `manifest ${reference}` : `tag ${JSON.stringify(reference)}`);
      const bytes = await readAll(ex, what, MAX_MANIFEST_BYTES, "manifest");
      this.#s.stats.bytes += bytes.length;
      const computed = sha256Digest(bytes);
      // A manifest is trusted only if it is the one asked for: by digest, or as the registry named it.
      if (byDigest) verifyBytes(bytes, reference, `${what}: refused`);
      const header = one(ex.headers["docker-content-digest"]);
      if (header) {
        try { checkDigest(header); } catch { throw new EodError("DIGEST_MISMATCH", `${what}: refused, Docker-Content-Digest ${JSON.stringify(header)} is not a digest`); }
        verifyBytes(bytes, header, `${what}: refused, content does not match Docker-Content-Digest`);
      }
      const { mediaType, manifest } = parseManifest(bytes, one(ex.headers["content-type"]), what);
      return { digest: byDigest ? reference : header ?? computed, mediaType, size: bytes.length, bytes, manifest };
    });
  }

  /**
   * Resolves a reference to one image manifest: through an index (OCI index or Docker manifest list) to
   * the entry of `platform` (default the host's, "linux/amd64" here). NOT_FOUND names what is missing.
   */
  async resolve(reference: string | Reference, opts: CallOptions & { platform?: Platform | string } = {}): Promise<ResolvedImage & { ref: Reference }> {
    const ref = typeof reference === "string" ? parseReference(reference) : reference;
    const want = typeof opts.platform === "string" ? parsePlatform(opts.platform) : opts.platform ?? hostPlatform();
    let top = await this.getManifest(ref, manifestRef(ref), opts);
    let index: (FetchedManifest & { manifest: ImageIndex }) | undefined;
    let platform: Platform | undefined;
    for (let depth = 0; isIndexType(top.mediaType); depth++) {
      if (depth >= 2) throw new EodError("IMAGE_INVALID", `${name(ref)}: indexes nested more than 2 deep`);
      index = top as FetchedManifest & { manifest: ImageIndex };
      const entry = selectPlatform(index.manifest, want);
      if (!entry) {
        const have = indexPlatforms(index.manifest);
        throw new EodError("REGISTRY_NOT_FOUND", `${name(ref)}:${manifestRef(ref)} has no image for ${formatPlatform(want)} (it has ${have.join(", ") || "no platforms"}); choose one with --platform`);
      }
      platform = entry.platform;
      const next = await this.getManifest(ref, entry.digest, opts);
      if (next.size !== entry.size) throw new EodError("DIGEST_MISMATCH", `manifest ${entry.digest}: ${next.size} bytes, the index says ${entry.size}`);
      top = next;
    }
    return { ...top, manifest: top.manifest as ImageManifest, ref, ...(index ? { index } : {}), ...(platform ? { platform } : {}) };
  }

  // ---- blobs: reading -------------------------------------------------------------------------------

  /** Size of a blob (HEAD), or undefined when the repository does not have it. */
  blobSize(repo: Repo, digest: string, opts: CallOptions = {}): Promise<number | undefined> {
    return headBlob(this.#s, repo, digest, opts);
  }

  /**
   * A blob as a stream of chunks, verified: the digest (and the descriptor's size, when given) is checked
   * when the stream ends, and a mismatch throws DIGEST_MISMATCH from the iterator, so treat the chunks as
   * unverified until the loop finishes. A connection lost mid-blob is resumed with a Range request.
   */
  async *blobStream(repo: Repo, blob: string | Descriptor, opts: CallOptions = {}): AsyncGenerator<Uint8Array> {
    const { digest, size } = typeof blob === "string" ? { digest: blob, size: undefined } : blob;
    const verifier = new DigestVerifier(digest);
    const what = `blob ${name(repo)}@${digest}`;
    const path = `/v2/${repo.repository}/blobs/${digest}`;
    const retry = this.#s.retryLoop(opts.signal);
    for (;;) {
      const from = verifier.bytes;
      let ex: Exchange | undefined;
      try {
        ex = await this.#s.exchange(repo, "pull", "GET", path, { headers: from > 0 ? { range: `bytes=${from}-` } : {}, signal: opts.signal });
        let skip = 0;
        if (ex.status === 206 && from > 0) {
          const m = /^bytes (\d+)-\d+\/(?:\d+|\*)$/.exec(one(ex.headers["content-range"]) ?? "");
          if (!m || Number(m[1]) !== from) throw new RemoteError("REMOTE_IO", ex.url, `GET ${what}: resumed answer is for another range (Content-Range ${one(ex.headers["content-range"])})`);
        } else if (ex.status === 200) {
          skip = from; // the server ignored Range: drop what we already have
        } else if (ex.status === 404 && typeof blob !== "string" && isNonDistributable(blob)) {
          discard(ex.body);
          // Windows base layers: registries need not serve them; their `urls` (any host) are not fetched.
          const at = blob.urls?.length ? `; its data is at ${blob.urls.join(", ")}, which eod does not fetch` : "";
          throw new EodError("SOURCE_UNSUPPORTED", `${what} is a non-distributable layer (${blob.mediaType}) that ${name(repo)} does not serve${at} (HTTP 404)`);
        } else {
          throw await this.#s.statusError(ex, `GET ${what}`, repo, `blob ${digest}`);
        }
        const declared = contentLength(ex.headers);
        if (size !== undefined && declared !== undefined && declared !== size - from + skip) {
          throw new EodError("DIGEST_MISMATCH", `${what}: registry says ${declared + from - skip} bytes, the descriptor says ${size}`);
        }
        for await (const piece of ex.body as AsyncIterable<Buffer>) {
          let chunk: Uint8Array = piece;
          if (skip > 0) {
            const n = Math.min(skip, chunk.length);
            skip -= n;
            chunk = chunk.subarray(n);
            if (chunk.length === 0) continue;
          }
          if (size !== undefined && verifier.bytes + chunk.length > size) throw new EodError("DIGEST_MISMATCH", `${what}: more than the descriptor's ${size} bytes`);
          verifier.update(chunk);
          this.#s.stats.bytes += chunk.length;
          yield chunk;
        }
        if (size !== undefined && verifier.bytes < size) {
          throw new RemoteError("REMOTE_IO", ex.url, `GET ${what}: answer ended after ${verifier.bytes} of ${size} bytes`);
        }
        ex = undefined;
        break;
      } catch (err) {
        await retry.failed(toRemoteError(err, `GET ${what}`, path, false, this.#s.timeoutMs));
      } finally {
        if (ex) discard(ex.body);
      }
    }
    verifier.verify(what, size);
  }

  /** A whole blob, verified against its digest (and size). maxBytes default 512 MiB: IMAGE_INVALID past it. */
  async fetchBlob(repo: Repo, blob: string | Descriptor, opts: CallOptions & { maxBytes?: number } = {}): Promise<Uint8Array> {
    const max = opts.maxBytes ?? DEFAULT_MAX_FILE_BYTES;
    const size = typeof blob === "string" ? undefined : blob.size;
    const digest = typeof blob === "string" ? blob : blob.digest;
    if (size !== undefined && size > max) throw new EodError("IMAGE_INVALID", `blob ${name(repo)}@${digest}: ${size} bytes is more than the limit of ${max}`);
    const parts: Uint8Array[] = [];
    let got = 0;
    for await (const chunk of this.blobStream(repo, blob, opts)) {
      got += chunk.length;
      if (got > max) throw new EodError("IMAGE_INVALID", `blob ${name(repo)}@${digest}: more than the limit of ${max} bytes`);
      parts.push(chunk);
    }
    return Buffer.concat(parts, got);
  }

  /**
   * Exactly `length` bytes at `offset` of a blob (HTTP Range), handed to `opts.onData` as they arrive; the
   * answer is read by range-reader.ts, as the HTTP remote's is (a registry that ignores Range is used from
   * offset 0 only). NOT verified: a range is not the whole blob; callers verify what they read (the cache
   * core checks each chunk against its own digest).
   */
  async readBlobRange(repo: Repo, digest: string, offset: number, length: number, opts: CallOptions & Pick<ReadOptions, "onData"> = {}): Promise<Uint8Array> {
    checkDigest(digest);
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) throw new RangeError(`bad range offset ${offset} length ${length}`);
    if (length === 0) return new Uint8Array(0);
    const last = offset + length - 1;
    const what = `GET blob ${name(repo)}@${digest} (bytes ${offset}-${last})`;
    return this.#s.retry(opts.signal, async () => {
      const ex = await this.#s.exchange(repo, "pull", "GET", `/v2/${repo.repository}/blobs/${digest}`, { headers: { range: `bytes=${offset}-${last}` }, signal: opts.signal, deadlineMs: this.#s.timeoutMs });
      if (ex.status === 416) {
        discard(ex.body);
        throw new EodError("IMAGE_INVALID", `${what}: the range is past the end of the blob (HTTP 416)`);
      }
      if (ex.status !== 206 && ex.status !== 200) throw await this.#s.statusError(ex, what, repo, `blob ${digest}`);
      try {
        const out = await readRangeAnswer(ex, what, offset, length, opts.onData);
        this.#s.stats.bytes += out.length;
        return out;
      } catch (err) {
        throw toRemoteError(err, what, ex.url, false, this.#s.timeoutMs);
      }
    });
  }

  // ---- pushes (upload.ts) ---------------------------------------------------------------------------

  /** See upload.ts `pushBlob`: skipped when present, mounted when possible, else uploaded (chunked if asked). */
  pushBlob(repo: Repo, content: Uint8Array | BlobSource, opts: PushBlobOptions = {}): Promise<PushedBlob> {
    return pushBlob(this.#s, repo, content, opts);
  }

  /**
   * See upload.ts `streamBlob`: an upload sent while its content is produced (digest unknown until the end),
   * committed or cancelled by the caller. Not retried: fall back to pushBlob() with the finished content.
   */
  streamBlob(repo: Repo, body: AsyncIterable<Uint8Array>, opts: StreamBlobOptions = {}): StreamedUpload {
    return streamBlob(this.#s, repo, body, opts);
  }

  /** Cross-repository mount of a blob `from` another repository of the same registry; false if declined. */
  mountBlob(repo: Repo, digest: string, from: string, opts: CallOptions = {}): Promise<boolean> {
    return mountBlob(this.#s, repo, digest, from, opts);
  }

  /** Whether the repository takes our pushes: an upload session opened and cancelled (upload.ts `checkPush`). */
  checkPush(repo: Repo, opts: CallOptions = {}): Promise<void> {
    return checkPush(this.#s, repo, opts);
  }

  /** PUT a manifest (or index) under a tag or its digest; returns its descriptor (and the OCI-Subject header). */
  pushManifest(repo: Repo, reference: string, bytes: Uint8Array, mediaType: string, opts: CallOptions = {}): Promise<PushedManifest> {
    return pushManifest(this.#s, repo, reference, bytes, mediaType, opts);
  }

  /**
   * The referrers API's list of the manifests whose subject is `subject` (referrers-api.ts); undefined when
   * the registry has no referrers API. referrers.ts `listReferrers` falls back to the referrers tag.
   */
  referrers(repo: Repo, subject: string, opts: CallOptions & { artifactType?: string } = {}): Promise<Referrer[] | undefined> {
    return fetchReferrers(this.#s, repo, subject, opts);
  }
}
