// The index artifact (src/image/index-artifact.ts), pure: the manifest made from an index image for an image,
// and the checks a reader makes before anything is mounted (subject, layers exactly the image's).
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { checkIndexAgainstImage, CREATED_ANNOTATION, filesOfIndexArtifact, INDEX_ARTIFACT_TYPE, indexArtifactOf, OCI_EMPTY, OCI_EMPTY_BYTES, type IndexedImage } from "../../src/image/index-artifact.ts";
import { MANIFEST_MEDIA_TYPE, type Manifest } from "../../src/image/manifest.ts";
import { checkOciAgainstManifest, OCI_FORM_TYPES } from "../../src/image/oci-form.ts";

const sha = (s: string | Uint8Array) => `sha256:${createHash("sha256").update(s).digest("hex")}`;
const hex = (s: string) => sha(s).slice(7);
const GZIP = "application/vnd.oci.image.layer.v1.tar+gzip";
const TITLE = "org.opencontainers.image.title";

const image: IndexedImage = {
  digest: sha("image manifest"), mediaType: "application/vnd.oci.image.manifest.v1+json", size: 777,
  layers: [{ mediaType: GZIP, digest: sha("layer 1"), size: 1000 }, { mediaType: "application/vnd.oci.image.layer.v1.tar", digest: sha("layer 2"), size: 2048 }],
};

function indexManifest(img = image): Manifest {
  return {
    schemaVersion: 1, mediaType: MANIFEST_MEDIA_TYPE, blockSize: 512, chunkSize: 4096, compression: "none",
    bootstrap: { path: "bootstrap.erofs", digest: sha("bootstrap"), size: 8192 },
    bootstrapZstd: { path: "bootstrap.erofs.zst", digest: sha("bootstrap.zst"), size: 900 },
    blobs: img.layers.map((l, i) => {
      const id = hex(`tar ${i}`);
      return { id, kernelSize: 4096 * (i + 1), chunks: i + 1, table: { path: `blobs/${id}.ctab`, digest: sha(`ctab ${i}`), size: 100 + i }, remote: { path: `blobs/${id}`, digest: l.digest, size: l.size } };
    }),
  };
}

const mj = { digest: sha("manifest.json"), size: 1234 };
const NOW = "2026-12-07T15:00:00.000Z";

test("the artifact: empty config, subject = the image, our files typed and titled, then the image's own layers titled blobs/<id>", () => {
  const m = indexManifest();
  const a = indexArtifactOf(mj, m, image, NOW, "test");
  assert.equal(a.artifactType, INDEX_ARTIFACT_TYPE);
  assert.deepEqual(a.config, OCI_EMPTY);
  assert.equal(sha(OCI_EMPTY_BYTES), OCI_EMPTY.digest);
  assert.deepEqual(a.subject, { mediaType: image.mediaType, digest: image.digest, size: image.size });
  assert.deepEqual(a.annotations, { [CREATED_ANNOTATION]: NOW });
  assert.deepEqual(a.layers.map((l) => [l.annotations?.[TITLE], l.mediaType, l.digest, l.size]), [
    ["manifest.json", OCI_FORM_TYPES.manifest, mj.digest, mj.size],
    ["bootstrap.erofs.zst", OCI_FORM_TYPES.bootstrapZstd, sha("bootstrap.zst"), 900],
    [m.blobs[0].table.path, OCI_FORM_TYPES.chunkTable, sha("ctab 0"), 100],
    [m.blobs[0].remote.path, GZIP, image.layers[0].digest, 1000],
    [m.blobs[1].table.path, OCI_FORM_TYPES.chunkTable, sha("ctab 1"), 101],
    [m.blobs[1].remote.path, image.layers[1].mediaType, image.layers[1].digest, 2048],
  ]);
  // Without the zstd form, the plain bootstrap.
  const plain = indexArtifactOf(mj, { ...m, bootstrapZstd: undefined }, image, NOW, "test");
  assert.deepEqual([plain.layers[1].annotations?.[TITLE], plain.layers[1].mediaType], ["bootstrap.erofs", OCI_FORM_TYPES.bootstrap]);
});

