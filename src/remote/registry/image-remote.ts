// An image in a registry as a Remote, so a mount loads and serves it exactly like an image directory. The
// source is `docker://<reference>`. On first use the reference is resolved (tag → platform manifest, verified
// by the registry's digest or the one named). An erofs-ondemand image (its OCI form, made by `eod convert`)
// maps its paths to the layers' digests by their title annotations. An ordinary image (issue 14) is read
// through its index: the referrer artifact `eod index <ref> --push` made (index-discovery.ts), whose files map
// the same way and whose `blobs/<id>` are the image's own layers; or, with `indexDir` (`--index-locally`), an
// index image directory built on this node, whose files are read from there and whose blobs are the layers.
// Either is checked against the image before anything is read from it. manifest.json is fetched by its layer
// digest (verified) and the layers must agree with it; from there loadImage verifies the bootstrap and chunk
// tables against manifest.json and the cache core every chunk against its table.
// The resolution is done once: `pin()` gives `docker://host/repo[:tag]@sha256:…`, what a mount records so
// that a restarted daemon re-attaches to the same image even if the tag has moved.
import { EodError } from "../../errors.ts";
import { checkIndexAgainstImage, type IndexedImage } from "../../image/index-artifact.ts";
import { MANIFEST_NAME, parseManifest } from "../../image/manifest.ts";
import { checkOciAgainstManifest, filesOfOciManifest, isOurLayerType, type OciDescriptor } from "../../image/oci-form.ts";
import type { DirRemote } from "../dir-remote.ts";
import type { ReadOptions, Remote, RemoteOptions, RemoteStats } from "../remote.ts";
import type { RegistryClient, ResolvedImage } from "./client.ts";
import { checkDigest } from "./digest.ts";
import { formatReference, parseReference, type Reference } from "./reference.ts";
import type { RegistryRemote } from "./registry-remote.ts";

export const REGISTRY_SCHEME = "docker://";

/** Whether a mount source names a registry image (`docker://<reference>`). */
export function isRegistrySource(source: string): boolean {
  return source.startsWith(REGISTRY_SCHEME);
}

export interface RegistryImageOptions extends RemoteOptions {
  /** os/arch[/variant] when the reference names an index; default the host's. */
  platform?: string;
  /**
   * An index image directory built on this node for the ordinary image the reference names (`--index-locally`):
   * the image's files come from it, its blobs (the layers) from the registry; no referrer is looked for.
   */
  indexDir?: string;
  /**
   * The digest of the index artifact to use instead of the newest that fits (what `index` said when the image
   * was first mounted): a restarted daemon then serves the same index even if a newer one was pushed since.
   */
  indexArtifact?: string;
}

/** Where the files of a resolved image come from. */
type Form =
  | { kind: "converted"; files: Map<string, OciDescriptor> }
  | { kind: "artifact"; digest: string; files: Map<string, OciDescriptor>; image: IndexedImage }
  // files: the blobs only (the image's layers), the rest is read from `dir`
  | { kind: "local"; dir: DirRemote; manifestBytes: Uint8Array; files: Map<string, OciDescriptor>; image: IndexedImage };

interface Opened {
  client: RegistryClient;
  remote: RegistryRemote;
  form: Form;
}

export class RegistryImageRemote implements Remote {
  readonly #ref: Reference;
  readonly #opts: RegistryImageOptions;
  #pinned: Reference | null = null;
  #opening: Promise<Opened> | null = null;
  #closed = false;
  #remote: RegistryRemote | null = null;
  #form: Form | null = null;

  /** @param reference `docker://host/repo:tag` or `host/repo[:tag][@digest]` */
  constructor(reference: string, opts: RegistryImageOptions = {}) {
    this.#ref = parseReference(isRegistrySource(reference) ? reference.slice(REGISTRY_SCHEME.length) : reference);
    this.#opts = opts;
  }

