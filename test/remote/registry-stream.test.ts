// Streamed blob uploads (RegistryClient.streamBlob) against the real registry on 127.0.0.1: bytes sent while
// they are produced, committed under the digest known at the end; cancelled; a wrong digest refused.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { startRegistry, type RunningRegistry } from "../helpers/registry.ts";
import { RegistryClient, sha256Digest, staticCredentials, type Repo } from "../../src/remote/registry/index.ts";

let reg: RunningRegistry;
let client: RegistryClient;
let repo: Repo;

before(async () => {
  reg = await startRegistry();
  client = new RegistryClient({ credentials: staticCredentials({}) });
  repo = { registry: reg.host, repository: "eod/stream" };
});

after(async () => {
  await client?.close();
  await reg?.stop();
});

/** `data` in pieces, with pauses: a producer slower than the link. */
async function* slowly(data: Buffer, piece = 100_000): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < data.length; at += piece) {
    await new Promise((r) => setTimeout(r, 5));
    yield data.subarray(at, at + piece);
  }
}

test("a stream is sent as it is produced and committed under its digest", async () => {
  const data = randomBytes(1_234_567);
  const up = client.streamBlob(repo, slowly(data));
  assert.equal(await up.sent, data.length);
  const pushed = await up.commit(sha256Digest(data), "application/x-test");
  assert.equal(pushed.size, data.length);
  assert.deepEqual(Buffer.from(await client.fetchBlob(repo, pushed)), data);
});

test("a cancelled stream leaves nothing; a wrong digest is refused", async () => {
  const data = randomBytes(300_000);
  const up = client.streamBlob(repo, slowly(data, 10_000));
  await new Promise((r) => setTimeout(r, 30));
  await up.cancel();
  assert.equal(await client.blobSize(repo, sha256Digest(data)), undefined);

  const wrong = client.streamBlob(repo, slowly(data));
  await wrong.sent;
  await assert.rejects(wrong.commit(sha256Digest(randomBytes(8))), /HTTP 400/);
  assert.equal(await client.blobSize(repo, sha256Digest(data)), undefined);
});

test("a stream sent as several PATCHes (segmentBytes) is the same blob; an exact multiple sends no empty PATCH", async () => {
  // Pieces of 100 000 bytes: a PATCH ends at the first piece that reaches segmentBytes.
  for (const [size, segment, patches] of [[1_234_567, 250_000, 5], [1_000_000, 200_000, 5], [0, 1000, 1]]) {
    const data = randomBytes(size);
    const before = client.stats().requests;
    const up = client.streamBlob(repo, slowly(data), { segmentBytes: segment });
    assert.equal(await up.sent, data.length);
    assert.equal(client.stats().requests - before, 1 + patches, `${size}/${segment}: POST and ${patches} PATCHes`);
    const pushed = await up.commit(sha256Digest(data), "application/x-test");
    assert.equal(pushed.size, data.length);
    assert.deepEqual(Buffer.from(await client.fetchBlob(repo, pushed)), data);
  }
});
