// The digest check of streamed blobs (DigestVerifier): sha256 and sha512 over pieces, a wrong content or a
// wrong size is DIGEST_MISMATCH, a malformed digest a TypeError, and a piece may be reused once update() returns.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { test } from "node:test";
import { DigestVerifier } from "../../src/remote/registry/digest.ts";

const data = randomBytes(3 << 20);
const pieces = (b: Buffer) => [b.subarray(0, 100), b.subarray(100, 1 << 20), b.subarray(1 << 20)];
const digestOf = (alg: string, b: Buffer) => `${alg}:${createHash(alg).update(b).digest("hex")}`;

test("pieces verify as node:crypto hashes the whole; a mismatch or a wrong size is DIGEST_MISMATCH", () => {
  for (const alg of ["sha256", "sha512"]) {
    const ok = new DigestVerifier(digestOf(alg, data));
    for (const p of pieces(data)) ok.update(p);
    assert.equal(ok.bytes, data.length);
    ok.verify("blob", data.length);

    const bad = new DigestVerifier(digestOf(alg, data));
    for (const p of pieces(data)) bad.update(p);
    bad.update(Buffer.from("x"));
    assert.throws(() => bad.verify("blob"), { code: "DIGEST_MISMATCH", message: /blob: content has digest/ });

    const short = new DigestVerifier(digestOf(alg, data));
    short.update(data);
    assert.throws(() => short.verify("blob", data.length + 1), { code: "DIGEST_MISMATCH", message: /the descriptor says/ });
  }
  assert.throws(() => new DigestVerifier("sha256:xyz"), TypeError);
});

test("a piece may be reused once update() returns", () => {
  const v = new DigestVerifier(digestOf("sha256", data));
  const scratch = Buffer.alloc(70000);
  for (let at = 0; at < data.length; at += scratch.length) {
    const n = data.copy(scratch, 0, at, at + scratch.length);
    v.update(scratch.subarray(0, n));
    scratch.fill(0xee);
  }
  v.verify("blob", data.length);
});