  /** `docker://<reference>`; with the manifest digest once resolved. */
  get location(): string {
    return REGISTRY_SCHEME + formatReference(this.#pinned ?? this.#ref);
  }

  /** Resolves the reference (once) and returns the location pinned to the manifest digest. */
  async pin(): Promise<string> {
    await this.#open();
    return this.location;
  }

  /** Where the index of an ordinary image came from (the artifact's digest, or the local directory); null for a converted image or before the first read. */
  get index(): { artifact: string } | { dir: string } | null {
    const form = this.#form;
    return form?.kind === "artifact" ? { artifact: form.digest } : form?.kind === "local" ? { dir: form.dir.location } : null;
  }

  async readFile(relPath: string, opts: ReadOptions & { maxBytes?: number } = {}): Promise<Uint8Array> {
    const { form } = await this.#open();
    // The local index's manifest.json is the one checked at open, read once.
    if (form.kind === "local" && relPath === MANIFEST_NAME) return form.manifestBytes;
    const bytes = await (await this.#source(relPath)).readFile(relPath, opts); // from the registry: verified against the layer's digest and size
    if (relPath === MANIFEST_NAME && form.kind !== "local") {
      const where = `${this.location} ${MANIFEST_NAME}`;
      const m = parseManifest(Buffer.from(bytes).toString("utf8"), where);
      checkOciAgainstManifest(form.files, m, this.location);
      if (form.kind === "artifact") checkIndexAgainstImage(m, form.image, `${this.location} (index ${form.digest})`);
    }
    return bytes;
  }

  async readRange(relPath: string, offset: number, length: number, opts: ReadOptions = {}): Promise<Uint8Array> {
    return (await this.#source(relPath)).readRange(relPath, offset, length, opts);
  }

  async size(relPath: string, opts: ReadOptions = {}): Promise<number> {
    return (await this.#source(relPath)).size(relPath, opts);
  }

  stats(): RemoteStats {
    return this.#remote?.stats() ?? { requests: 0, bytes: 0, retries: 0, errors: 0 };
  }

  async close(): Promise<void> {
    this.#closed = true;
    const opened = await this.#opening?.catch(() => null);
    if (opened?.form.kind === "local") await opened.form.dir.close();
    await opened?.client.close();
  }

  /** The remote a path is read from: the local index directory for its own files, else the registry. */
  async #source(relPath: string): Promise<Remote> {
    const { remote, form } = await this.#open();
    return form.kind === "local" && !form.files.has(relPath) ? form.dir : remote;
  }

  #open(): Promise<Opened> {
    if (this.#closed) return Promise.reject(new EodError("USAGE", `${this.location} is closed`));
    // A failed resolution is not kept: the next read tries again (the registry may be back).
    this.#opening ??= this.#resolve().catch((err: unknown) => { this.#opening = null; throw err; });
    return this.#opening;
  }

  async #resolve(): Promise<Opened> {
    // Loaded on first use: a daemon serving image directories never pays for the registry client.
    const [{ RegistryClient }, { RegistryRemote }] = await Promise.all([import("./client.ts"), import("./registry-remote.ts")]);
    const client = new RegistryClient({
      insecureRegistries: this.#opts.insecureRegistries ?? [],
      timeoutMs: this.#opts.timeoutMs, retries: this.#opts.retries, concurrency: this.#opts.concurrency,
    });
    try {
      const img = await client.resolve(this.#ref, { platform: this.#opts.platform });
      const where = `${REGISTRY_SCHEME}${formatReference(this.#ref)} (manifest ${img.digest})`;
      const form = await this.#formOf(client, img, where);
      this.#pinned = { ...this.#ref, digest: img.digest };
      const remote = new RegistryRemote(client, this.#ref, { files: Object.fromEntries(form.files), concurrency: this.#opts.concurrency });
      this.#remote = remote;
      this.#form = form;
      return { client, remote, form };
    } catch (err) {
      await client.close();
      throw err;
    }
  }

  /** Where the image's files come from: its own layers (converted), its index artifact, or the local index. */
  async #formOf(client: RegistryClient, img: ResolvedImage, where: string): Promise<Form> {
    if (img.manifest.layers.some((l) => isOurLayerType(l.mediaType))) {
      if (this.#opts.indexDir !== undefined) throw new EodError("USAGE", `${where} is an erofs-ondemand image: it needs no index (mount it without --index-locally)`);
      return { kind: "converted", files: filesOfOciManifest(img.manifest, where).files };
    }
    const image: IndexedImage = { digest: img.digest, mediaType: img.mediaType, size: img.size, layers: img.manifest.layers };
    const { findIndexArtifact, indexArtifactFiles, openLocalIndex } = await import("./index-discovery.ts");
    const pinned = this.#opts.indexArtifact;
    if (pinned !== undefined && this.#opts.indexDir === undefined) {
      return { kind: "artifact", digest: pinned, files: await indexArtifactFiles(client, this.#ref, checkDigest(pinned), image), image };
    }
    if (this.#opts.indexDir === undefined) {
      const found = await findIndexArtifact(client, this.#ref, image, where);
      return { kind: "artifact", digest: found.digest, files: found.files, image };
    }
    const { DirRemote } = await import("../dir-remote.ts");
    const local = await openLocalIndex(this.#opts.indexDir, image, where);
    // The blobs' remote forms are the image's layers (checked by openLocalIndex): read from the registry.
    const files = new Map(local.manifest.blobs.map((b) => [b.remote.path, image.layers.find((l) => l.digest === b.remote.digest)!]));
    return { kind: "local", dir: new DirRemote(this.#opts.indexDir, { concurrency: this.#opts.concurrency }), manifestBytes: local.manifestBytes, files, image };
  }
}
