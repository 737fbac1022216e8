// src/sys owns every FFI call of erofs-ondemand (koffi). Nothing outside this folder imports
// koffi: each binding here returns a value or throws a SysError (src/errors.ts) whose errno
// name was read right after the call, so callers match on `err.errno === "ENOENT"`.
//
//   libc.ts   loads libc lazily, declares the prototypes, check()/sysError() errno helpers
//   mount.ts  mount(2) (sync and on a worker thread), the new mount API for long option lists, umount2(2)
//   rlimit.ts getrlimit/setrlimit, raiseNofile() for a daemon serving many blobs
//   xattr.ts  llistxattr/lgetxattr/lsetxattr: xattrs of any inode type, symlinks included
//   seek.ts   SEEK_DATA/SEEK_HOLE, dataRanges(), fallocate(PUNCH_HOLE)
//   lz4.ts    raw LZ4 blocks through Debian's liblz4.so.1 (loaded lazily), sync and async
//   zstd.ts   zstd frames with node's own zstd, decompressed into caller memory, compressed with a reused context
//   zlib.ts   gzip inflate with node's own zlib into caller memory, on the thread pool
//   sha256.ts SHA-256 with node's own OpenSSL, updated on the thread pool
//   cachefiles.ts  /dev/cachefiles on-demand mode: commands, READ_COMPLETE, aligned direct writes
export * from "./libc.ts";
export * from "./mount.ts";
export * from "./rlimit.ts";
export * from "./xattr.ts";
export * from "./fanotify.ts";
export * from "./seek.ts";
export * from "./lz4.ts";
export * from "./zstd.ts";
export * from "./zlib.ts";
export * from "./sha256.ts";
export * from "./cachefiles.ts";
