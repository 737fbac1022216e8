// The registry of the indexed-image containerd tests: the test registry behind a proxy that records every
// request (method, path, Range header), so a test can tell which layer blobs were fetched, whole or as ranges.
import { registryProxy, startRegistry, type RegistryProxy, type RunningRegistry } from "../helpers/registry.ts";

export interface SeenRequest { method: string; path: string; range?: string }

export interface CountingRegistry {
  reg: RunningRegistry;
  proxy: RegistryProxy;
  /** What the proxy passed on, oldest first; a test may empty it. */
  requests: SeenRequest[];
  /** The GETs of blobs with these digests among `requests` (from index `from`). */
  blobGets(digests: readonly string[], from?: number): SeenRequest[];
  stop(): Promise<void>;
}

export async function countingRegistry(): Promise<CountingRegistry> {
  const reg = await startRegistry();
  const requests: SeenRequest[] = [];
  let proxy: RegistryProxy;
  try {
    proxy = await registryProxy(reg.host, {
      before: (req) => {
        const range = req.headers.range;
        requests.push({ method: req.method ?? "", path: new URL(req.url ?? "/", "http://x").pathname, ...(typeof range === "string" ? { range } : {}) });
        return false;
      },
    });
  } catch (err) {
    await reg.stop();
    throw err;
  }
  return {
    reg, proxy, requests,
    blobGets: (digests, from = 0) => requests.slice(from).filter((r) => r.method === "GET" && r.path.includes("/blobs/") && digests.some((d) => r.path.endsWith(d))),
    async stop() {
      try { await proxy.close(); } finally { await reg.stop(); }
    },
  };
}
