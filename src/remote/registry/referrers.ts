// Referrers (OCI distribution spec 1.1): the manifests whose `subject` names a manifest. Listed through the
// referrers API (`GET /v2/<name>/referrers/<digest>`) where the registry has it; else through the referrers
// tag schema: the tag `sha256-<hex>` of the subject holds an OCI image index of the referrers, which the
// clients that push them keep up to date (the distribution registry 2.8 our tests run has no referrers API).
// The client-level functions take any object with the few client methods they need, so that this file
// imports nothing from client.ts (client.ts imports the API's answer parser from here).
import { EodError } from "../../errors.ts";
import { checkDigest, sha256Digest } from "./digest.ts";
import { checkDescriptor, MEDIA_TYPES, parseManifest, type Descriptor, type ImageIndex, type ImageManifest } from "./manifest.ts";
import type { Repo } from "./session.ts";

/** What a referrers list answer (API or tag) said: the referrers' descriptors. */
export type Referrer = Descriptor & { artifactType?: string };

/** The client methods the referrer functions use (RegistryClient has them). */
export interface ReferrersClient {
  getManifest(repo: Repo, reference: string, opts?: { signal?: AbortSignal }): Promise<{ digest: string; mediaType: string; size: number; manifest: ImageManifest | ImageIndex }>;
  pushManifest(repo: Repo, reference: string, bytes: Uint8Array, mediaType: string, opts?: { signal?: AbortSignal }): Promise<Descriptor & { ociSubject?: string }>;
  /** The referrers API's list; undefined when the registry has no referrers API. */
  referrers(repo: Repo, subject: string, opts?: { signal?: AbortSignal; artifactType?: string }): Promise<Referrer[] | undefined>;
}

/**
 * The referrers tag of a digest (the spec's "Referrers Tag Schema"): the algorithm cut to 32 characters, "-",
 * the encoded part cut to 64, any character a tag cannot have replaced by "-". `sha256:ab…` → `sha256-ab…`.
 */
export function referrersTag(digest: string): string {
  checkDigest(digest);
  const at = digest.indexOf(":");
  return `${digest.slice(0, at).slice(0, 32)}-${digest.slice(at + 1).slice(0, 64)}`.replace(/[^a-zA-Z0-9_.-]/g, "-");
}

/**
 * Parses a referrers list (the API's answer or the tag's manifest): an OCI image index, its entries checked
 * descriptors. Undefined when the bytes are not an OCI image index (the spec: then there are no referrers
 * there; a registry that answers the API path with something else has no referrers API).
 */
export function parseReferrersList(bytes: Uint8Array, contentType: string | undefined, what: string): Referrer[] | undefined {
  let parsed: ReturnType<typeof parseManifest>;
  try {
    parsed = parseManifest(bytes, contentType, what);
  } catch (err) {
    if ((err as EodError).code === "IMAGE_INVALID") return undefined;
    throw err;
  }
  if (parsed.mediaType !== MEDIA_TYPES.ociIndex) return undefined;
  return (parsed.manifest as ImageIndex).manifests;
}

/** The entries of `artifactType` (all when undefined): the API may ignore the filter, the tag has none. */
export function ofArtifactType(list: readonly Referrer[], artifactType: string | undefined): Referrer[] {
  return artifactType === undefined ? [...list] : list.filter((d) => d.artifactType === artifactType);
}

/** The `rel="next"` target of a Link header, when it is a path on the same registry (never another host). */
export function nextLink(link: string | undefined): string | undefined {
  const m = /<([^>]*)>\s*;\s*rel="?next"?/i.exec(link ?? "");
  if (!m) return undefined;
  if (!m[1].startsWith("/v2/")) throw new EodError("IMAGE_INVALID", `referrers list: Link ${JSON.stringify(link)} does not name a path of this registry`);
  return m[1];
}

/**
 * The referrers of `subject` in `repo` (of `artifactType` when given): the API's list, or when the registry
 * has none, the referrers tag's index (a missing tag, or one holding anything but an OCI index: none).
 * Without the API the spec's order is kept (the tag is used only after the API's 404), its requests are not.
 */
