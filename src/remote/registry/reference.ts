// Image references as docker writes them: `[host[:port]/]repo[:tag][@digest]`. A first component with a
// '.' or ':' or equal to "localhost" names the registry; otherwise the registry is
// docker.io and a one-part repository is under library/ (docker's normalisation; index.docker.io is
// docker.io). The address the API is spoken to is separate (`apiHost`): docker.io is served by
// registry-1.docker.io.
import { EodError } from "../../errors.ts";
import { checkDigest } from "./digest.ts";

export interface Reference {
  /** The registry as named ("127.0.0.1:5000", "[::1]:5000", "docker.io"), lowercase. */
  registry: string;
  /** The repository path ("library/debian", "team/app"). */
  repository: string;
  /** Tag, when named; "latest" when neither tag nor digest is. */
  tag?: string;
  /** "sha256:<hex>", when named; wins over the tag for what is fetched. */
  digest?: string;
}

export const DOCKER_HUB = "docker.io";
const LEGACY_HUB = "index.docker.io";
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
// host name or IPv4 (labels), or a bracketed IPv6 address; optional port
const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

/**
 * Parses a reference; a malformed one is EodError("USAGE") naming the part that is wrong.
 *
 * @example
 * parseReference("127.0.0.1:5000/team/app:v1") // { registry: "127.0.0.1:5000", repository: "team/app", tag: "v1" }
 * parseReference("debian")                     // { registry: "docker.io", repository: "library/debian", tag: "latest" }
 */
export function parseReference(text: string): Reference {
  const bad = (why: string) => new EodError("USAGE", `Invalid image reference ${JSON.stringify(text)}: ${why}`);
  if (typeof text !== "string" || text === "" || text.length > 1024 || /\s/.test(text)) throw bad("empty, too long or has spaces");
  let rest = text;
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    try { checkDigest(digest); } catch (err) { throw bad((err as Error).message); }
  }
  let registry = DOCKER_HUB;
  const slash = rest.indexOf("/");
  const first = slash >= 0 ? rest.slice(0, slash) : "";
  // Unlike docker, "Name/app" is refused (repository names are lowercase) rather than taken as host "Name".
  if (slash >= 0 && (first.includes(".") || first.includes(":") || first === "localhost" || first.startsWith("["))) {
    if (!HOST.test(first)) throw bad(`registry ${JSON.stringify(first)} is not host[:port]`);
    const port = /:(\d+)$/.exec(first.startsWith("[") ? first.slice(first.indexOf("]")) : first)?.[1];
    if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) throw bad(`port ${port} is out of range`);
    registry = first.toLowerCase();
    if (registry === LEGACY_HUB) registry = DOCKER_HUB; // docker normalises index.docker.io/x to docker.io/library/x
    rest = rest.slice(slash + 1);
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(":");
  if (colon >= 0) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw bad(`tag ${JSON.stringify(tag)} is not valid`);
  }
  if (rest === "") throw bad("no repository");
  for (const c of rest.split("/")) {
    if (!PATH_COMPONENT.test(c)) throw bad(`repository component ${JSON.stringify(c)} is not valid (lowercase letters, digits, separators)`);
  }
  if (registry === DOCKER_HUB && !rest.includes("/")) rest = `library/${rest}`;
  if (rest.length > 255) throw bad("repository name longer than 255 characters");
  return { registry, repository: rest, ...(tag !== undefined ? { tag } : {}), ...(digest ? { digest } : {}), ...(tag === undefined && !digest ? { tag: "latest" } : {}) };
}

/** Throws a TypeError unless `repository` is a valid repository path (it goes into URLs as is). */
export function checkRepository(repository: string): string {
  if (typeof repository !== "string" || repository.length > 255 || !repository.split("/").every((c) => PATH_COMPONENT.test(c))) {
    throw new TypeError(`${JSON.stringify(repository)} is not a repository name`);
  }
  return repository;
}

/** The reference written back in full ("docker.io/library/debian:latest", "host/repo@sha256:…"). */
export function formatReference(ref: Reference): string {
  return `${ref.registry}/${ref.repository}${ref.tag !== undefined ? `:${ref.tag}` : ""}${ref.digest ? `@${ref.digest}` : ""}`;
}

/** What to ask the registry for: the digest when named, else the tag. */
export function manifestRef(ref: Reference): string {
  return ref.digest ?? ref.tag ?? "latest";
}

/** The host the API is served from (docker.io → registry-1.docker.io). */
export function apiHost(registry: string): string {
  return registry === DOCKER_HUB || registry === "index.docker.io" ? "registry-1.docker.io" : registry;
}

/** The host without its port, IPv6 brackets removed. */
export function hostName(host: string): string {
  if (host.startsWith("[")) return host.slice(1, host.indexOf("]"));
  const colon = host.lastIndexOf(":");
  return colon >= 0 ? host.slice(0, colon) : host;
}

/** localhost, 127.0.0.0/8 and ::1: where docker speaks plain HTTP without being told. */
export function isLoopback(host: string): boolean {
  const name = hostName(host).toLowerCase();
  return name === "localhost" || name === "::1" || name === "0:0:0:0:0:0:0:1" || /^127(?:\.\d{1,3}){3}$/.test(name);
}
