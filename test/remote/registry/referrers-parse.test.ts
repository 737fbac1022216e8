// Referrers, pure parts (src/remote/registry/referrers.ts, index-discovery.ts): the referrers tag of a digest
// (the spec's table), the lists the API or the tag answer, Link paging, which artifact is newest.
import { test } from "node:test";
import assert from "node:assert/strict";
import { nextLink, ofArtifactType, parseReferrersList, referrersTag, type Referrer } from "../../../src/remote/registry/referrers.ts";
import { newestFirst } from "../../../src/remote/registry/index-discovery.ts";

const a64 = "a".repeat(64);
const d = (c: string) => `sha256:${c.repeat(64)}`;

test("referrersTag follows the spec's Referrers Tag Schema (algorithm, '-', encoded cut to 64)", () => {
  assert.equal(referrersTag(`sha256:${a64}`), `sha256-${a64}`);
  assert.equal(referrersTag(`sha512:${"a".repeat(128)}`), `sha512-${a64}`);
  assert.throws(() => referrersTag("sha256:xyz"), TypeError);
});

test("parseReferrersList: the spec's example answer; anything but an OCI index is no list", () => {
  const answer = {
    schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json",
    manifests: [
      { mediaType: "application/vnd.oci.image.manifest.v1+json", size: 1234, digest: d("1"), artifactType: "application/vnd.example.sbom.v1", annotations: { "org.opencontainers.image.created": "2022-01-01T14:42:55Z" } },
      { mediaType: "application/vnd.oci.image.index.v1+json", size: 1234, digest: d("3") },
    ],
  };
  const list = parseReferrersList(Buffer.from(JSON.stringify(answer)), "application/vnd.oci.image.index.v1+json", "t")!;
  assert.deepEqual(list, answer.manifests);
  assert.deepEqual(ofArtifactType(list, "application/vnd.example.sbom.v1").map((x) => x.digest), [d("1")]);
  assert.equal(ofArtifactType(list, undefined).length, 2);
  // Without a mediaType in the body, the Content-Type says it.
  const { mediaType: _, ...bare } = answer;
  assert.equal(parseReferrersList(Buffer.from(JSON.stringify(bare)), "application/vnd.oci.image.index.v1+json", "t")?.length, 2);
  // Not a list: an image manifest, a Docker manifest list, HTML, a malformed entry.
  const manifest = { schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", config: answer.manifests[0], layers: [] };
  assert.equal(parseReferrersList(Buffer.from(JSON.stringify(manifest)), undefined, "t"), undefined);
  assert.equal(parseReferrersList(Buffer.from(JSON.stringify({ ...answer, mediaType: "application/vnd.docker.distribution.manifest.list.v2+json" })), undefined, "t"), undefined);
  assert.equal(parseReferrersList(Buffer.from("<html>404 page not found</html>"), "text/html", "t"), undefined);
  assert.equal(parseReferrersList(Buffer.from(JSON.stringify({ ...answer, manifests: [{ digest: "nope" }] })), undefined, "t"), undefined);
});

test("nextLink: the rel=next path of a Link header; another host is refused", () => {
  assert.equal(nextLink(undefined), undefined);
  assert.equal(nextLink(`</v2/app/referrers/${d("1")}?n=10&last=x>; rel="next"`), `/v2/app/referrers/${d("1")}?n=10&last=x`);
  assert.equal(nextLink(`</v2/app/referrers/x>; rel="prev"`), undefined);
  assert.throws(() => nextLink(`<https://elsewhere.example/v2/app/referrers/x>; rel="next"`), /does not name a path of this registry/);
});

test("newestFirst: by the created annotation, those without one last, ties: later in the list first", () => {
  const r = (digest: string, created?: string): Referrer => ({ mediaType: "m", digest, size: 1, ...(created ? { annotations: { "org.opencontainers.image.created": created } } : {}) });
  const list = [r(d("1"), "2026-12-07T10:00:00Z"), r(d("2")), r(d("3"), "2026-12-07T11:00:00+01:00"), r(d("4"), "2026-12-07T10:30:00Z"), r(d("5"), "2026-12-07T10:30:00.000Z"), r(d("6"), "not a time")];
  // 3 is 10:00Z (an hour ahead of UTC): equal to 1, after it in the list.
  assert.deepEqual(newestFirst(list).map((x) => x.digest[7]), ["5", "4", "3", "1", "6", "2"]);
});
