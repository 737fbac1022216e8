// src/remote/registry: the OCI registry client (distribution spec) and a registry repository as a Remote.
// Registries on loopback are spoken to over plain HTTP, others over verified HTTPS unless named insecure;
// credentials come from docker's config.json and helpers; every blob and manifest fetched by digest is
// verified against it (Range reads excepted: the cache core verifies chunks).
//
//   reference.ts        parse/format `host[:port]/repo[:tag][@digest]`, docker.io defaults, loopback test
//   digest.ts           digest syntax, whole and streamed verification
//   manifest.ts         media types, manifest/index validation, platforms and choosing one from an index
//   credentials.ts      docker config.json (auths, credHelpers, credsStore) and docker-credential-* helpers
//   auth.ts             WWW-Authenticate challenges, bearer tokens per scope (cached), basic auth
//   transport.ts        scheme choice, one undici exchange, redirects without credentials to other hosts
//   blob-source.ts      what a push reads from (bytes, a file)
//   session.ts          one authorised exchange (401 → challenge → once more), status errors, retry policy
//   client.ts           RegistryClient: resolve, manifests, blobs (whole, streamed, Range); pushes via upload.ts
//   upload.ts           blob pushes (exists / mount / monolithic / chunked), manifest pushes
//   registry-remote.ts  RegistryRemote: the Remote interface over a repository's blobs
//   referrers.ts        referrers (spec 1.1): listing (API, else the `sha256-<hex>` tag) and pushing a referrer
//   referrers-api.ts    the referrers API request itself (paged), for the client
//   image-remote.ts     `docker://` sources: an eod image's OCI form, or an ordinary image through its index
//   index-discovery.ts  the index of an ordinary image: its referrer artifact, or a local index directory
//   push-index.ts       an index image directory pushed as the image's referrer artifact (`eod index --push`)
export { RegistryClient, type CallOptions, type FetchedManifest, type PushBlobOptions, type PushedBlob, type PushedManifest, type StreamedUpload, type RegistryClientOptions, type Repo, type ResolvedImage } from "./client.ts";
export { listReferrers, pushReferrer, referrersTag, type PushedReferrer, type Referrer } from "./referrers.ts";
export { RegistryRemote, type RegistryRemoteOptions } from "./registry-remote.ts";
export { apiHost, checkRepository, DOCKER_HUB, formatReference, isLoopback, manifestRef, parseReference, type Reference } from "./reference.ts";
export { checkDigest, DigestVerifier, sha256Digest, verifyBytes } from "./digest.ts";
export {
  checkDescriptor, formatPlatform, hostPlatform, indexPlatforms, isAttestation, isIndexType, isNonDistributable, isManifestType, MANIFEST_ACCEPT, MEDIA_TYPES, parseManifest, parsePlatform, selectPlatform,
  type Descriptor, type ImageIndex, type ImageManifest, type Platform,
} from "./manifest.ts";
export { dockerConfigPath, dockerCredentials, runHelper, staticCredentials, type CredentialStore, type Credentials } from "./credentials.ts";
export { parseChallenges, type Challenge } from "./auth.ts";
export { bytesSource, fileSource, type BlobSource } from "./blob-source.ts";
