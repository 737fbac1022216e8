// eod unpack <image-dir> --blobs-to <dir>
import { EodError } from "../errors.ts";
import { unpackImage } from "../image/unpack.ts";
import { parse } from "./args.ts";

export const UNPACK_USAGE = `Usage: eod unpack <image-dir> --blobs-to <dir>

Writes the kernel form of every blob (verifying every chunk) and prints one line: the bootstrap's path and
the mount data string, e.g.  /img/bootstrap.erofs device=/x/b1
so that the image can be mounted without a daemon:
  mount -t erofs -o ro,<data> <bootstrap> <mnt>   (file-backed mount(2), Linux 6.12+)`;

export async function unpackCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { "blobs-to": { type: "string" }, help: { type: "boolean", short: "h" } }, UNPACK_USAGE);
  if (values.help) { console.log(UNPACK_USAGE); return 0; }
  if (positionals.length !== 1 || !values["blobs-to"]) throw new EodError("USAGE", UNPACK_USAGE);
  const u = unpackImage(positionals[0], values["blobs-to"]);
  console.log(`${u.bootstrapPath}${u.mountData ? ` ${u.mountData}` : ""}`);
  return 0;
}
