// src/sys owns every FFI call of erofs-ondemand (koffi), and binds only the kernel and libc: the system calls
// Node lacks (codecs and digests are node:zlib's and node:crypto's). Nothing outside this folder imports
// koffi: each binding here returns a value or throws a SysError (src/errors.ts) whose errno
// name was read right after the call, so callers match on `err.errno === "ENOENT"`.
//
//   libc.ts   loads libc lazily, declares the prototypes, check()/sysError() errno helpers
//   mount.ts  mount(2) (sync and on a worker thread), the new mount API for long option lists, umount2(2)
//   rlimit.ts getrlimit/setrlimit, raiseNofile() for a daemon serving many blobs
//   xattr.ts  llistxattr/lgetxattr/lsetxattr: xattrs of any inode type, symlinks included
//   seek.ts   SEEK_DATA/SEEK_HOLE, dataRanges(), fallocate(PUNCH_HOLE)
//   fanotify.ts    fanotify_init/fanotify_mark, pre-content events
//   poll.ts        a libuv poll of a kernel fd (the fanotify group, /dev/fuse): reads on the event loop
//   cachefiles.ts  /dev/cachefiles on-demand mode: commands, READ_COMPLETE, aligned direct writes
//   fuse.ts        /dev/fuse: open, mount of type fuse, one request per read, writev of a reply, fusectl abort
//   loop.ts        read-only autoclear loop devices (LOOP_CONFIGURE) for kernels without file-backed erofs
//   mount-watch.ts a poll of /proc/self/mountinfo: the mount table changed (imported directly)
//   fds.ts         holding fd numbers (imported directly)
export * from "./libc.ts";
export * from "./mount.ts";
export * from "./rlimit.ts";
export * from "./xattr.ts";
export * from "./fanotify.ts";
export * from "./poll.ts";
export * from "./seek.ts";
export * from "./cachefiles.ts";
export * from "./fuse.ts";
export * from "./loop.ts";
