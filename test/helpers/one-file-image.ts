// The smallest image a CLI test needs: a temp dir (removed after the test) holding src/a and one.erofs built
// from it with eod build --single.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { eodOk } from "./cli.ts";

export function oneFileImage(t: { after(fn: () => void): void }, prefix: string): { tmp: string; src: string; image: string } {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  t.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const src = path.join(tmp, "src");
  fs.mkdirSync(src);
  fs.writeFileSync(path.join(src, "a"), "hello\n");
  const image = path.join(tmp, "one.erofs");
  eodOk("build", src, "--single", image);
  return { tmp, src, image };
}
