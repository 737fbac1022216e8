// eod check <image> [--device <file>]...
import { EodError } from "../errors.ts";
import { checkImage } from "../image/check.ts";
import { parse, print } from "./args.ts";

export const CHECK_USAGE = `Usage: eod check <image-dir | file.erofs> [--device <file>]... [--json]

Walks every structure and verifies every digest. Exits 0 when the image is sound; otherwise prints each
problem with where it is and exits 1. --device gives the extra devices of an EROFS file (mkfs.erofs --blobdev),
in device-table order: as with fsck.erofs, each must be given, and its size must match the device table.
An EROFS file has no data digests: what was not checked is printed.`;

export async function checkCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { device: { type: "string", multiple: true }, json: { type: "boolean" }, help: { type: "boolean", short: "h" } }, CHECK_USAGE);
  if (values.help) { console.log(CHECK_USAGE); return 0; }
  if (positionals.length !== 1) throw new EodError("USAGE", CHECK_USAGE);
  const r = checkImage(positionals[0], values.device ?? []);
  const notChecked = r.notChecked.map((n) => `\n  not checked: ${n}`).join("");
  print(values.json ?? false, r, () => r.ok
    ? `${positionals[0]}: OK (${r.entries} entries, ${r.inodes} inodes${r.kind === "image-dir" ? `, ${r.chunksVerified} chunks verified` : ""})${notChecked}`
    : `${positionals[0]}: ${r.problems.length} problem(s)\n` + r.problems.map((p) => `  ${p}`).join("\n") + notChecked);
  return r.ok ? 0 : 1;
}
