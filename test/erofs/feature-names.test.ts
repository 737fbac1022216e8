// Refusing an image names the features it needs (erofs_fs.h's bits, by dump.erofs's short names and what
// they are for), never a bare hex mask or a wrong reason; eod inspect shows the names of the bits it sees.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import {
  EROFS_FEATURE_COMPAT_MTIME, EROFS_FEATURE_COMPAT_SB_CHKSUM, EROFS_FEATURE_INCOMPAT_48BIT, EROFS_FEATURE_INCOMPAT_CHUNKED_FILE,
  EROFS_FEATURE_INCOMPAT_DEVICE_TABLE, EROFS_FEATURE_INCOMPAT_METABOX, EROFS_FEATURE_INCOMPAT_XATTR_PREFIXES, EROFS_FEATURE_INCOMPAT_ZERO_PADDING,
} from "../../src/erofs/constants.ts";
import { decodeSuperBlock, encodeSuperBlock, featureNames, sealSuperBlock } from "../../src/erofs/super.ts";
import { eod, eodOk } from "../helpers/cli.ts";
import { oneFileImage } from "../helpers/one-file-image.ts";

function block0(featureIncompat: number): Uint8Array {
  const b = new Uint8Array(4096);
  encodeSuperBlock({
    featureCompat: EROFS_FEATURE_COMPAT_SB_CHKSUM | EROFS_FEATURE_COMPAT_MTIME, blkSzBits: 12, rootNid: 36, inos: 1,
    epoch: 0, fixedNsec: 0, blocks: 1, metaBlkAddr: 0, xattrBlkAddr: 0, uuid: new Uint8Array(16), volumeName: "",
    featureIncompat, extraDevices: 0, devtSlotOff: 0,
  }, b);
  sealSuperBlock(b, 4096);
  return b;
}

function refusal(featureIncompat: number): string {
  try {
    decodeSuperBlock(block0(featureIncompat));
  } catch (err) {
    assert.equal((err as { code?: string }).code, "EROFS_UNSUPPORTED");
    return (err as Error).message;
  }
  assert.fail(`incompat 0x${featureIncompat.toString(16)} was accepted`);
}

test("an unsupported incompat bit is refused by its name and purpose", () => {
  const prefixes = refusal(EROFS_FEATURE_INCOMPAT_XATTR_PREFIXES);
  assert.match(prefixes, /xattr_prefixes \(0x40: long xattr name prefixes\)/);
  assert.doesNotMatch(prefixes, /compressed or 48-bit/);
  assert.match(refusal(EROFS_FEATURE_INCOMPAT_METABOX), /metabox \(0x100: inodes kept in a metabox inode\)/);
  assert.match(refusal(EROFS_FEATURE_INCOMPAT_48BIT), /48bit \(0x80: 48-bit block addresses/);
  assert.match(refusal(EROFS_FEATURE_INCOMPAT_ZERO_PADDING), /0padding \(0x1: zero padding of compressed data/);
  const two = refusal(EROFS_FEATURE_INCOMPAT_XATTR_PREFIXES | EROFS_FEATURE_INCOMPAT_METABOX | 0x400);
  assert.match(two, /xattr_prefixes .*, metabox .*, unknown bit 0x400/);
  // the supported ones are not in the list
  assert.doesNotMatch(refusal(EROFS_FEATURE_INCOMPAT_METABOX | EROFS_FEATURE_INCOMPAT_CHUNKED_FILE), /chunked_file/);
});

test("featureNames() names every known compat and incompat bit", () => {
  assert.deepEqual(featureNames(0x3f, 0), ["sb_csum", "mtime", "xattr_filter", "shared_ea_in_metabox", "plain_xattr_pfx", "ishare_xattrs"]);
  assert.deepEqual(featureNames(0, 0x1ff), ["0padding", "compr_cfgs", "chunked_file", "device_table", "ztailpacking", "fragments", "xattr_prefixes", "48bit", "metabox"]);
  assert.deepEqual(featureNames(0x40, 0x200), ["compat bit 0x40", "incompat bit 0x200"]);
  assert.deepEqual(featureNames(0, EROFS_FEATURE_INCOMPAT_CHUNKED_FILE | EROFS_FEATURE_INCOMPAT_DEVICE_TABLE), ["chunked_file", "device_table"]);
});

test("eod inspect prints the feature names and refuses a long-prefix image by name", (t) => {
  const { tmp, image } = oneFileImage(t, "eod-features-");
  assert.match(eodOk("inspect", "--summary", image), /features compat 0x3 \(sb_csum mtime\) incompat 0x0 \(none\)/);
  const bad = path.join(tmp, "prefixes.erofs");
  const bytes = fs.readFileSync(image);
  const head = bytes.subarray(0, 4096);
  new DataView(head.buffer, head.byteOffset).setUint32(1024 + 80, EROFS_FEATURE_INCOMPAT_XATTR_PREFIXES, true); // feature_incompat
  sealSuperBlock(head, 4096);
  fs.writeFileSync(bad, bytes);
  const r = eod("inspect", bad);
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /^eod: .*xattr_prefixes \(0x40: long xattr name prefixes\)/);
});
