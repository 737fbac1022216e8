// eod cull <blob-id>: evict one blob's whole cache file (fscache frontend), if no mount uses it.
import { EodError } from "../errors.ts";
import { callDaemon } from "../daemon/client.ts";
import { socketPathOf } from "../daemon/client.ts";
import { parse } from "./args.ts";
import { loadConfig } from "../config/config.ts";

export const CULL_USAGE = `Usage: eod cull <blob-id> [--cache-dir <dir>]

Evicts a blob's whole cache file (fscache frontend: cachefiles' cull). Refused while a mount uses the blob.`;

export async function cullCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { config: { type: "string" }, "cache-dir": { type: "string" }, help: { type: "boolean", short: "h" } }, CULL_USAGE);
  if (values.help) { console.log(CULL_USAGE); return 0; }
  if (positionals.length !== 1) throw new EodError("USAGE", CULL_USAGE);
  await callDaemon(socketPathOf(loadConfig(values).cacheDir), "POST", "/cull", { blobId: positionals[0] });
  console.log(`culled ${positionals[0]}`);
  return 0;
}
