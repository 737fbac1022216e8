// The filesystem the FUSE frontend shows, answered without I/O: a read-only root directory holding one regular
// file per blob served, named by the blob id, of the blob's kernel-form size. Every request but INIT, READ and
// INTERRUPT (the service's) is answered here from what is served, so the policy is testable without a kernel.
import fs from "node:fs";
import {
  DT_DIR, DT_REG, encodeAttrOut, encodeDirents, encodeEntryOut, encodeOpenOut, encodeStatfsOut, FOPEN_KEEP_CACHE,
  FUSE_ROOT_ID, type Attr, type Request,
} from "./protocol.ts";

const ENOENT = 2;
const EACCES = 13;
const ENOTDIR = 20;
const EROFS = 30;
const ENOSYS = 38;
/** The access-mode bits of open(2) flags (fcntl.h; Node has no constant for it). */
const O_ACCMODE = 3;
const BLOCK = 4096;

/** Blobs never change: the kernel may keep names and attributes this long. */
export const VALID = { seconds: 24 * 3600 };
const ROOT_ATTR: Attr = { ino: FUSE_ROOT_ID, size: 0, mode: 0o40555, nlink: 2 };

/** A file the namespace shows. */
export interface ServedFile {
  node: bigint;
  size: number;
}

/** What is served now, as the namespace asks it. */
export interface ServedView {
  byName(name: string): ServedFile | undefined;
  byNode(node: bigint): ServedFile | undefined;
  /** Names and nodes in name order (a directory listing). */
  list(): Array<{ name: string; node: bigint }>;
  totalSize(): number;
}

/** The reply to a request: its errno (0: success) and payload; null for the ones that get none. */
export type Answer = { errno: number; payload: Buffer[] } | null;

const ok = (...payload: Buffer[]): Answer => ({ errno: 0, payload });
const fail = (errno: number): Answer => ({ errno, payload: [] });

function fileAttr(f: ServedFile): Attr {
  return { ino: f.node, size: f.size, mode: 0o100444, nlink: 1 };
}

/** The answer to any request but INIT, READ and INTERRUPT. */
export function answerRequest(req: Exclude<Request, { op: "init" | "read" | "interrupt" }>, served: ServedView): Answer {
  const node = req.header.nodeid;
  const isRoot = node === FUSE_ROOT_ID;
  switch (req.op) {
    case "lookup": {
      const f = isRoot ? served.byName(req.name) : undefined;
      return f ? ok(encodeEntryOut(f.node, 1n, VALID, fileAttr(f))) : fail(ENOENT); // no negative entry: a blob may come later
    }
    case "getattr": {
      if (isRoot) return ok(encodeAttrOut(VALID, ROOT_ATTR));
      const f = served.byNode(node);
      return f ? ok(encodeAttrOut(VALID, fileAttr(f))) : fail(ENOENT);
    }
    case "open":
      if (isRoot) return fail(EACCES);
      if ((req.openFlags & O_ACCMODE) !== fs.constants.O_RDONLY) return fail(EROFS);
      return served.byNode(node) ? ok(encodeOpenOut(0n, FOPEN_KEEP_CACHE)) : fail(ENOENT);
    case "opendir":
      return isRoot ? ok(encodeOpenOut(0n, 0)) : fail(ENOTDIR);
    case "readdir": {
      if (!isRoot) return fail(ENOTDIR);
      const entries = [
        { ino: FUSE_ROOT_ID, name: ".", type: DT_DIR }, { ino: FUSE_ROOT_ID, name: "..", type: DT_DIR },
        ...served.list().map((e) => ({ ino: e.node, name: e.name, type: DT_REG })),
      ];
      return ok(encodeDirents(entries, req.read.offset, req.read.size));
    }
    case "statfs": {
      const files = served.list().length;
      return ok(encodeStatfsOut({ blocks: Math.ceil(served.totalSize() / BLOCK), files: files + 1, bsize: BLOCK, namelen: 255 }));
    }
    case "release": case "releasedir": case "flush": case "access": case "destroy":
      return ok();
    case "forget": case "batch_forget":
      return null;
    case "other":
      return fail(ENOSYS);
  }
}
