// A CRI client for tests, standing in for crictl (not in Debian 12): kubelet's own image pull,
// `runtime.v1.ImageService/PullImage`, over containerd's socket. Through it the CRI plugin pulls with its
// configured snapshotter and passes the snapshot labels a remote snapshotter needs (`ctr images pull` does not).
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { REPO } from "./cli.ts";

const PROTO_ROOT = path.join(REPO, "proto");
const CRI_PROTO = "k8s.io/cri-api/pkg/apis/runtime/v1/api.proto";

interface PullImageClient extends grpc.Client {
  PullImage(req: { image: { image: string } }, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: { image_ref: string }) => void): void;
}

let ImageService: grpc.ServiceClientConstructor | undefined;

function imageServiceClient(containerdSock: string): PullImageClient {
  if (!ImageService) {
    const def = protoLoader.loadSync(CRI_PROTO, { includeDirs: [PROTO_ROOT], keepCase: true, defaults: true });
    const pkg = grpc.loadPackageDefinition(def) as unknown as { runtime: { v1: { ImageService: grpc.ServiceClientConstructor } } };
    ImageService = pkg.runtime.v1.ImageService;
  }
  return new ImageService(`unix://${containerdSock}`, grpc.credentials.createInsecure()) as unknown as PullImageClient;
}

export interface CriImageService {
  /** Pulls `ref` as kubelet does; resolves with the image ref CRI answers (the image id, "sha256:<config digest>"). */
  pullImage(ref: string, timeoutMs?: number): Promise<string>;
  close(): void;
}

/** A client of containerd's CRI image service, connected (as kubelet's is before it pulls). */
export async function connectCri(containerdSock: string, timeoutMs = 30_000): Promise<CriImageService> {
  const client = imageServiceClient(containerdSock);
  try {
    await new Promise<void>((resolve, reject) => client.waitForReady(Date.now() + timeoutMs, (err) => (err ? reject(err) : resolve())));
  } catch (err) {
    client.close();
    throw new Error(`CRI at ${containerdSock}: ${(err as Error).message}`, { cause: err });
  }
  return {
    pullImage: (ref, pullTimeoutMs = 300_000) => new Promise<string>((resolve, reject) => {
      client.PullImage({ image: { image: ref } }, { deadline: Date.now() + pullTimeoutMs }, (err, res) => {
        if (err) reject(new Error(`CRI PullImage ${ref}: ${err.message}`, { cause: err }));
        else resolve(res!.image_ref);
      });
    }),
    close: () => client.close(),
  };
}

/** Pulls `ref` as kubelet does (connecting for this one call); resolves with the image ref CRI answers. */
export async function criPullImage(containerdSock: string, ref: string, timeoutMs = 300_000): Promise<string> {
  const cri = await connectCri(containerdSock);
  try {
    return await cri.pullImage(ref, timeoutMs);
  } finally {
    cri.close();
  }
}
