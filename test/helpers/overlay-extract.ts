// The expected tree of a layered image, computed without our code: each layer is extracted by GNU tar
// (xattrs, nanosecond times, hard links, devices) into its own directory, its whiteouts are applied to the
// merged tree (OCI image spec: `.wh.<name>` removes <name>, `.wh..wh..opq` empties the directory, both only
// for lower layers), paths the layer replaces are removed, and the layer is copied on top with `cp -a`.
// Test layers name every directory they use (GNU tar would make missing parents with the current time).
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";

const WH = ".wh.";
const OPQ = ".wh..wh..opq";

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed: ${r.stderr}${r.error ?? ""}`);
}

/** Extracts `layers` (lowest first; tar, tar.gz or tar.zst) merged into the new directory `merged`. */
export function extractLayers(layers: string[], merged: string, work: string): void {
  fs.mkdirSync(merged);
  for (const [i, layer] of layers.entries()) {
    const stage = path.join(work, `stage-${i}`);
    fs.mkdirSync(stage);
    run("tar", ["-x", "-p", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-f", layer, "-C", stage]);
    // Whiteouts: apply to the lower layers (merged), then drop them from the stage, keeping the parent's mtime.
    for (const rel of walk(stage)) {
      const base = path.basename(rel);
      if (!base.startsWith(WH)) continue;
      const parent = path.dirname(rel);
      const st = fs.lstatSync(path.join(stage, parent), { bigint: true });
      fs.rmSync(path.join(stage, rel), { recursive: true });
      const sec = st.mtimeNs / 1_000_000_000n;
      const nsec = st.mtimeNs % 1_000_000_000n;
      run("touch", ["-m", "-h", "-d", `@${sec}.${String(nsec).padStart(9, "0")}`, path.join(stage, parent)]);
      const lower = path.join(merged, parent);
      if (base === OPQ) {
        if (fs.existsSync(lower)) for (const c of fs.readdirSync(lower)) fs.rmSync(path.join(lower, c), { recursive: true });
      } else if (!base.startsWith(WH + WH)) {
        fs.rmSync(path.join(lower, base.slice(WH.length)), { recursive: true, force: true });
      }
    }
    // Replaced paths: anything but a directory over a directory goes first (cp would write into it).
    for (const rel of walk(stage)) {
      const up = fs.lstatSync(path.join(stage, rel));
      let low: fs.Stats | undefined;
      try { low = fs.lstatSync(path.join(merged, rel)); } catch { continue; }
      if (!(up.isDirectory() && low.isDirectory())) fs.rmSync(path.join(merged, rel), { recursive: true });
    }
    run("cp", ["-a", `${stage}/.`, `${merged}/`]);
  }
}

/** Relative paths under `root`, parents before children. */
function walk(root: string, rel = ""): string[] {
  const out: string[] = [];
  for (const name of fs.readdirSync(path.join(root, rel)).sort()) {
    const r = rel ? `${rel}/${name}` : name;
    out.push(r);
    if (fs.lstatSync(path.join(root, r)).isDirectory()) out.push(...walk(root, r));
  }
  return out;
}
