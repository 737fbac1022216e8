// Outputs appear whole or not at all: everything is written under a temporary name in the same directory and
// renamed into place once complete, so an interrupted or failed build never leaves a valid-looking result.
import fs from "node:fs";
import path from "node:path";
import { EodError } from "../errors.ts";

/** Progress callback: phase ("scan", "data", "compress"), units done, total units (0 = unknown). */
export type BuildProgress = (phase: string, done: number, total: number) => void;

/** Throws unless `target` can become an image file: absent, or a file (not a directory) to replace. */
export function checkOutputFile(target: string): void {
  if (statOrNull(target)?.isDirectory()) throw new EodError("USAGE", `Cannot write image file ${target}: it is a directory`);
}

/**
 * Throws unless `target` can become an image directory: absent, empty, or an earlier image directory (it holds
 * manifest.json), which is replaced.
 */
export function checkOutputDir(target: string): void {
  const st = statOrNull(target);
  if (!st) return;
  if (!st.isDirectory()) throw new EodError("USAGE", `Cannot write image directory ${target}: it exists and is not a directory`);
  const entries = fs.readdirSync(target);
  if (entries.length && !entries.includes("manifest.json")) {
    throw new EodError("USAGE", `Refusing to overwrite ${target}: it exists and is not an image directory`);
  }
}

function statOrNull(p: string): fs.Stats | undefined {
  try {
    return fs.statSync(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new EodError("USAGE", `Cannot use output ${p}: ${(err as NodeJS.ErrnoException).code ?? err}`, { cause: err });
  }
}

/** Writes `target` through `fill(fd)` on a temporary file, then renames it into place. */
export async function commitFile<T>(target: string, fill: (fd: number) => Promise<T>): Promise<T> {
  checkOutputFile(target);
  const tmp = path.join(path.dirname(path.resolve(target)), `.${path.basename(target)}.tmp-${process.pid}`);
  const fd = openOutput(tmp, () => fs.openSync(tmp, "w", 0o644));
  try {
    const result = await fill(fd);
    fs.closeSync(fd);
    fs.renameSync(tmp, target);
    return result;
  } catch (err) {
    try { fs.closeSync(fd); } catch { /* already closed */ }
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}

/**
 * Builds the directory `target` through `fill(tmpDir)`, then swaps it into place. An existing `target` is
 * replaced only if it is empty or an earlier image directory (it holds manifest.json).
 */
export async function commitDir<T>(target: string, fill: (dir: string) => Promise<T>): Promise<T> {
  const abs = path.resolve(target);
  checkOutputDir(target);
  const tmp = path.join(path.dirname(abs), `.${path.basename(abs)}.tmp-${process.pid}`);
  fs.rmSync(tmp, { recursive: true, force: true });
  openOutput(tmp, () => fs.mkdirSync(tmp, { recursive: true }));
  try {
    const result = await fill(tmp);
    if (fs.existsSync(abs)) {
      const old = `${tmp}.old`;
      fs.renameSync(abs, old);
      fs.renameSync(tmp, abs);
      fs.rmSync(old, { recursive: true, force: true });
    } else {
      fs.renameSync(tmp, abs);
    }
    return result;
  } catch (err) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
}

function openOutput<T>(p: string, open: () => T): T {
  try {
    return open();
  } catch (err) {
    throw new EodError("USAGE", `Cannot create output ${p}: ${(err as NodeJS.ErrnoException).code ?? err}`, { cause: err });
  }
}