export async function listReferrers(client: ReferrersClient, repo: Repo, subject: string, artifactType?: string, opts: { signal?: AbortSignal } = {}): Promise<Referrer[]> {
  checkDigest(subject);
  // The tag is asked for at once, not after the API's 404: a round trip fewer on registries without the API
  // (a mount waits for this), one small request more on those with it.
  const tagged = tagIndex(client, repo, subject, opts);
  tagged.catch(() => {}); // awaited below unless the API answers
  const api = await client.referrers(repo, subject, { ...opts, artifactType });
  if (api) return ofArtifactType(api, artifactType);
  return ofArtifactType((await tagged)?.manifests ?? [], artifactType);
}

/** Read-modify-writes of the referrers tag before giving up on writers that keep overwriting it. */
const TAG_ROUNDS = 3;

/** How a referrer was recorded: by the registry (it answered OCI-Subject), or in the referrers tag by us. */
export interface PushedReferrer extends Descriptor {
  via: "api" | "tag";
}

/**
 * Pushes a manifest that has a `subject` (by its digest: a referrer needs no tag). A registry with the
 * referrers API says so with the OCI-Subject header; otherwise the referrers tag's index is read, our entry
 * added (others' entries kept; none twice) and the index pushed again. Two clients doing this at once can
 * lose one's entry (the registry has no conditional PUT to refuse the second): after our push the tag is
 * read back and, if our entry is gone, the read-modify-write done again (up to 3 times). A tag holding
 * something other than an OCI index is not overwritten: IMAGE_INVALID.
 */
export async function pushReferrer(client: ReferrersClient, repo: Repo, bytes: Uint8Array, mediaType: string, opts: { signal?: AbortSignal } = {}): Promise<PushedReferrer> {
  const { manifest } = parseManifest(bytes, mediaType, `referrer for ${repo.registry}/${repo.repository}`);
  const m = manifest as ImageManifest;
  if (!m.subject) throw new TypeError("pushReferrer: the manifest has no subject");
  checkDescriptor(m.subject, "referrer's subject");
  const subject = m.subject.digest;
  const digest = sha256Digest(bytes);
  const pushed = await client.pushManifest(repo, digest, bytes, mediaType, opts);
  if (pushed.ociSubject === subject) return { ...pushed, via: "api" };
  const entry: Referrer = {
    mediaType, digest, size: bytes.length,
    // The spec: the manifest's artifactType, else its config's media type; all its annotations.
    artifactType: m.artifactType ?? m.config.mediaType,
    ...(m.annotations ? { annotations: m.annotations } : {}),
  };
  const tag = referrersTag(subject);
  for (let round = 0; ; round++) {
    const current = await tagIndex(client, repo, subject, opts, true);
    if (current?.manifests.some((d) => d.digest === digest)) break; // listed (read back after our push)
    if (round === TAG_ROUNDS) throw new EodError("REMOTE_IO", `${repo.registry}/${repo.repository}:${tag}: other clients kept rewriting the referrers tag; ${digest} is pushed but not listed there: push it again`);
    const index: ImageIndex = { schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests: [...(current?.manifests ?? []), entry] };
    await client.pushManifest(repo, tag, Buffer.from(JSON.stringify(index)), MEDIA_TYPES.ociIndex, opts);
  }
  return { ...pushed, via: "tag" };
}

/** The referrers tag's index; undefined when there is no tag. Not an OCI index: none (`strict`: IMAGE_INVALID). */
async function tagIndex(client: ReferrersClient, repo: Repo, subject: string, opts: { signal?: AbortSignal }, strict = false): Promise<ImageIndex | undefined> {
  const tag = referrersTag(subject);
  let got;
  try {
    got = await client.getManifest(repo, tag, opts);
  } catch (err) {
    if ((err as EodError).code === "REGISTRY_NOT_FOUND") return undefined;
    if ((err as EodError).code === "IMAGE_INVALID" && !strict) return undefined;
    throw err;
  }
  if (got.mediaType === MEDIA_TYPES.ociIndex) return got.manifest as ImageIndex;
  if (strict) throw new EodError("IMAGE_INVALID", `${repo.registry}/${repo.repository}:${tag} should hold the referrers of ${subject} (an OCI image index) but holds a ${got.mediaType}: not overwritten`);
  return undefined;
}
