// The thread-pool digest check of streamed blobs: same answers as DigestVerifier (match, wrong content,
// wrong size), sha512 on the main thread, and freed after an early stop.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { test } from "node:test";
import { PooledVerifier } from "../../src/remote/registry/pooled-verifier.ts";

const data = randomBytes(3 << 20);
const pieces = (b: Buffer) => [b.subarray(0, 100), b.subarray(100, 1 << 20), b.subarray(1 << 20)];
const digestOf = (alg: string, b: Buffer) => `${alg}:${createHash(alg).update(b).digest("hex")}`;

test("a pooled sha256 verifies pieces as node:crypto does; a mismatch or a wrong size is DIGEST_MISMATCH", async () => {
  for (const alg of ["sha256", "sha512"]) {
    const ok = new PooledVerifier(digestOf(alg, data));
    for (const p of pieces(data)) { ok.update(p); await ok.waitBehind(); }
    assert.equal(ok.bytes, data.length);
    await ok.verify("blob", data.length);
    await ok.close();

    const bad = new PooledVerifier(digestOf(alg, data));
    for (const p of pieces(data)) bad.update(p);
    bad.update(Buffer.from("x"));
    await assert.rejects(bad.verify("blob"), { code: "DIGEST_MISMATCH", message: /blob: content has digest/ });
    await bad.close();

    const short = new PooledVerifier(digestOf(alg, data));
    short.update(data);
    await assert.rejects(short.verify("blob", data.length + 1), { code: "DIGEST_MISMATCH", message: /the descriptor says/ });
    await short.close();
  }
  assert.throws(() => new PooledVerifier("sha256:xyz"), TypeError);
});

test("a piece may be reused once update() returns (it is copied)", async () => {
  const v = new PooledVerifier(digestOf("sha256", data));
  const scratch = Buffer.alloc(70000);
  for (let at = 0; at < data.length; at += scratch.length) {
    const n = data.copy(scratch, 0, at, at + scratch.length);
    v.update(scratch.subarray(0, n));
    scratch.fill(0xee);
  }
  await v.verify("blob", data.length);
  await v.close();
});

test("closed while pieces are queued (an early stop): waits for them, then frees", async () => {
  const v = new PooledVerifier(digestOf("sha256", data));
  for (const p of pieces(data)) v.update(p);
  await v.close();
  await v.close();
});
