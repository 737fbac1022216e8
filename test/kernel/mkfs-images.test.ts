// Our reader on images made by Debian's mkfs.erofs (1.5): `eod inspect`/`eod check` must agree with what the
// kernel shows for the same image (types, modes, owners, sizes, mtimes, links, targets, xattrs, contents).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { makeSmallTree } from "../helpers/awkward-tree.ts";
import { eodOk, haveTool, tool } from "../helpers/cli.ts";
import { haveRoot, mountErofs, tempDir } from "../helpers/kernel.ts";
import { openImage } from "../../src/image/open.ts";
import { listXattrs, getXattr } from "../../src/sys/xattr.ts";
import type { EntryInfo } from "../../src/image/inspect.ts";
import { unavailable } from "../helpers/skip.ts";

const skip = unavailable(!haveRoot() ? "needs root to mount" : !haveTool("mkfs.erofs") ? "needs mkfs.erofs (erofs-utils)" : false);
let work = "";
let src = "";

before(() => {
  if (skip) return;
  work = tempDir("eod-mkfs-");
  src = path.join(work, "src");
  fs.mkdirSync(src);
  makeSmallTree(src);
  // A few more shapes mkfs handles differently: a multi-block directory, a sparse file, a long symlink.
  fs.mkdirSync(path.join(src, "many"));
  for (let i = 0; i < 400; i++) fs.writeFileSync(path.join(src, "many", `file-${i}-${"n".repeat(i % 60)}`), `content ${i}\n`.repeat(i % 7));
  const sparse = path.join(src, "sparse");
  fs.writeFileSync(sparse, "head");
  fs.truncateSync(sparse, 3 << 20);
  fs.symlinkSync("t".repeat(3000), path.join(src, "long-link"));
});

after(() => { if (work) fs.rmSync(work, { recursive: true, force: true }); });

const cases: Array<{ name: string; mkfs: string[]; blobdev: boolean }> = [
  { name: "plain", mkfs: [], blobdev: false },
  { name: "chunked", mkfs: ["--chunksize=65536"], blobdev: false },
  { name: "chunked-blobdev", mkfs: ["--chunksize=4096"], blobdev: true },
];

for (const c of cases) {
  test(`eod inspect/check agree with the kernel on a mkfs.erofs ${c.name} image`, { skip, timeout: 120_000 }, async () => {
    const image = path.join(work, `${c.name}.erofs`);
    const blob = path.join(work, `${c.name}.blob`);
    const args = [...c.mkfs, ...(c.blobdev ? [`--blobdev=${blob}`] : []), image, src];
    const r = tool("mkfs.erofs", args);
    assert.equal(r.status, 0, r.stderr);
    const devices = c.blobdev ? ["--device", blob] : [];
    eodOk("check", image, ...devices);
    const listed = JSON.parse(eodOk("inspect", image, ...devices, "--json")).entries as EntryInfo[];
    const m = await mountErofs(image, c.blobdev ? `device=${blob}` : undefined);
    const img = openImage(image, c.blobdev ? [blob] : []);
    try {
      assert.equal(listed.length, countEntries(m.dir));
      for (const e of listed) {
        const p = path.join(m.dir, e.path);
        const st = fs.lstatSync(p, { bigint: true });
        const where = `${c.name}:${e.path}`;
        assert.equal(Number(st.mode & 0o7777n).toString(8).padStart(4, "0"), e.mode, where);
        assert.equal(Number(st.uid), e.uid, where);
        assert.equal(Number(st.gid), e.gid, where);
        assert.equal(Number(st.nlink), e.nlink, where);
        if (!st.isDirectory()) assert.equal(Number(st.size), e.size, where);
        assert.equal(st.mtimeNs, BigInt(e.mtimeSec) * 1_000_000_000n + BigInt(e.mtimeNsec), where);
        if (st.isSymbolicLink()) assert.equal(fs.readlinkSync(p), e.target, where);
        const kernelX = Object.fromEntries(listXattrs(p).map((n) => [n, getXattr(p, n).toString("base64")]));
        assert.deepEqual(kernelX, e.xattrs ?? {}, where);
        if (st.isFile()) {
          const inode = img.reader.lookup(e.path);
          assert.ok(Buffer.from(img.reader.read(inode, 0, e.size)).equals(fs.readFileSync(p)), `${where}: content`);
        }
      }
    } finally {
      img.close();
      m.unmount();
    }
  });
}

function countEntries(dir: string): number {
  let n = 1;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    n += e.isDirectory() ? countEntries(path.join(dir, e.name)) : 1;
  }
  return n;
}
