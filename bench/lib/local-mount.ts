// The daemon-less reference mount: what `eod unpack` prints (the bootstrap, then erofs mount data naming the
// unpacked blobs as device= files) mounted with mount(2), read-only.
import { MS_RDONLY, mountAsync } from "../../src/sys/mount.ts";

/** Mounts at `mnt` the image `eod unpack` described in its output line. */
export async function mountUnpacked(unpackOutput: string, mnt: string): Promise<void> {
  const line = unpackOutput.trim();
  const sp = line.indexOf(" ");
  const [bootstrap, data] = sp < 0 ? [line, null] : [line.slice(0, sp), line.slice(sp + 1)];
  await mountAsync(bootstrap, mnt, "erofs", MS_RDONLY, data);
}
