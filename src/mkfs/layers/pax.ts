// PAX extended header records (POSIX.1-2001 pax format), parsed as bytes: "<len> <key>=<value>\n", where len
// counts the whole record in bytes. Values stay bytes because SCHILY.xattr values are binary (POSIX ACLs
// hold 0xff bytes, file capabilities can hold bytes >= 0x80) and paths need not be UTF-8. node-tar's
// Pax.parse is not used here: it decodes the body as UTF-8 text, keeps only a fixed set of keys (no xattrs)
// and turns mtime into a millisecond Date.
import { EodError } from "../../errors.ts";

/** Key (UTF-8) -> raw value bytes; a later record with the same key wins. */
export type PaxRecords = Map<string, Buffer>;

/** Parses the body of an 'x' or 'g' header; `where` names it in errors. */
export function parsePax(body: Buffer, into: PaxRecords, where: string): PaxRecords {
  let at = 0;
  while (at < body.length) {
    if (body[at] === 0) break; // zero padding after the last record (some writers)
    const space = body.indexOf(0x20, at);
    const lenText = space < 0 ? "" : body.toString("latin1", at, space);
    const len = /^[1-9][0-9]{0,9}$/.test(lenText) ? Number(lenText) : NaN;
    if (!(len > 0) || at + len > body.length || body[at + len - 1] !== 0x0a) {
      throw new EodError("SOURCE_INVALID", `${where}: malformed PAX record at byte ${at} of the extended header`);
    }
    const eq = body.indexOf(0x3d, space + 1);
    if (eq < 0 || eq >= at + len - 1) {
      throw new EodError("SOURCE_INVALID", `${where}: PAX record at byte ${at} has no "key=value"`);
    }
    const key = body.toString("utf8", space + 1, eq);
    const value = body.subarray(eq + 1, at + len - 1);
    // An empty value deletes the key (POSIX: "the keyword shall be deleted"), except for an xattr, whose value
    // may be empty (setfattr -v ""): GNU tar writes and restores it, mkfs.erofs --tar keeps it.
    if (value.length === 0 && !isXattrKey(key)) into.delete(key);
    else into.set(key, Buffer.from(value)); // copy: the body buffer is reused
    at += len;
  }
  return into;
}

function isXattrKey(key: string): boolean {
  return key.startsWith("SCHILY.xattr.") || key.startsWith("LIBARCHIVE.xattr.");
}

/** A PAX decimal time ("1700000000.123456789", "-1.5") as floor seconds and nanoseconds 0..999999999. */
export function parsePaxTime(value: Buffer, where: string): { sec: number; nsec: number } {
  const text = value.toString("latin1");
  const m = /^(-?)([0-9]{1,15})(?:\.([0-9]*))?$/.exec(text);
  if (!m) throw new EodError("SOURCE_INVALID", `${where}: PAX time ${JSON.stringify(text)} is not a decimal number`);
  const frac = (m[3] ?? "").slice(0, 9).padEnd(9, "0"); // digits past nanoseconds are dropped
  let ns = BigInt(m[2]) * 1_000_000_000n + BigInt(frac);
  if (m[1]) ns = -ns;
  let sec = ns / 1_000_000_000n;
  if (sec * 1_000_000_000n > ns) sec -= 1n;
  return { sec: Number(sec), nsec: Number(ns - sec * 1_000_000_000n) };
}

/** A PAX decimal integer (uid, gid, size). */
export function parsePaxInt(value: Buffer, key: string, where: string): number {
  const text = value.toString("latin1");
  if (!/^[0-9]{1,16}$/.test(text) || !Number.isSafeInteger(Number(text))) {
    throw new EodError("SOURCE_INVALID", `${where}: PAX ${key} ${JSON.stringify(text)} is not a valid number`);
  }
  return Number(text);
}
