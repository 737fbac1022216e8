// An erofs-ondemand image in a registry (its OCI form, made by `eod convert`) as a Remote, so a mount loads
// and serves it exactly like an image directory. The source is `docker://<reference>`. On first use the
// reference is resolved (tag → platform manifest, verified by the registry's digest or the one named), and
// the image's paths are mapped to the layers' digests by their title annotations. manifest.json is fetched
// by its layer digest (verified) and the OCI layers must agree with it; from there loadImage verifies the
// bootstrap and chunk tables against manifest.json and the cache core every chunk against its table.
// The resolution is done once: `pin()` gives `docker://host/repo[:tag]@sha256:…`, what a mount records so
// that a restarted daemon re-attaches to the same image even if the tag has moved.
import { EodError } from "../../errors.ts";
import { MANIFEST_NAME, parseManifest } from "../../image/manifest.ts";
import { checkOciAgainstManifest, filesOfOciManifest, type OciDescriptor } from "../../image/oci-form.ts";
import type { ReadOptions, Remote, RemoteOptions, RemoteStats } from "../remote.ts";
import type { RegistryClient } from "./client.ts";
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
}

interface Opened {
  client: RegistryClient;
  remote: RegistryRemote;
  files: Map<string, OciDescriptor>;
}

export class RegistryImageRemote implements Remote {
  readonly #ref: Reference;
  readonly #opts: RegistryImageOptions;
  #pinned: Reference | null = null;
  #opening: Promise<Opened> | null = null;
  #closed = false;
  #remote: RegistryRemote | null = null;

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

  async readFile(relPath: string, opts: ReadOptions & { maxBytes?: number } = {}): Promise<Uint8Array> {
    const { remote, files } = await this.#open();
    const bytes = await remote.readFile(relPath, opts); // verified against the layer's digest and size
    if (relPath === MANIFEST_NAME) {
      const where = `${this.location} ${MANIFEST_NAME}`;
      checkOciAgainstManifest(files, parseManifest(Buffer.from(bytes).toString("utf8"), where), this.location);
    }
    return bytes;
  }

  async readRange(relPath: string, offset: number, length: number, opts: ReadOptions = {}): Promise<Uint8Array> {
    return (await this.#open()).remote.readRange(relPath, offset, length, opts);
  }

  async size(relPath: string, opts: ReadOptions = {}): Promise<number> {
    return (await this.#open()).remote.size(relPath, opts);
  }

  stats(): RemoteStats {
    return this.#remote?.stats() ?? { requests: 0, bytes: 0, retries: 0, errors: 0 };
  }

  async close(): Promise<void> {
    this.#closed = true;
    const opened = await this.#opening?.catch(() => null);
    await opened?.client.close();
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
      const { files } = filesOfOciManifest(img.manifest, `${REGISTRY_SCHEME}${formatReference(this.#ref)} (manifest ${img.digest})`);
      this.#pinned = { ...this.#ref, digest: img.digest };
      const remote = new RegistryRemote(client, this.#ref, { files: Object.fromEntries(files), concurrency: this.#opts.concurrency });
      this.#remote = remote;
      return { client, remote, files };
    } catch (err) {
      await client.close();
      throw err;
    }
  }
}
