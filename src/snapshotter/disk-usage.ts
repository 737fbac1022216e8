// The disk usage of a snapshot's directory as containerd counts it (fs.DiskUsage): the blocks of every inode
// under it, the directory itself included, each inode once however many links it has.
import fs from "node:fs/promises";
import path from "node:path";

export interface Usage {
  /** Bytes of allocated blocks. */
  size: number;
  inodes: number;
}

export async function diskUsage(dir: string): Promise<Usage> {
  const seen = new Set<string>();
  let size = 0;
  const visit = async (p: string): Promise<void> => {
    const st = await fs.lstat(p);
    const id = `${st.dev}:${st.ino}`;
    if (!seen.has(id)) {
      seen.add(id);
      size += st.blocks * 512;
    }
    if (st.isDirectory()) for (const name of await fs.readdir(p)) await visit(path.join(p, name));
  };
  await visit(dir);
  return { size, inodes: seen.size };
}