test("read back: every path of the index image maps to a descriptor, and manifest.json agrees", () => {
  const m = indexManifest();
  const files = filesOfIndexArtifact(indexArtifactOf(mj, m, image, NOW, "test"), image, "artifact");
  assert.equal(files.get(m.blobs[1].remote.path)?.digest, image.layers[1].digest);
  assert.equal(files.get("manifest.json")?.digest, mj.digest);
  checkOciAgainstManifest(files, m, "artifact"); // the reader's check once manifest.json is read
  checkIndexAgainstImage(m, image, "artifact");
});

const refused = (re: RegExp) => (err: Error & { code?: string }) => {
  assert.equal(err.code, "IMAGE_INVALID");
  assert.match(err.message, re);
  return true;
};

test("an index for another image is refused: another subject, a layer the image lacks, a layer of the image missing", () => {
  const other: IndexedImage = { ...image, digest: sha("other manifest"), layers: [image.layers[0], { mediaType: GZIP, digest: sha("layer X"), size: 5 }] };
  const a = indexArtifactOf(mj, indexManifest(), image, NOW, "test");
  assert.throws(() => filesOfIndexArtifact(a, other, "artifact"), refused(/index built for another image: its subject is sha256:\w+, the image is sha256:/));
  // Right subject, wrong layers (a lying or broken artifact).
  assert.throws(() => filesOfIndexArtifact({ ...a, subject: { ...a.subject, digest: other.digest } }, other, "artifact"), refused(/index built for another image: its blobs\/\w+ is sha256:\w+ \(2048 bytes\), not a layer of the image/));
  // An image with one more layer than the index (B = A + a layer): the index of A does not do.
  const bigger: IndexedImage = { ...image, layers: [...image.layers, { mediaType: GZIP, digest: sha("layer 3"), size: 3 }] };
  assert.throws(() => filesOfIndexArtifact(a, bigger, "artifact"), refused(/layer sha256:\w+ of the image is not in it/));
  assert.throws(() => checkIndexAgainstImage(indexManifest(), bigger, "dir"), refused(/dir: index built for another image: layer sha256:\w+ of image sha256:\w+ has no blob in it/));
  assert.throws(() => indexArtifactOf(mj, indexManifest(), other, NOW, "dir"), refused(/dir: index built for another image: its blob blobs\/\w+ is sha256:\w+ \(2048 bytes\), not a layer of image/));
  // Same digest, another size: not the layer.
  const resized: IndexedImage = { ...image, layers: [image.layers[0], { ...image.layers[1], size: 2049 }] };
  assert.throws(() => checkIndexAgainstImage(indexManifest(), resized, "dir"), refused(/index built for another image/));
});

test("not an index artifact, or without its manifest.json, or with a bad title: refused", () => {
  const a = indexArtifactOf(mj, indexManifest(), image, NOW, "test");
  assert.throws(() => filesOfIndexArtifact({ ...a, artifactType: "application/vnd.example.sbom" }, image, "x"), refused(/x is not an erofs-ondemand index/));
  assert.throws(() => filesOfIndexArtifact({ ...a, layers: a.layers.slice(1) }, image, "x"), refused(/no layer titled manifest.json/));
  const evil = a.layers.map((l, i) => (i === 2 ? { ...l, annotations: { [TITLE]: "../etc/passwd" } } : l));
  assert.throws(() => filesOfIndexArtifact({ ...a, layers: evil }, image, "x"), refused(/title "..\/etc\/passwd" is not a relative path/));
  const twice = [...a.layers, a.layers[2]];
  assert.throws(() => filesOfIndexArtifact({ ...a, layers: twice }, image, "x"), refused(/two layers are titled/));
});
