// A layer's tar applied into an empty directory the way containerd's overlay applier leaves it: files,
// directories, links, devices, owners, modes, times and xattrs as the tar says (GNU tar, the field's standard
// extractor, as root), then the OCI whiteouts turned into overlayfs's: `.wh.<name>` becomes a 0/0 character
// device `<name>`, `.wh..wh..opq` the xattr trusted.overlay.opaque=y on its directory. Used for a lower layer of
// an indexed image that another image needs as real content (shared-layers.ts).
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { Readable } from "node:stream";
import { EodError } from "../errors.ts";
import { setXattr } from "../sys/xattr.ts";

const WHITEOUT = ".wh.";
const OPAQUE = ".wh..wh..opq";

/**
 * Extracts `tar` (the layer's uncompressed bytes) into `dir` (empty), then converts its whiteouts.
 * @throws EodError SOURCE_INVALID when tar refuses the archive (its message quoted)
 */
export async function applyLayer(tar: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, dir: string): Promise<void> {
  // --numeric-owner: ids as in the tar, never mapped through this host's users; absolute names and `..` are
  // refused by GNU tar itself, and a symlink that could lead out is created only after every file (delayed links).
  const child = spawn("tar", ["-x", "-f", "-", "-C", dir, "--numeric-owner", "--same-owner", "--same-permissions", "--xattrs", "--xattrs-include=*"], { stdio: ["pipe", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (d: string) => { stderr = (stderr + d).slice(-4000); });
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code) => resolve(code));
  });
  try {
    await pipeline(Readable.from(tar), child.stdin);
  } catch (err) {
    child.kill("SIGKILL");
    await exited.catch(() => null);
    // tar exiting early closes its stdin under us: its own message says why
    if (stderr) throw new EodError("SOURCE_INVALID", `Cannot apply the layer into ${dir}: tar: ${stderr.trim()}`, { cause: err });
    throw err;
  }
  const code = await exited;
  if (code !== 0) throw new EodError("SOURCE_INVALID", `Cannot apply the layer into ${dir}: tar exited ${code}: ${stderr.trim()}`);
  convertWhiteouts(dir);
}

/**
 * OCI whiteout files under `dir` → overlayfs whiteouts (depth first), keeping each directory's times as the tar
 * set them (containerd's applier sets them after the whiteouts).
 */
function convertWhiteouts(dir: string): void {
  const times = fs.lstatSync(dir);
  let changed = false;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) convertWhiteouts(p);
    if (!entry.name.startsWith(WHITEOUT)) continue;
    fs.rmSync(p, { force: true, recursive: true });
    changed = true;
    if (entry.name === OPAQUE) {
      setXattr(dir, "trusted.overlay.opaque", Buffer.from("y"));
      continue;
    }
    const target = path.join(dir, entry.name.slice(WHITEOUT.length));
    fs.rmSync(target, { force: true, recursive: true }); // an entry of the same layer the whiteout hides
    const r = spawnSync("mknod", ["-m", "0", target, "c", "0", "0"], { encoding: "utf8" });
    if (r.status !== 0) throw new EodError("SYS", `Cannot make the whiteout ${target}: mknod: ${(r.stderr || r.error?.message || "").trim()}`);
  }
  if (changed) fs.utimesSync(dir, times.atimeMs / 1000, times.mtimeMs / 1000);
}
