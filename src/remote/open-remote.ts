// openRemote(): the Remote for a location, chosen from its form. Kept apart from the interface (remote.ts)
// because it imports every implementation, and they import the interface.
import { fileURLToPath } from "node:url";
import { DirRemote } from "./dir-remote.ts";
import { HttpRemote } from "./http-remote.ts";
import { isRegistrySource, RegistryImageRemote } from "./registry/image-remote.ts";
import type { Remote, RemoteOptions } from "./remote.ts";
import { withRetry } from "./retry.ts";

/**
 * Opens the image at `location`: an `http://`/`https://` base URL (may carry a path prefix), a local
 * directory (a path or a `file:` URL), or an image in a registry (`docker://host/repo:tag`, the OCI form
 * `eod convert` pushes; see registry/image-remote.ts). The result retries transient failures through
 * retry.ts's loop (the registry client runs the same loop around each of its requests).
 *
 * @example
 * const remote = openRemote("http://127.0.0.1:8080/images/app/", { timeoutMs: 5000 });
 * try {
 *   const manifest = await remote.readFile("manifest.json", { maxBytes: 1 << 20 });
 *   const head = await remote.readRange("bootstrap.erofs", 1024, 128);
 * } finally {
 *   await remote.close();
 * }
 */
export function openRemote(location: string, opts: RemoteOptions = {}): Remote {
  if (isRegistrySource(location)) return new RegistryImageRemote(location, opts);
  const inner = /^https?:\/\//i.test(location)
    ? new HttpRemote(location, opts)
    : new DirRemote(/^file:/i.test(location) ? fileURLToPath(location) : location, opts);
  return withRetry(inner, { retries: opts.retries });
}
