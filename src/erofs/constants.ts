// Constants of the EROFS on-disk format, spelled as in the kernel's fs/erofs/erofs_fs.h so one grep finds both.

export const EROFS_SUPER_MAGIC_V1 = 0xe0f5e1e2;
/** The superblock starts at byte 1024 of block 0 (bytes 0..1023 are left for boot sectors). */
export const EROFS_SUPER_OFFSET = 1024;
/** Inodes sit on 32-byte slots: byte offset = meta_blkaddr * blksz + nid << EROFS_ISLOTBITS. */
export const EROFS_ISLOTBITS = 5;
export const EROFS_SLOTSIZE = 1 << EROFS_ISLOTBITS;
/** A block address meaning "not mapped" (a hole, or "no full blocks" for FLAT_INLINE). */
export const EROFS_NULL_ADDR = 0xffffffff;
export const EROFS_NAME_LEN = 255;
/** Device-table slots are 128 bytes; devt_slotoff counts in these units. */
export const EROFS_DEVT_SLOT_SIZE = 128;

export const EROFS_FEATURE_COMPAT_SB_CHKSUM = 0x1;
export const EROFS_FEATURE_COMPAT_MTIME = 0x2;
export const EROFS_FEATURE_COMPAT_XATTR_FILTER = 0x4;
export const EROFS_FEATURE_COMPAT_SHARED_EA_IN_METABOX = 0x8;
export const EROFS_FEATURE_COMPAT_PLAIN_XATTR_PFX = 0x10;
export const EROFS_FEATURE_COMPAT_ISHARE_XATTRS = 0x20;

// Some incompat bits have two names: the meaning depends on whether the image is compressed.
export const EROFS_FEATURE_INCOMPAT_ZERO_PADDING = 0x1; // erofs-utils: LZ4_0PADDING
export const EROFS_FEATURE_INCOMPAT_COMPR_CFGS = 0x2;
export const EROFS_FEATURE_INCOMPAT_BIG_PCLUSTER = 0x2;
export const EROFS_FEATURE_INCOMPAT_CHUNKED_FILE = 0x4;
export const EROFS_FEATURE_INCOMPAT_DEVICE_TABLE = 0x8;
export const EROFS_FEATURE_INCOMPAT_COMPR_HEAD2 = 0x8;
export const EROFS_FEATURE_INCOMPAT_ZTAILPACKING = 0x10;
export const EROFS_FEATURE_INCOMPAT_FRAGMENTS = 0x20;
export const EROFS_FEATURE_INCOMPAT_DEDUPE = 0x20;
export const EROFS_FEATURE_INCOMPAT_XATTR_PREFIXES = 0x40;
export const EROFS_FEATURE_INCOMPAT_48BIT = 0x80;
export const EROFS_FEATURE_INCOMPAT_METABOX = 0x100;
/** The incompat bits this implementation reads (uncompressed images only). */
export const EROFS_SUPPORTED_INCOMPAT = EROFS_FEATURE_INCOMPAT_CHUNKED_FILE | EROFS_FEATURE_INCOMPAT_DEVICE_TABLE;

/** Every known feature bit: dump.erofs's short name and what it is for, to name features in messages. */
export const EROFS_FEATURES: ReadonlyArray<{ compat: boolean; mask: number; name: string; what: string }> = [
  { compat: true, mask: EROFS_FEATURE_COMPAT_SB_CHKSUM, name: "sb_csum", what: "superblock checksum" },
  { compat: true, mask: EROFS_FEATURE_COMPAT_MTIME, name: "mtime", what: "per-inode mtime" },
  { compat: true, mask: EROFS_FEATURE_COMPAT_XATTR_FILTER, name: "xattr_filter", what: "xattr name bloom filter" },
  { compat: true, mask: EROFS_FEATURE_COMPAT_SHARED_EA_IN_METABOX, name: "shared_ea_in_metabox", what: "shared xattrs kept in the metabox inode" },
  { compat: true, mask: EROFS_FEATURE_COMPAT_PLAIN_XATTR_PFX, name: "plain_xattr_pfx", what: "long xattr name prefixes in a plain area" },
  { compat: true, mask: EROFS_FEATURE_COMPAT_ISHARE_XATTRS, name: "ishare_xattrs", what: "content fingerprint xattrs (page cache sharing)" },
  { compat: false, mask: EROFS_FEATURE_INCOMPAT_ZERO_PADDING, name: "0padding", what: "zero padding of compressed data (LZ4)" },
  { compat: false, mask: EROFS_FEATURE_INCOMPAT_COMPR_CFGS, name: "compr_cfgs", what: "compression configurations and big physical clusters" },
  { compat: false, mask: EROFS_FEATURE_INCOMPAT_CHUNKED_FILE, name: "chunked_file", what: "chunk-based files" },
  { compat: false, mask: EROFS_FEATURE_INCOMPAT_DEVICE_TABLE, name: "device_table", what: "extra devices (compressed images: a second head algorithm)" },
  { compat: false, mask: EROFS_FEATURE_INCOMPAT_ZTAILPACKING, name: "ztailpacking", what: "compressed tails inlined in metadata" },
  { compat: false, mask: EROFS_FEATURE_INCOMPAT_FRAGMENTS, name: "fragments", what: "compressed fragments in a packed inode, or deduplicated compressed data" },
  { compat: false, mask: EROFS_FEATURE_INCOMPAT_XATTR_PREFIXES, name: "xattr_prefixes", what: "long xattr name prefixes" },
  { compat: false, mask: EROFS_FEATURE_INCOMPAT_48BIT, name: "48bit", what: "48-bit block addresses and nids" },
  { compat: false, mask: EROFS_FEATURE_INCOMPAT_METABOX, name: "metabox", what: "inodes kept in a metabox inode" },
];

// i_format: bit 0 = inode version, bits 1..3 = data layout.
export const EROFS_INODE_LAYOUT_COMPACT = 0;
export const EROFS_INODE_LAYOUT_EXTENDED = 1;
export const EROFS_I_VERSION_BIT = 0;
export const EROFS_I_DATALAYOUT_BIT = 1;
export const EROFS_I_ALL = 0x1f; // bits above 4 must be zero (kernel: EOPNOTSUPP)

export const EROFS_INODE_FLAT_PLAIN = 0;
export const EROFS_INODE_COMPRESSED_FULL = 1;
export const EROFS_INODE_FLAT_INLINE = 2;
export const EROFS_INODE_COMPRESSED_COMPACT = 3;
export const EROFS_INODE_CHUNK_BASED = 4;

// i_u.c.format of CHUNK_BASED inodes: bits 0..4 = chunkbits - blkszbits.
export const EROFS_CHUNK_FORMAT_BLKBITS_MASK = 0x1f;
export const EROFS_CHUNK_FORMAT_INDEXES = 0x20;
export const EROFS_CHUNK_FORMAT_48BIT = 0x40;

// Directory entry file types (erofs_dirent.file_type).
export const EROFS_FT_UNKNOWN = 0;
export const EROFS_FT_REG_FILE = 1;
export const EROFS_FT_DIR = 2;
export const EROFS_FT_CHRDEV = 3;
export const EROFS_FT_BLKDEV = 4;
export const EROFS_FT_FIFO = 5;
export const EROFS_FT_SOCK = 6;
export const EROFS_FT_SYMLINK = 7;

// st_mode file type bits.
export const S_IFMT = 0o170000;
export const S_IFSOCK = 0o140000;
export const S_IFLNK = 0o120000;
export const S_IFREG = 0o100000;
export const S_IFBLK = 0o060000;
export const S_IFDIR = 0o040000;
export const S_IFCHR = 0o020000;
export const S_IFIFO = 0o010000;

/** Maps an st_mode to the dirent file_type, or EROFS_FT_UNKNOWN for an invalid type. */
export function fileTypeOfMode(mode: number): number {
  switch (mode & S_IFMT) {
    case S_IFREG: return EROFS_FT_REG_FILE;
    case S_IFDIR: return EROFS_FT_DIR;
    case S_IFCHR: return EROFS_FT_CHRDEV;
    case S_IFBLK: return EROFS_FT_BLKDEV;
    case S_IFIFO: return EROFS_FT_FIFO;
    case S_IFSOCK: return EROFS_FT_SOCK;
    case S_IFLNK: return EROFS_FT_SYMLINK;
    default: return EROFS_FT_UNKNOWN;
  }
}
